"""Bounded waiting: every wait in the real-cluster tiers polls a predicate with a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The predicate did not hold before the deadline; carries its last value or error."""


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float,
    *,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Call ``predicate`` until it returns a truthy value and return that value.

    Exceptions raised by the predicate count as "not yet" (the API may not know an object yet);
    the last one is reported when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except Exception as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")
        time.sleep(interval)
