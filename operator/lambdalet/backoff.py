"""How long to wait before trying again after failures in a row: the one exponential backoff of
every retrying loop (the informers in ``k8s/watch.py``, the activator's pods that refuse
connections and its asynchronous retries, the dispatcher's sources, invocations and schedules).

Pure arithmetic: each caller counts its own failures, resets the count when it succeeds, and
sleeps (or schedules) what this says.
"""

from __future__ import annotations

# 2^64 times any first delay in use is past any cap; a float's 2 ** n overflows past n = 1023.
_MAX_DOUBLINGS = 64


def backoff(attempt: int, first: float, cap: float) -> float:
    """Seconds to wait after the ``attempt``-th failure in a row (1 for the first): ``first``,
    doubled for each failure after the first, at most ``cap`` (``math.inf``: no cap).

    E.g. first 0.5, cap 30: attempts 1, 2, 3, 4, 5, 6, 7, 8 wait 0.5, 1, 2, 4, 8, 16, 30, 30
    (the 7th would be 0.5 x 2^6 = 32, past the cap).
    """
    if attempt < 1:
        raise ValueError(f"attempt counts failures from 1, not {attempt}")
    return min(cap, first * 2.0 ** min(attempt - 1, _MAX_DOUBLINGS))
