"""Bounded waits: every test that waits polls a predicate until it holds, with a deadline.

``wait_for`` (blocking) and ``wait_for_async`` (in a coroutine; the predicate may be a plain
function or return an awaitable) take the same arguments: the predicate, the timeout in seconds,
``what`` (the failure message names it) and the polling ``interval``. Both return the
predicate's first truthy value, so a wait can hand over what it waited for::

    match = wait_for(lambda: re.search("READY", agent.log()), 10, what="the READY line")

An exception from the predicate counts as "not yet" (an API that does not know an object yet, a
server still starting), except an ``AssertionError``, which is a verdict and ends the wait at
once. When the deadline passes, ``WaitTimeout`` (an ``AssertionError``) reports the last value or
exception.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The predicate did not hold before the deadline; carries its last value or error."""


def _timed_out(timeout: float, what: str, last: object) -> WaitTimeout:
    return WaitTimeout(f"timed out after {timeout:g} s waiting for {what}; last: {last!r}")


def _attempt(predicate: Callable[[], object]) -> tuple[bool, object]:
    """(whether it held, its value or the exception that means "not yet")."""
    try:
        value = predicate()
    except AssertionError:
        raise
    except Exception as exc:
        return False, exc
    return bool(value), value


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float,
    *,
    what: str = "condition",
    interval: float = 0.2,
) -> T:
    """Call ``predicate`` until it returns a truthy value, for at most ``timeout`` seconds.

    The default interval suits a predicate that runs kubectl or an HTTP request; cheap ones (a
    log file, a counter) pass a shorter one.
    """
    deadline = time.monotonic() + timeout
    while True:
        held, last = _attempt(predicate)
        if held:
            return last  # type: ignore[return-value]
        if time.monotonic() >= deadline:
            raise _timed_out(timeout, what, last)
        time.sleep(interval)


async def wait_for_async(
    predicate: Callable[[], T | None] | Callable[[], Awaitable[T | None]],
    timeout: float,  # noqa: ASYNC109 - the bound this wait exists to apply (asyncio.timeout)
    *,
    what: str = "condition",
    interval: float = 0.05,
) -> T:
    """``wait_for`` in a coroutine: sleeps on the event loop, and the deadline also bounds an
    awaited predicate that hangs."""
    last: object = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                held, last = _attempt(predicate)
                if inspect.isawaitable(last):
                    awaited = last
                    try:
                        last = await awaited
                    except AssertionError:
                        raise
                    except Exception as exc:
                        held, last = False, exc
                    else:
                        held = bool(last)
                if held:
                    return last  # type: ignore[return-value]
                await asyncio.sleep(interval)
    except TimeoutError:
        raise _timed_out(timeout, what, last) from None
