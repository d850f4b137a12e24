"""Signals: activators' reports summed into one sample per second, bounded, in simulated time."""

from __future__ import annotations

import pytest

from lambdalet.autoscaler.reports import FunctionLoad, StatsReport
from lambdalet.autoscaler.signals import (
    MAX_REPORTERS,
    QUEUE_DEPTH_FRESH_SECONDS,
    Signal,
    Signals,
)

HELLO = ("team", "hello")
OTHER = ("team", "other")
KNOWN = {HELLO, OTHER}
RETAIN = 60.0

# (receipt time, reporter, in-flight) for HELLO.
Report = tuple[float, str, float]


def report(reporter: str, in_flight: float, queue: int | None = None) -> StatsReport:
    return StatsReport(reporter, (FunctionLoad(HELLO, in_flight, queue),))


def signals_after(reports: list[Report]) -> Signals:
    signals = Signals(RETAIN)
    for at, reporter, in_flight in reports:
        signals.record(report(reporter, in_flight), at, KNOWN)
    return signals


@pytest.mark.parametrize(
    ("reports", "now", "samples"),
    [
        ([], 100.0, ()),
        ([(100.2, "a", 3.0)], 100.5, ((100.2, 3.0),)),
        # Activators of the same second add up, stamped with the latest arrival.
        ([(100.2, "a", 3.0), (100.7, "b", 1.5)], 100.9, ((100.7, 4.5),)),
        # One activator twice in a second: the latest report counts, once.
        ([(100.2, "a", 3.0), (100.7, "b", 1.5), (100.9, "a", 2.0)], 101.0, ((100.9, 3.5),)),
        # Separate seconds stay separate samples, in time order.
        (
            [(101.1, "a", 2.0), (100.1, "a", 1.0), (102.5, "b", 4.0), (102.6, "a", 1.0)],
            103.0,
            ((100.1, 1.0), (101.1, 2.0), (102.6, 5.0)),
        ),
        # A second is kept while a stable window ending now can still reach it.
        ([(40.5, "a", 9.0), (41.0, "a", 1.0)], 100.9, ((41.0, 1.0),)),
        ([(40.5, "a", 9.0), (41.0, "a", 1.0)], 101.0, ()),
        # Zero in flight is a report like any other (the window counts that second).
        ([(100.0, "a", 0.0)], 100.0, ((100.0, 0.0),)),
    ],
    ids=[
        "nothing",
        "one",
        "two-activators-add-up",
        "latest-per-activator",
        "buckets-in-order",
        "old-dropped-at-read",
        "older-dropped",
        "zero",
    ],
)
def test_samples(reports: list[Report], now: float, samples: tuple[tuple[float, float]]) -> None:
    assert signals_after(reports).signal(HELLO, now).samples == samples


def test_unknown_functions_are_not_recorded() -> None:
    signals = Signals(RETAIN)
    mixed = StatsReport(
        "a", (FunctionLoad(("team", "ghost"), 5.0), FunctionLoad(OTHER, 2.0, queue_depth=3))
    )

    assert signals.record(mixed, 10.0, KNOWN) == 1
    assert len(signals) == 1
    assert signals.signal(("team", "ghost"), 10.0) == Signal()
    assert signals.signal(OTHER, 10.0) == Signal(samples=((10.0, 2.0),), queue_depth=3)


def test_reporters_per_second_are_bounded() -> None:
    signals = Signals(RETAIN)
    for i in range(MAX_REPORTERS + 5):
        signals.record(report(f"activator-{i}", 1.0), 50.5, KNOWN)
    # A reporter already counted may still update its line.
    kept = signals.record(report("activator-0", 11.0), 50.6, KNOWN)

    assert kept == 1
    assert signals.record(report("one-too-many", 1.0), 50.7, KNOWN) == 0
    # ... and a dropped report does not move the second's stamp.
    assert signals.signal(HELLO, 50.8).samples == ((50.6, MAX_REPORTERS - 1 + 11.0),)


@pytest.mark.parametrize(
    ("reports", "now", "depth"),
    [
        ([], 10.0, None),
        ([(10.0, "a", None)], 10.5, None),
        ([(10.0, "a", 4)], 10.5, 4),
        # Queue depth is a level: the latest per reporter, summed over reporters.
        ([(9.0, "a", 4), (10.0, "a", 2), (10.2, "b", 3)], 10.5, 5),
        # A reporter that stopped reporting no longer counts.
        ([(9.0, "a", 4), (11.0, "b", 3)], 9.0 + QUEUE_DEPTH_FRESH_SECONDS, 3),
        ([(9.0, "a", 4)], 9.0 + QUEUE_DEPTH_FRESH_SECONDS, None),
    ],
    ids=["none", "not-reported", "one", "latest-summed", "stale-dropped", "all-stale"],
)
def test_queue_depth(
    reports: list[tuple[float, str, int | None]], now: float, depth: int | None
) -> None:
    signals = Signals(RETAIN)
    for at, reporter, queue in reports:
        signals.record(report(reporter, 1.0, queue), at, KNOWN)

    assert signals.signal(HELLO, now).queue_depth == depth


def test_pokes_are_kept_for_the_retention() -> None:
    signals = Signals(RETAIN)
    signals.poke(HELLO, 5.0)
    signals.poke(HELLO, 7.5)

    assert signals.signal(HELLO, 8.0).poked_at == 7.5
    assert signals.signal(HELLO, 7.5 + RETAIN - 0.1).poked_at == 7.5
    assert signals.signal(HELLO, 7.5 + RETAIN).poked_at is None


def test_keep_only_forgets_deleted_functions() -> None:
    signals = signals_after([(1.0, "a", 1.0)])
    signals.poke(OTHER, 1.0)

    signals.keep_only({OTHER})

    assert len(signals) == 1
    assert signals.signal(HELLO, 1.0) == Signal()
    assert signals.signal(OTHER, 1.0).poked_at == 1.0


def test_quiet_until_something_is_recorded_and_after_it_ages_out() -> None:
    signals = Signals(RETAIN)
    assert signals.quiet(HELLO, 10.0)

    signals.poke(HELLO, 10.0)
    assert not signals.quiet(HELLO, 10.0)
    assert signals.quiet(HELLO, 10.0 + RETAIN)
    assert len(signals) == 0  # nothing kept for a quiet Function

    signals.record(report("a", 0.0), 100.0, KNOWN)
    assert not signals.quiet(HELLO, 100.5)  # a report of zero in flight is still a report
    assert signals.quiet(HELLO, 100.0 + RETAIN + 1)
