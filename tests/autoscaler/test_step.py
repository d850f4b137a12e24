"""step: one Function's turn, from the index's Deployment and the reports to "write N" or nothing.

Default policy: target 1.0 per pod at 70 %, grace 60 s, stable window 60 s, panic window 6 s.
"""

from __future__ import annotations

import pytest

from lambdalet.autoscaler import Policy, Reason, State
from lambdalet.autoscaler.signals import Signal
from lambdalet.autoscaler.step import WRITE_MEMORY_SECONDS, Tracked, Written, resting, step
from lambdalet.contracts.deployments import DeploymentState

NOW = 1000.0
P = Policy(max_scale=20)
# A Function observed for a long time and idle for a long time.
IDLE = State(observing_since=0.0, last_active_at=0.0)


def deployment(replicas: int, ready: int = 0) -> DeploymentState:
    return DeploymentState(
        name="fn-hello", owner_uid="uid-1", applied_hash="h", replicas=replicas,
        ready_replicas=ready,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("tracked", "replicas", "signal", "write", "current"),
    [
        # First turns (a new Function, or a restarted operator): counts that are right stay.
        (Tracked(), 0, Signal(), None, 0),
        (Tracked(), 3, Signal(), None, 3),
        # A cold-start poke with no pod: one, at once.
        (Tracked(), 0, Signal(poked_at=NOW - 0.01), 1, 0),
        # 7 in flight at 0.7 per pod.
        (Tracked(), 0, Signal(samples=((NOW, 7.0),)), 10, 0),
        # Just written, the index has not seen it: that count is current, nothing is rewritten.
        (
            Tracked(IDLE, asked=1, written=Written(1, NOW - 0.2)),
            0,
            Signal(poked_at=NOW - 0.3),
            None,
            1,
        ),
        # ... but a decision that wants more than the pending write still writes.
        (
            Tracked(IDLE, asked=1, written=Written(1, NOW - 0.2)),
            0,
            Signal(samples=((NOW, 7.0),), poked_at=NOW - 0.3),
            10,
            1,
        ),
        # A count set by someone else (here 3, while the autoscaler left it at 0): a fresh start,
        # so the pods keep their grace instead of being halved at once ...
        (Tracked(IDLE, asked=0), 3, Signal(), None, 3),
        # ... whereas the autoscaler's own 3, idle for the whole grace, goes down.
        (Tracked(IDLE, asked=3), 3, Signal(), 1, 3),
        # After a failed write nothing is known of the count: no fresh start, the write repeats.
        (Tracked(IDLE, asked=3).failed(), 3, Signal(), 1, 3),
        # A write the index never showed is forgotten after a while: the index wins (and, not
        # being what the autoscaler asked for, means a fresh start).
        (
            Tracked(IDLE, asked=5, written=Written(5, NOW - WRITE_MEMORY_SECONDS)),
            2,
            Signal(),
            None,
            2,
        ),
    ],
    ids=[
        "idle-at-zero",
        "restart-at-three",
        "poke",
        "stats",
        "pending-write-not-repeated",
        "pending-write-overtaken",
        "set-by-hand",
        "own-count-scales-down",
        "after-failure",
        "write-memory-expires",
    ],
)
def test_step(
    tracked: Tracked, replicas: int, signal: Signal, write: int | None, current: int
) -> None:
    result = step(P, deployment(replicas), signal, tracked, NOW)

    assert (result.write, result.current) == (write, current)
    assert result.tracked.asked == result.decision.replicas
    assert result.tracked.state == result.decision.state


def test_a_write_is_remembered_until_the_index_shows_it() -> None:
    first = step(P, deployment(0), Signal(poked_at=NOW), Tracked(), NOW)
    assert first.write == 1
    assert first.tracked.written == Written(1, NOW)
    assert first.decision.reason is Reason.POKE

    lagging = step(P, deployment(0), Signal(poked_at=NOW), first.tracked, NOW + 0.5)
    assert lagging.write is None
    assert lagging.tracked.written == Written(1, NOW)

    seen = step(P, deployment(1), Signal(poked_at=NOW), lagging.tracked, NOW + 1)
    assert seen.write is None
    assert seen.tracked.written is None
    assert seen.tracked.asked == 1


def test_failed_forgets_the_count_but_keeps_the_history() -> None:
    tracked = Tracked(IDLE, asked=4, written=Written(4, NOW))

    assert tracked.failed() == Tracked(IDLE, asked=None, written=None)


AT_REST = Tracked(IDLE, asked=0)


@pytest.mark.parametrize(
    ("policy", "replicas", "tracked", "quiet", "expected"),
    [
        (P, 0, AT_REST, True, True),
        (P, 0, AT_REST, False, False),  # something was reported or poked
        (P, 2, AT_REST, True, False),  # scaled by someone else
        (Policy(min_scale=1), 0, AT_REST, True, False),  # minScale raised since
        (P, 0, Tracked(IDLE, asked=1), True, False),  # last left at one
        (P, 0, Tracked(), True, False),  # never decided
        (P, 0, Tracked(IDLE, asked=0, written=Written(0, NOW)), True, False),  # write pending
    ],
    ids=["at-rest", "reported", "scaled-by-hand", "min-scale", "at-one", "new", "pending"],
)
def test_resting(
    policy: Policy, replicas: int, tracked: Tracked, quiet: bool, expected: bool
) -> None:
    assert resting(policy, deployment(replicas), tracked, quiet) is expected


@pytest.mark.parametrize("later", [1.0, 60.0, 3600.0])
def test_a_resting_function_would_decide_zero_and_write_nothing(later: float) -> None:
    """What ``resting`` lets the loop skip: the decision it would have made, made."""
    first = step(P, deployment(0), Signal(), Tracked(), NOW)
    assert resting(P, deployment(0), first.tracked, quiet=True)

    skipped = step(P, deployment(0), Signal(), first.tracked, NOW + later)

    assert skipped.write is None
    assert skipped.decision.replicas == 0
    assert skipped.decision.reason is Reason.SCALE_TO_ZERO
