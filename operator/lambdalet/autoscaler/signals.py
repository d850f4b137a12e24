"""What the activators told the autoscaler, per Function: concurrency samples, queue depth, pokes.

Where it sits: the HTTP endpoint (``lambdalet.autoscaler.api``) hands each parsed report and poke
to the loop, which records it here with the time it arrived on the operator's own monotonic clock
(reporters' clocks are never trusted); before each decision the loop reads one Function's
``Signal``: the inputs ``decide`` takes besides the Deployment's counts.

Several activators each report a Function's in-flight load about once a second; the Function's
load for a second is the sum over activators. Reports go into one-second buckets of the
receiving clock, and each bucket keeps the latest report of each activator (a reporter whose
timer fires twice within a second is counted once, not twice), so

    activator a at 100.2: 3.0    activator b at 100.7: 1.5    activator a at 100.9: 2.0
    -> bucket 100 holds {a: 2.0, b: 1.5}, last at 100.9 -> sample (100.9, 3.5)

A sample is stamped with its bucket's latest arrival, not the bucket's start: a report covers
the second before it arrived, so a decision at 101.05 must see that sample as the last second's
load (the window then spans one second: 3.5 in flight), not as one second older (two seconds,
one of them empty: 1.75).

Everything is bounded: buckets older than the retention (the stable window) are dropped as new
reports arrive and whenever a Signal is read; a bucket holds at most ``MAX_REPORTERS``
reporters; Functions are recorded only when the caller knows them and forgotten when it says so.
"""

from __future__ import annotations

import math
from collections.abc import Container
from dataclasses import dataclass, field

from lambdalet.autoscaler.reports import StatsReport
from lambdalet.autoscaler.windows import Sample
from lambdalet.contracts.keys import Key

# More activator pods than any installation runs; reports from further reporters are dropped.
MAX_REPORTERS = 256
# A queue depth counts only this long after its report: reporters send one every second while a
# Function has traffic (waiting events included), so an older one is about a queue now drained.
QUEUE_DEPTH_FRESH_SECONDS = 3.0


@dataclass(frozen=True)
class Signal:
    """One Function's reported load, ready for ``autoscaler.Observations``."""

    samples: tuple[Sample, ...] = ()
    queue_depth: int | None = None  # summed over reporters; None when none reported one
    poked_at: float | None = None


@dataclass
class _Bucket:
    last_at: float  # the latest arrival of a report in this second
    in_flight: dict[str, float] = field(default_factory=dict)  # reporter -> in-flight


@dataclass
class _Reported:
    """The mutable record of one Function (private: read it through ``Signals.signal``)."""

    # second (floor of the receiving clock) -> the reports that arrived in it
    buckets: dict[int, _Bucket] = field(default_factory=dict)
    # reporter -> (received at, queue depth)
    depths: dict[str, tuple[float, int]] = field(default_factory=dict)
    poked_at: float | None = None


class Signals:
    """Reports and pokes of the Functions the autoscaler knows, kept for ``retain`` seconds."""

    def __init__(self, retain: float) -> None:
        self._retain = retain
        self._functions: dict[Key, _Reported] = {}

    def __len__(self) -> int:
        return len(self._functions)

    def record(self, report: StatsReport, now: float, known: Container[Key]) -> int:
        """Add ``report``, received at ``now``; returns how many of its lines were kept.

        Lines for Functions not in ``known`` are ignored: a report cannot make the autoscaler
        keep memory for names that do not exist.
        """
        bucket = math.floor(now)
        kept = 0
        for load in report.functions:
            if load.key not in known:
                continue
            reported = self._functions.setdefault(load.key, _Reported())
            self._drop_old(reported, now)
            second = reported.buckets.setdefault(bucket, _Bucket(now))
            reporters = second.in_flight
            if report.reporter in reporters or len(reporters) < MAX_REPORTERS:
                reporters[report.reporter] = load.in_flight
                second.last_at = max(second.last_at, now)
                kept += 1
            if load.queue_depth is not None and (
                report.reporter in reported.depths or len(reported.depths) < MAX_REPORTERS
            ):
                reported.depths[report.reporter] = (now, load.queue_depth)
        return kept

    def poke(self, key: Key, now: float) -> None:
        """A cold-start poke for ``key`` (a Function the caller knows) received at ``now``."""
        self._functions.setdefault(key, _Reported()).poked_at = now

    def signal(self, key: Key, now: float) -> Signal:
        reported = self._functions.get(key)
        if reported is None:
            return Signal()
        self._drop_old(reported, now)
        depths = [depth for _, depth in reported.depths.values()]
        return Signal(
            samples=tuple(
                (bucket.last_at, sum(bucket.in_flight.values()))
                for _, bucket in sorted(reported.buckets.items())
            ),
            queue_depth=sum(depths) if depths else None,
            poked_at=reported.poked_at,
        )

    def quiet(self, key: Key, now: float) -> bool:
        """Whether nothing is recorded for ``key``: no sample, no queue depth, no poke."""
        reported = self._functions.get(key)
        if reported is None:
            return True
        self._drop_old(reported, now)
        if reported.buckets or reported.depths or reported.poked_at is not None:
            return False
        del self._functions[key]
        return True

    def keep_only(self, known: Container[Key]) -> None:
        """Forget every Function not in ``known`` (deleted ones)."""
        for key in [key for key in self._functions if key not in known]:
            del self._functions[key]

    def _drop_old(self, reported: _Reported, now: float) -> None:
        # A sample stamped ``at`` sits inside a window ending at ``now`` while
        # at > now - retain; older ones are of no use to any decision from now on.
        for second in [s for s, b in reported.buckets.items() if b.last_at <= now - self._retain]:
            del reported.buckets[second]
        for reporter in [
            r for r, (at, _) in reported.depths.items() if now - at >= QUEUE_DEPTH_FRESH_SECONDS
        ]:
            del reported.depths[reporter]
        if reported.poked_at is not None and now - reported.poked_at >= self._retain:
            reported.poked_at = None
