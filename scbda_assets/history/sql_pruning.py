"""Time pruning for ``scbda sql`` that can never change an answer (SPEC §9a). No Spark, no Dagster here.

A view may be read only in part when a predicate provably restricts *every* row the query reads from it. That is
proven for one shape only: the query is a single SELECT (no CTE, no set operation) whose only table source is that
view, referenced once, with no subquery anywhere, and its WHERE is a top-level AND in which some terms compare the
view's event field with a constant (``order_ts >= TIMESTAMP '…' - INTERVAL 1 DAY``, ``shipment_ts BETWEEN '…' AND
'…'``). Every other shape — OR, NOT, CASE, a subquery, a join, a view named twice, a UNION — gets no bounds, and the
view is read whole. Rows the WHERE drops anyway are the only rows pruning skips.

The constants are not evaluated here: :func:`bounds_for` returns them as Spark SQL text and the caller has Spark
evaluate them (``CAST(… AS TIMESTAMP)``, the coercion Spark applies to the comparison itself, in the session's time
zone), so ``'2026-11-20'``, ``DATE …``, ``TIMESTAMP_NTZ …`` and interval arithmetic mean exactly what they mean in
the query.
"""

from __future__ import annotations

import dataclasses

from sqlglot import exp

_LOWER = (exp.GT, exp.GTE)
_UPPER = (exp.LT, exp.LTE)
_FLIPPED = {exp.GT: exp.LT, exp.GTE: exp.LTE, exp.LT: exp.GT, exp.LTE: exp.GTE, exp.EQ: exp.EQ}
# Nodes a constant bound may be built of: literals, casts, intervals and + / - (deterministic, no column, no clock).
_CONSTANT_NODES = (exp.Literal, exp.Cast, exp.DataType, exp.Interval, exp.IntervalSpan, exp.Var, exp.Add, exp.Sub,
                   exp.Paren, exp.Neg)
_TIME_TYPES = frozenset({exp.DataType.Type.TIMESTAMP, exp.DataType.Type.TIMESTAMPTZ, exp.DataType.Type.TIMESTAMPLTZ,
                         exp.DataType.Type.TIMESTAMPNTZ, exp.DataType.Type.DATE})


@dataclasses.dataclass(frozen=True)
class BoundExpressions:
    """Constant Spark SQL expressions every row of the view satisfies: event field ≥ each lower, ≤ each upper."""

    lower: tuple[str, ...] = ()
    upper: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.lower or self.upper)


def bounds_for(query: exp.Expression, view: str, field: str) -> BoundExpressions:
    """The constant bounds ``query`` (already checked by ``sql_guard``) proves on ``view``'s ``field``."""
    if not isinstance(query, exp.Select) or query.args.get("with_") or query.args.get("with"):
        return BoundExpressions()
    tables = [t for t in query.find_all(exp.Table) if not t.find_ancestor(exp.Hint)]
    source = query.args.get("from_") or query.args.get("from")
    if (len(tables) != 1 or source is None or source.this is not tables[0] or query.args.get("joins")
            or query.args.get("laterals") or tables[0].name.lower() != view
            or any(query.find_all(exp.Subquery, exp.Exists, exp.Values))
            or any(isinstance(node, exp.Select) and node is not query for node in query.walk())):
        return BoundExpressions()
    where = query.args.get("where")
    if where is None:
        return BoundExpressions()
    names = {view, tables[0].alias_or_name.lower()}
    lower, upper = [], []
    for term in where.this.flatten() if isinstance(where.this, exp.And) else [where.this]:
        term = term.unnest()
        if isinstance(term, exp.Between) and _is_field(term.this, field, names):
            low, high = term.args.get("low"), term.args.get("high")
            if _is_constant(low):
                lower.append(low.sql(dialect="spark"))
            if _is_constant(high):
                upper.append(high.sql(dialect="spark"))
            continue
        comparison = _field_on_left(term, field, names)
        if comparison is None:
            continue
        kind, constant = comparison
        if kind in (*_LOWER, exp.EQ):
            lower.append(constant)
        if kind in (*_UPPER, exp.EQ):
            upper.append(constant)
    return BoundExpressions(tuple(lower), tuple(upper))


def _field_on_left(term: exp.Expression, field: str, names: set[str]) -> tuple[type, str] | None:
    kind = type(term)
    if kind not in _FLIPPED:
        return None
    left, right = term.this, term.expression
    if _is_field(right, field, names) and _is_constant(left):
        return _FLIPPED[kind], left.sql(dialect="spark")
    if _is_field(left, field, names) and _is_constant(right):
        return kind, right.sql(dialect="spark")
    return None


def _is_field(node: exp.Expression | None, field: str, names: set[str]) -> bool:
    return (isinstance(node, exp.Column) and node.name.lower() == field
            and (not node.table or node.table.lower() in names) and not node.args.get("db"))


def _is_constant(node: exp.Expression | None) -> bool:
    """A deterministic constant whose value is a point in time: a string, or a cast / interval arithmetic over
    strings (a bare number compared with a timestamp is left to Spark, unpruned)."""
    if node is None or not all(isinstance(n, _CONSTANT_NODES) for n in node.walk()):
        return False
    if any(isinstance(n, exp.Cast) and n.to.this not in _TIME_TYPES for n in node.walk()):
        return False
    core = node.unnest()
    while isinstance(core, (exp.Add, exp.Sub)):
        core = core.this.unnest()  # timestamp ± interval: the time is on the left
    return isinstance(core, exp.Cast) or (isinstance(core, exp.Literal) and core.is_string)
