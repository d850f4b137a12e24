"""Sliding-window arithmetic for the autoscaler: concurrency averages and recent peaks.

Both are pure functions of timestamped values and an explicit ``now``; a window of ``w`` seconds
ending at ``now`` is the half-open interval ``(now - w, now]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

# (timestamp in seconds, function-wide in-flight invocations): one report of the activators.
Sample = tuple[float, float]
# (timestamp in seconds, desired pods): one decision's desire, kept to hold scale-down back.
Peak = tuple[float, int]

# Averages are rounded to this many decimals before ``ceil``, so that float noise cannot cost a
# pod: 7 / 0.7 is 10.000000000000002 in binary floating point, and ceil of that is 11.
PRECISION = 6


def ceil_pods(value: float) -> int:
    """``ceil`` that ignores float noise below ``PRECISION`` decimals (7 / 0.7 -> 10, not 11)."""
    return max(0, math.ceil(round(value, PRECISION)))


def window_average(samples: Iterable[Sample], now: float, window: float) -> float:
    """Average in-flight invocations over the ``window`` seconds up to ``now``.

    The activators report about once a second. The average is the sum of the samples inside the
    window divided by the number of seconds those samples should have covered:

    * a second without a sample counts as 0 in flight: the activators report while they hold or
      proxy requests, so silence after traffic means the traffic stopped (and a lost report is
      at worst one second of zero, which cannot scale down on its own: scale-down needs a whole
      stable window of lower desire);
    * seconds before the window's first sample do not count: after a silence longer than the
      window, or right after the autoscaler (re)started with no history, the window shrinks to
      the seconds actually seen, so a burst is not diluted by seconds nobody reported. This is
      Knative's ``WindowAverage`` rule and gives a cold start its true size at once;
    * more samples than seconds (jitter, two reports in one second) average out instead of
      adding up.

    Samples stamped after ``now`` are ignored (they have not happened for this decision).

    Worked example, window 6 s, now = 100: samples (95, 4) (96, 4) (98, 4) (100, 10).
    The first is at 95, so the window covers floor(100 - 95) + 1 = 6 seconds (95..100); 97 and 99
    are missing and count as 0: (4 + 4 + 4 + 10) / 6 = 3.67. Had the only sample been (100, 10),
    the window would cover 1 second and average 10.
    """
    inside = [(at, value) for at, value in samples if now - window < at <= now]
    if not inside:
        return 0.0
    first = min(at for at, _ in inside)
    seconds = min(math.ceil(window), math.floor(now - first) + 1)
    return sum(value for _, value in inside) / max(seconds, len(inside))


def push_peak(peaks: tuple[Peak, ...], now: float, desired: int, window: float) -> tuple[Peak, ...]:
    """``peaks`` with ``desired`` recorded at ``now`` and what the window no longer needs dropped.

    Only entries that can still be the window's maximum are kept: those inside the window that
    are higher than every later one (a monotonic queue), so the tuple stays short (at most one
    entry per decision in the window, usually a handful) and its first entry is the maximum.

    Worked example, window 60 s: peaks ((10, 8), (40, 5)). Pushing 3 at t=65 keeps both (still
    inside the window, both higher): ((10, 8), (40, 5), (65, 3)). Pushing 6 at t=71 then drops
    (10, 8) (t=10 has left the window (11, 71]) and (40, 5) and (65, 3) (lower than 6, so never
    the maximum again): ((71, 6),).
    """
    kept = tuple((at, value) for at, value in peaks if now - window < at <= now and value > desired)
    return (*kept, (now, desired))


def window_peak(peaks: tuple[Peak, ...], now: float, window: float) -> int:
    """The highest desire recorded in the ``window`` seconds up to ``now`` (0 when none)."""
    return max((value for at, value in peaks if now - window < at <= now), default=0)
