"""Why a Function cannot become Ready, in words a user can act on.

A ``Problem`` is what the operator shows as ``Ready=False`` (its reason and message) and what the
components post as a Warning Event (``lambdalet.contracts.events``). ``parse_function`` is the
check every reader of a stored Function body shares: the typed Function, or the ``InvalidSpec``
problem that says which field is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from lambdalet.api.conditions import FunctionReadyReason
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
        details = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        return Problem(
            FunctionReadyReason.INVALID_SPEC, f"The Function's spec is invalid: {details}"
        )
