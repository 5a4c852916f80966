"""Dagster wiring for the plain errors of ``errors.py``: a run that cannot reach a service fails with the error's one
line as its description (no driver traceback) and may be retried; sensors and the CLI still catch it as
:class:`ServiceUnavailable`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg

from scbda_assets.errors import ServiceUnavailable


class ServiceFailure(dg.Failure, ServiceUnavailable):
    """A :class:`ServiceUnavailable` as Dagster's ``Failure`` (``allow_retries``: the next tick or a retry may work)."""

    def __init__(self, message: str):
        super().__init__(description=message, allow_retries=True)

    def __str__(self) -> str:
        return self.description or ""

    def __reduce__(self):  # picklable with its one argument (Dagster serializes failures across processes)
        return (type(self), (self.description,))


def as_failure(error: ServiceUnavailable) -> ServiceFailure:
    return error if isinstance(error, ServiceFailure) else ServiceFailure(str(error))


@contextlib.contextmanager
def service_failures() -> Iterator[None]:
    """Around an asset, op or check body that calls pure code: its ServiceUnavailable fails the step with one line."""
    try:
        yield
    except ServiceUnavailable as error:
        raise as_failure(error) from None
