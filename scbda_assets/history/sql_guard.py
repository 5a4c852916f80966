"""``scbda sql`` is read-only by construction (SPEC §9a): the statement is parsed with sqlglot (dialect spark)
before anything runs, and only an allow-listed shape passes. No Spark, no Dagster here.

Accepted: exactly one query — SELECT, WITH … SELECT, or a UNION / INTERSECT / EXCEPT of them — whose table sources
are only the views ``scbda sql`` defines (or CTEs of the query itself), inline ``VALUES``, and row generators
(``range``, ``explode``, …). Everything else is refused, wherever it appears in the tree: commands (DDL, DML
including ``INSERT OVERWRITE DIRECTORY``, ``SET``, ``ADD JAR``, ``CACHE``, …), file-path sources
(``parquet.`/path```), qualified names (``db.table``), any other table-valued function, ``TRANSFORM … USING``
(runs a program) and the reflection functions (call any Java method). An allow-list, not a deny-list: a statement
shape nobody thought of is refused rather than run.
"""

from __future__ import annotations

import logging

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from scbda_assets.errors import first_line

ACCEPTED = "accepted: one SELECT (or WITH … SELECT) over the views orders, shipments, inventory, orders_hourly, " \
           "shipments_history"
_QUERY_ROOTS = (exp.Select, exp.SetOperation, exp.Subquery)
# Table-valued functions that only generate rows from their arguments (none reads a file or a table).
_ROW_GENERATORS = frozenset({"range", "explode", "explode_outer", "posexplode", "posexplode_outer", "inline",
                             "inline_outer", "stack", "json_tuple", "variant_explode", "variant_explode_outer"})
# Scalar functions that call arbitrary Java static methods.
_REFUSED_FUNCTIONS = frozenset({"reflect", "java_method", "try_reflect"})
# Nodes that are statements, or that run something outside the query, wherever they appear.
_REFUSED_NODES = (exp.DDL, exp.DML, exp.Command, exp.Drop, exp.Alter, exp.Set, exp.Use, exp.Cache, exp.Uncache,
                  exp.Refresh, exp.LoadData, exp.Describe, exp.QueryTransform, exp.Transaction, exp.Commit,
                  exp.Rollback, exp.TruncateTable, exp.Pragma, exp.Analyze)


class RefusedStatement(ValueError):
    """A statement ``scbda sql`` will not run. ``str(error)`` is one line: what was refused and what is accepted."""


def checked_query(text: str, views: frozenset[str]) -> exp.Expression:
    """The parsed query if ``text`` is one read-only query over ``views``; :class:`RefusedStatement` otherwise."""
    words = text.split()
    opening = " ".join(words[:3]) + (" …" if len(words) > 3 else "")
    parser_log = logging.getLogger("sqlglot")
    level = parser_log.level
    parser_log.setLevel(logging.ERROR)  # its "falling back to parsing as a Command" warning: we say it in one line
    try:
        statements = [s for s in sqlglot.parse(text, read="spark") if s is not None]
    except SqlglotError as error:
        raise RefusedStatement(f"{opening!r}: not a query the checker can parse ({first_line(error)}); "
                               f"{ACCEPTED}") from None
    finally:
        parser_log.setLevel(level)
    if len(statements) != 1:
        raise RefusedStatement(f"{len(statements)} statements; {ACCEPTED}, exactly one statement")
    (query,) = statements
    if not isinstance(query, _QUERY_ROOTS):
        raise RefusedStatement(f"{opening!r}: not a query; {ACCEPTED}")
    for node in query.walk():
        if isinstance(node, _REFUSED_NODES):
            raise RefusedStatement(f"{_describe(node)} inside the query; {ACCEPTED}")
        if isinstance(node, exp.Func) and _function_name(node) in _REFUSED_FUNCTIONS:
            raise RefusedStatement(f"function {_function_name(node)}() (calls Java methods); {ACCEPTED}")
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            raise RefusedStatement(f"qualified function {node.sql(dialect='spark')}; {ACCEPTED}, built-in functions")
        if isinstance(node, exp.Table) and not node.find_ancestor(exp.Hint):
            _check_source(node, views)
    return query


def statement_text(text: str) -> str:
    """``text`` without what follows its last token (trailing ``;`` and comments), so that it can be nested."""
    tokens = [t for t in sqlglot.tokenize(text, read="spark") if t.token_type != sqlglot.TokenType.SEMICOLON]
    return text[: tokens[-1].end + 1] if tokens else text


def table_sources(query: exp.Expression) -> list[exp.Table]:
    """The table references of a checked query that name a view (not row generators, CTEs or hints)."""
    sources = []
    for table in query.find_all(exp.Table):
        if table.find_ancestor(exp.Hint) or not isinstance(table.this, exp.Identifier) or _is_cte(table):
            continue
        sources.append(table)
    return sources


def _check_source(table: exp.Table, views: frozenset[str]) -> None:
    if isinstance(table.this, exp.Func):  # FROM range(10), FROM read_files('/x'), FROM IDENTIFIER('x')
        name = _function_name(table.this)
        if name not in _ROW_GENERATORS:
            raise RefusedStatement(f"table function {name}() as a source; {ACCEPTED}, or range/explode/VALUES")
        return
    if table.args.get("db") or table.args.get("catalog"):  # parquet.`/path`, text.`/etc/…`, global_temp.x
        raise RefusedStatement(f"source {table.sql(dialect='spark')} (a file path or another catalog's table); "
                               f"{ACCEPTED}")
    if table.name.lower() not in views and not _is_cte(table):
        raise RefusedStatement(f"source {table.name!r} (not a view of scbda sql); {ACCEPTED}")


def _is_cte(table: exp.Table) -> bool:
    """Whether ``table`` names a CTE of a query that contains it (Spark resolves a CTE before a view)."""
    name = table.name.lower()
    node = table.parent
    while node is not None:
        with_ = node.args.get("with_") or node.args.get("with")
        if isinstance(with_, exp.With) and any(cte.alias_or_name.lower() == name for cte in with_.expressions):
            return True
        node = node.parent
    return False


def _function_name(func: exp.Func) -> str:
    return (func.name if isinstance(func, exp.Anonymous) else func.sql_name()).lower()


def _describe(node: exp.Expression) -> str:
    if isinstance(node, exp.Insert) and node.args.get("overwrite"):
        return "INSERT OVERWRITE"
    key = node.args.get("kind") if isinstance(node, (exp.Create, exp.Drop)) else None
    return f"{node.key.upper()} {str(key).upper()}".strip() if key else node.key.upper()

