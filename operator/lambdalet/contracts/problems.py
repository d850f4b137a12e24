"""Why a Function cannot become Ready, in words a user can act on.

A ``Problem`` is what the operator shows as ``Ready=False`` (its reason and message) and what the
components post as a Warning Event (``lambdalet.contracts.events``). ``parse_function`` and
``parse_eventsource`` are the check every reader of a stored body shares (through
``lambdalet.contracts.views``): the typed object, or the ``InvalidSpec`` problem that says which
field is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from lambdalet.api.conditions import EventSourceReadyReason, FunctionReadyReason
from lambdalet.api.eventsource import EventSource
from lambdalet.api.function import Function


@dataclass(frozen=True)
class Problem:
    """Why a Function cannot become Ready: a CamelCase reason and a message a user can act on."""

    reason: str
    message: str


def parse_function(body: Mapping[str, Any]) -> Function | Problem:
    """The typed Function, or the InvalidSpec problem that says what is wrong with it.

    The CRD schema rejects almost every invalid spec at admission; this catches the rest (a
    stored object from an older schema, limits only the models can check).
    """
    try:
        return Function.model_validate(dict(body))
    except ValidationError as exc:
        reason = FunctionReadyReason.INVALID_SPEC
        return Problem(reason, f"The Function's spec is invalid: {_details(exc)}")


def parse_eventsource(body: Mapping[str, Any]) -> EventSource | Problem:
    """The typed EventSource, or the InvalidSpec problem that says what is wrong with it."""
    try:
        return EventSource.model_validate(dict(body))
    except ValidationError as exc:
        reason = EventSourceReadyReason.INVALID_SPEC
        return Problem(reason, f"The EventSource's spec is invalid: {_details(exc)}")


def _details(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
    )
