"""Whether an invocation goes to a pod now, waits for one, or is refused; and which pod takes it.

Pure functions of counts, called by ``proxy`` for every invocation. The rules, in order:

1. Reserved concurrency (``spec.concurrency.reserved``) caps invocations in flight *and* held
   for the whole Function; ``reserved`` here is this activator's share of it (``quota``, the
   whole cap when it is the only activator): at the share -> ``THROTTLED`` (429, Lambda's
   ``TooManyRequestsException``). Reserved 0 throttles everything, as in Lambda.
2. A pod with a free slot and nobody already waiting -> ``PROXY`` (waiting requests go first, so
   a newcomer never overtakes a held request).
3. Room in the Function's hold queue -> ``HOLD`` (a cold start, or every pod busy): the request
   waits, with a deadline, for a pod or a free slot.
4. Otherwise ``OVERFLOW`` (503 with a reason).

E.g. a share of 10, 4 in flight, 6 held: 4 + 6 >= 10 -> THROTTLED, whatever the pods.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Protocol, TypeVar


class Verdict(StrEnum):
    PROXY = "proxy"
    HOLD = "hold"
    THROTTLED = "throttled"
    OVERFLOW = "overflow"


def admit(
    *, in_flight: int, held: int, reserved: int | None, hold_limit: int, free_slot: bool
) -> Verdict:
    if reserved is not None and in_flight + held >= reserved:
        return Verdict.THROTTLED
    if free_slot and held == 0:
        return Verdict.PROXY
    if held < hold_limit:
        return Verdict.HOLD
    return Verdict.OVERFLOW


class Slot(Protocol):
    """What ``least_loaded`` needs of a pod."""

    @property
    def in_flight(self) -> int: ...

    @property
    def capacity(self) -> int: ...


S = TypeVar("S", bound=Slot)


def least_loaded(pods: Iterable[S]) -> S | None:
    """The pod with the lowest share of its capacity in use, among those with a free slot.

    Ties go to the first pod in iteration order. E.g. capacities 4 and 1, in flight 1 and 0:
    shares 0.25 and 0.0 -> the second pod; in flight 1 and 1: the second is full -> the first.
    """
    best: S | None = None
    best_share = 2.0
    for pod in pods:
        capacity = pod.capacity
        in_flight = pod.in_flight
        if in_flight >= capacity:
            continue
        share = in_flight / capacity
        if share < best_share:
            if in_flight == 0:
                return pod
            best, best_share = pod, share
    return best
