"""decide stepped once per simulated second through whole load scripts: the trajectory's shape.

Pods asked for turn ready two seconds later; the activators report every second and poke when a
request finds no ready pod (see ``tests.autoscaler.sim``).
"""

from __future__ import annotations

import pytest

from lambdalet.autoscaler import Policy
from tests.autoscaler.sim import Script, Step, direction_changes, ramp, simulate

# Quiet for 10 s; ramp 0 -> 7 in flight over 60 s; plateau 7 (10 pods) for 120 s; burst to 17.5
# (25 pods' worth, above max_scale) for 20 s; plateau 7 for 60 s; idle until the end.
QUIET, RAMP, PLATEAU, BURST, AFTER = 10, 60, 120, 20, 60
DAY = ramp(
    (QUIET, 0.0, 0.0),
    (RAMP, 0.0, 7.0),
    (PLATEAU, 7.0, 7.0),
    (BURST, 17.5, 17.5),
    (AFTER, 7.0, 7.0),
)
BURST_AT = QUIET + RAMP + PLATEAU
LAST_TRAFFIC = BURST_AT + BURST + AFTER - 1


def spiky(t: int) -> float:
    """Three requests for two seconds every 45 s until t=400: sparse, bursty traffic."""
    return 3.0 if t % 45 in (0, 1) and t < 400 else 0.0


def last_traffic(steps: list[Step]) -> int:
    return max(s.at for s in steps if s.in_flight > 0)


@pytest.mark.parametrize(
    ("policy", "script", "max_changes"),
    [
        pytest.param(Policy(max_scale=20), DAY, 2, id="day-default-grace"),
        pytest.param(Policy(max_scale=20, scale_to_zero_after=10.0), DAY, 2, id="day-short-grace"),
        pytest.param(Policy(max_scale=20, scale_to_zero_after=300.0), DAY, 2, id="day-long-grace"),
        pytest.param(Policy(), spiky, 1, id="spiky"),
    ],
)
def test_trajectory(policy: Policy, script: Script, max_changes: int) -> None:
    steps = simulate(policy, script, range(900))
    counts = [s.replicas for s in steps]
    first, last = (
        min(s.at for s in steps if s.in_flight > 0),
        last_traffic(steps),
    )
    zero_from = policy.scale_to_zero_grace + last

    assert max(counts) <= policy.max_scale
    assert set(counts[:first]) <= {0}  # nothing runs before the first request
    assert all(s.replicas >= 1 for s in steps if first <= s.at < zero_from)  # no zero in grace
    assert counts[-1] == 0  # idle at the end
    # Zero at most a few rate-limited halvings after the grace, and only then.
    assert min(s.at for s in steps if s.at > last and s.replicas == 0) <= zero_from + 5
    assert direction_changes(counts) <= max_changes


def test_day_phases() -> None:
    policy = Policy(max_scale=20)
    steps = simulate(policy, DAY, range(600))

    def counts(start: int, end: int) -> set[int]:
        return {s.replicas for s in steps if start <= s.at < end}

    assert counts(0, QUIET + 1) == {0}  # the ramp's first second is still 0 in flight
    assert counts(QUIET + 1, QUIET + 2) == {1}  # the cold start gets a pod at once
    assert counts(QUIET + RAMP + 10, BURST_AT) == {10}  # plateau: ceil(7 / 0.7)
    assert counts(BURST_AT + 6, BURST_AT + BURST) == {20}  # burst: at max within a panic window
    assert any(s.decision.state.panicking for s in steps if BURST_AT <= s.at < BURST_AT + 6)
    # After the burst, panic and then the hold keep 20 until traffic stops; no step back up.
    assert counts(BURST_AT + BURST, LAST_TRAFFIC + 1) == {20}
    tail = [s.replicas for s in steps if s.at > LAST_TRAFFIC]
    assert tail == sorted(tail, reverse=True)
