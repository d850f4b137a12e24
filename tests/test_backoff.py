"""backoff: the one exponential backoff of every retrying loop."""

from __future__ import annotations

import math

import pytest

from lambdalet.backoff import backoff


@pytest.mark.parametrize(
    ("attempt", "first", "cap", "delay"),
    [
        # The docstring's example: the informers' 0.5 s up to 30 s.
        (1, 0.5, 30.0, 0.5),
        (2, 0.5, 30.0, 1.0),
        (3, 0.5, 30.0, 2.0),
        (6, 0.5, 30.0, 16.0),
        (7, 0.5, 30.0, 30.0),  # 32 is past the cap
        (8, 0.5, 30.0, 30.0),
        # The dispatcher's delivery loop: 0.1 s up to 30 s.
        (1, 0.1, 30.0, 0.1),
        (2, 0.1, 30.0, 0.2),
        (4, 0.1, 30.0, 0.8),
        (9, 0.1, 30.0, 25.6),
        (10, 0.1, 30.0, 30.0),
        (501, 0.1, 30.0, 30.0),
        # A first delay at or past the cap waits the cap.
        (1, 60.0, 30.0, 30.0),
        (1, 30.0, 30.0, 30.0),
        # No cap: Lambda's asynchronous retries, 60 s then 120 s.
        (1, 60.0, math.inf, 60.0),
        (2, 60.0, math.inf, 120.0),
        # So many failures that 2 ** n would overflow a float: still the cap, or finite.
        (10_000, 1.0, 300.0, 300.0),
        (10_000, 1.0, math.inf, 2.0**64),
    ],
)
def test_backoff(attempt: int, first: float, cap: float, delay: float) -> None:
    assert backoff(attempt, first, cap) == pytest.approx(delay)


@pytest.mark.parametrize("attempt", [0, -1])
def test_attempts_count_from_one(attempt: int) -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff(attempt, 0.5, 30.0)
