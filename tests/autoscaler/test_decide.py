"""decide: one decision per row, then short scripted runs in simulated time (no clock, no sleeps).

Unless a row says otherwise the policy is the default: target 1.0 per pod at 70 % utilisation,
so ``ceil(in_flight / 0.7)`` pods (7 in flight -> 10 pods, 3.5 -> 5, 14 -> 20).
"""

from __future__ import annotations

import itertools
import math

import pytest

from lambdalet.autoscaler import (
    Observations,
    ObservationsError,
    Policy,
    Reason,
    Sample,
    State,
    decide,
)
from tests.autoscaler.sim import Step, ramp, simulate

NOW = 1000.0
P = Policy()
WIDE = Policy(max_scale=100)
# A state with a full stable window of history and recent activity, but no recorded peaks.
SETTLED = State(observing_since=0.0, last_active_at=NOW)


def load(level: float, seconds: int = 60, *, until: float = NOW) -> tuple[Sample, ...]:
    """One sample per second, the last at ``until``."""
    return tuple((until - i, level) for i in reversed(range(seconds)))


def burst(base: float, peak: float, peak_seconds: int = 6) -> tuple[Sample, ...]:
    """``base`` for a stable window, then ``peak`` for its last ``peak_seconds`` seconds."""
    return load(base, 60 - peak_seconds, until=NOW - peak_seconds) + load(peak, peak_seconds)


def obs(
    samples: tuple[Sample, ...] = (),
    *,
    current: int = 0,
    ready: int | None = None,
    queue: int | None = None,
    poked_at: float | None = None,
) -> Observations:
    return Observations(
        samples=samples,
        ready_pods=current if ready is None else ready,
        current_replicas=current,
        queue_depth=queue,
        poked_at=poked_at,
    )


def idle_since(at: float) -> State:
    return State(observing_since=0.0, last_active_at=at)


PANICKING = State(
    observing_since=0.0,
    last_active_at=NOW,
    panic_since=NOW - 20,
    over_threshold_at=NOW - 10,
    panic_max=12,
)

R = Reason
ROWS = [
    # id, policy, observations, state, replicas, reason
    ("steady-at-target", P, obs(load(7.0), current=10), SETTLED, 10, R.STABLE),
    (
        "steady-per-instance-4",
        Policy(target_concurrency=4.0),
        obs(load(14.0), current=5),
        SETTLED,
        5,
        R.STABLE,
    ),
    ("stable-scale-up-below-panic", P, obs(load(4.9), current=5), SETTLED, 7, R.STABLE),
    ("burst-panics", WIDE, obs(burst(3.5, 14.0), current=5), SETTLED, 20, R.PANIC),
    ("burst-at-threshold-panics", WIDE, obs(burst(3.5, 7.0), current=5), SETTLED, 10, R.PANIC),
    (
        "cold-start-held-requests-panic",
        P,
        obs(((NOW, 5.0),), poked_at=NOW),
        State.initial(),
        8,
        R.PANIC,
    ),
    ("poke-from-zero", P, obs(poked_at=NOW), State.initial(), 1, R.POKE),
    (
        "poke-holds-while-no-pod-ready",
        Policy(scale_to_zero_after=0.0),
        obs(current=1, ready=0, poked_at=NOW - 20),
        idle_since(NOW - 20),
        1,
        R.POKE,
    ),
    (
        "poke-answered-then-idle",
        Policy(scale_to_zero_after=0.0),
        obs(current=1, ready=1, poked_at=NOW - 20),
        idle_since(NOW - 20),
        0,
        R.SCALE_TO_ZERO,
    ),
    (
        "poke-older-than-stable-window",
        P,
        obs(current=1, ready=0, poked_at=NOW - 60),
        idle_since(NOW - 60),
        0,
        R.SCALE_TO_ZERO,
    ),
    (
        "answered-poke-does-not-bring-zero-back",
        Policy(scale_to_zero_after=0.0),
        obs(load(0.2, 5, until=NOW - 10), current=0, ready=0, poked_at=NOW - 20),
        State(observing_since=0.0, last_active_at=NOW - 10, ready_at=NOW - 12),
        0,
        R.SCALE_TO_ZERO,
    ),
    ("poke-in-the-future-ignored", P, obs(poked_at=NOW + 1), State.initial(), 0, R.SCALE_TO_ZERO),
    ("queue-from-zero", P, obs(queue=23), State.initial(), 5, R.QUEUE),
    ("queue-beats-concurrency", P, obs(load(0.7), current=1, queue=40), SETTLED, 8, R.QUEUE),
    ("concurrency-beats-queue", P, obs(load(7.0), current=10, queue=5), SETTLED, 10, R.STABLE),
    ("queue-of-one-is-activity", P, obs(current=1, queue=1), idle_since(0.0), 1, R.QUEUE),
    (
        "empty-queue-is-not-activity",
        P,
        obs(current=1, queue=0),
        idle_since(0.0),
        0,
        R.SCALE_TO_ZERO,
    ),
    ("grace", P, obs(current=1), idle_since(NOW - 30), 1, R.GRACE),
    ("grace-over", P, obs(current=1), idle_since(NOW - 60), 0, R.SCALE_TO_ZERO),
    ("idle-at-zero-stays-zero", P, obs(), State.initial(), 0, R.SCALE_TO_ZERO),
    ("restart-keeps-running-pods", P, obs(current=3), State.initial(), 3, R.HOLD),
    ("min-holds-idle", Policy(min_scale=2), obs(current=2), idle_since(0.0), 2, R.MIN),
    ("min-from-zero", Policy(min_scale=2), obs(), State.initial(), 2, R.MIN),
    ("max-caps-burst", P, obs(burst(3.5, 14.0), current=5), SETTLED, 10, R.MAX),
    ("max-lowered-below-current", P, obs(load(14.0), current=20), SETTLED, 10, R.MAX),
    (
        "rate-limited-up",
        Policy(max_scale=100, max_scale_up_rate=2.0),
        obs(load(7.0), current=2),
        SETTLED,
        4,
        R.RATE_LIMITED,
    ),
    ("cold-burst-not-throttled", WIDE, obs(load(14.0, 3)), State.initial(), 20, R.PANIC),
    ("rate-limited-down", WIDE, obs(current=20), SETTLED, 10, R.RATE_LIMITED),
    ("rate-limited-to-zero", P, obs(current=10), idle_since(0.0), 5, R.RATE_LIMITED),
    ("odd-count-halves-down", P, obs(current=3), idle_since(0.0), 1, R.RATE_LIMITED),
    ("last-pod-may-go", P, obs(current=1), idle_since(0.0), 0, R.SCALE_TO_ZERO),
    (
        "hold-without-history",
        P,
        obs(load(2.1, 10), current=10),
        State.initial(),
        10,
        R.HOLD,
    ),
    (
        "hold-at-window-peak",
        P,
        obs(load(2.1), current=10),
        State(observing_since=0.0, last_active_at=NOW, peaks=((NOW - 30, 8),)),
        8,
        R.HOLD,
    ),
    (
        "peak-left-window",
        P,
        obs(load(3.5), current=8),
        State(observing_since=0.0, last_active_at=NOW, peaks=((NOW - 60, 8),)),
        5,
        R.STABLE,
    ),
    ("panic-never-scales-down", WIDE, obs(load(0.7), current=12), PANICKING, 12, R.PANIC),
    (
        "panic-keeps-its-peak",
        Policy(max_scale=20),
        obs(load(0.7), current=5),
        PANICKING,
        12,
        R.PANIC,
    ),
]


@pytest.mark.parametrize(
    ("policy", "observations", "state", "replicas", "reason"),
    [pytest.param(*row[1:], id=row[0]) for row in ROWS],
)
def test_decide(
    policy: Policy, observations: Observations, state: State, replicas: int, reason: Reason
) -> None:
    decision = decide(policy, observations, state, NOW)

    assert (decision.replicas, decision.reason) == (replicas, reason)


@pytest.mark.parametrize(
    ("since_crossing", "panicking"),
    [
        pytest.param(59.0, True, id="one-second-short"),
        pytest.param(60.0, False, id="a-full-stable-window"),
    ],
)
def test_panic_exit(since_crossing: float, panicking: bool) -> None:
    state = State(
        observing_since=0.0,
        last_active_at=NOW,
        panic_since=NOW - 100,
        over_threshold_at=NOW - since_crossing,
        panic_max=12,
    )

    decision = decide(WIDE, obs(load(7.0), current=12), state, NOW)

    assert decision.state.panicking is panicking
    assert decision.replicas == (12 if panicking else 10)
    assert decision.state.panic_max == (12 if panicking else 0)


def test_scale_to_zero_ends_panic() -> None:
    state = State(
        observing_since=0.0,
        last_active_at=NOW - 60,
        panic_since=NOW - 70,
        over_threshold_at=NOW - 61,
        panic_max=2,
    )

    decision = decide(P, obs(current=1), state, NOW)

    assert (decision.replicas, decision.reason, decision.state.panicking) == (
        0,
        R.SCALE_TO_ZERO,
        False,
    )


def test_state_records_activity_and_averages() -> None:
    decision = decide(P, obs(burst(0.0, 3.0, 3), current=1, queue=0), SETTLED, NOW)

    assert decision.state.last_active_at == NOW
    assert decision.state.observing_since == 0.0
    assert decision.stable_concurrency == pytest.approx(9.0 / 60)
    assert decision.panic_concurrency == pytest.approx(9.0 / 6)
    assert decision.state.peaks == ((NOW, 3),)  # the panic-window desire, ceil(1.5 / 0.7)


@pytest.mark.parametrize(
    "observations",
    [
        pytest.param({"ready_pods": -1}, id="negative-ready"),
        pytest.param({"current_replicas": -1}, id="negative-current"),
        pytest.param({"queue_depth": -3}, id="negative-queue"),
        pytest.param({"samples": ((NOW, -1.0),)}, id="negative-in-flight"),
        pytest.param({"samples": ((NOW, math.nan),)}, id="nan-in-flight"),
        pytest.param({"samples": ((math.inf, 1.0),)}, id="infinite-time"),
    ],
)
def test_impossible_observations(observations: dict[str, object]) -> None:
    with pytest.raises(ObservationsError):
        Observations(**observations)  # type: ignore[arg-type]


# Scripted runs: decide once per simulated second.


def at(steps: list[Step], t: int) -> Step:
    (step,) = (s for s in steps if s.at == t)
    return step


def test_burst_panics_within_the_panic_window() -> None:
    # 5 pods at 3.5 in flight for two minutes, then 14 in flight (20 pods' worth) from t=120.
    steps = simulate(WIDE, ramp((120, 3.5, 3.5), (60, 14.0, 14.0)), range(240), replicas=5)

    assert {s.replicas for s in steps if 60 <= s.at < 120} == {5}
    assert any(s.decision.reason is R.PANIC for s in steps if 120 <= s.at < 126)
    assert at(steps, 125).replicas >= 20  # the panic window is all burst by t=125


def test_panic_ends_a_stable_window_after_the_last_crossing() -> None:
    # 5 pods at 3.5, a 10 s burst to 14 at t=120, back to 3.5.
    steps = simulate(
        WIDE, ramp((120, 3.5, 3.5), (10, 14.0, 14.0), (200, 3.5, 3.5)), range(330), replicas=5
    )
    panic = [s for s in steps if s.decision.state.panicking]
    last_crossing = max(s.decision.state.over_threshold_at or 0.0 for s in panic)

    assert panic[0].at < 126
    assert [s.at for s in panic] == list(range(panic[0].at, int(last_crossing) + 60))
    counts = [s.replicas for s in panic]
    assert counts == sorted(counts)  # never down while panicking
    assert at(steps, 329).replicas == 5  # back to the plateau's count afterwards


@pytest.mark.parametrize("dip", [5, 30, 50])
@pytest.mark.parametrize("report_zeros", [True, False], ids=["zeros-reported", "reports-missing"])
def test_short_dip_does_not_scale_down(dip: int, report_zeros: bool) -> None:
    # 10 pods at 7 in flight for two minutes, no traffic for `dip` seconds, then 7 again.
    script = ramp((120, 7.0, 7.0), (dip, 0.0, 0.0), (120, 7.0, 7.0))
    steps = simulate(P, script, range(120 + dip + 120), replicas=10, report_zeros=report_zeros)

    assert {s.replicas for s in steps} == {10}


def test_dip_longer_than_the_stable_window_scales_down() -> None:
    # 10 pods at 7 in flight, 0.5 in flight (one pod) from t=120 to 269, 7 again from t=270.
    script = ramp((120, 7.0, 7.0), (150, 0.5, 0.5), (60, 7.0, 7.0))
    steps = simulate(P, script, range(330), replicas=10)
    counts = [s.replicas for s in steps]

    assert set(counts[:180]) == {10}  # held for a stable window
    assert counts[180:240] == sorted(counts[180:240], reverse=True)  # then down, step by step
    assert set(counts[240:270]) == {1}
    assert set(counts[276:]) == {10}  # back within the panic window


def test_decay_scales_down_gradually_within_the_rate() -> None:
    # 20 pods at 14 in flight, then nothing; a long grace lets the windows do the scaling down.
    policy = Policy(max_scale=50, scale_to_zero_after=600.0)
    steps = simulate(policy, ramp((120, 14.0, 14.0)), range(400), replicas=20)
    counts = [s.replicas for s in steps]

    assert all(b >= math.floor(a / 2) for a, b in itertools.pairwise(counts))
    assert {s.replicas for s in steps if s.at < 180} == {20}  # one stable window of hold
    assert at(steps, 240).replicas == 1  # decayed by two stable windows
    assert {s.decision.reason for s in steps if s.at >= 240} == {R.GRACE}


def test_rate_limit_halves_per_step() -> None:
    # A short grace: 20 idle pods go 20 -> 10 -> 5 -> 2 -> 1 -> 0, one halving per decision.
    policy = Policy(max_scale=50, scale_to_zero_after=10.0)
    steps = simulate(policy, ramp((60, 14.0, 14.0)), range(80), replicas=20)

    assert [s.replicas for s in steps if 68 <= s.at <= 74] == [20, 10, 5, 2, 1, 0, 0]


@pytest.mark.parametrize(
    ("scale_to_zero_after", "grace"),
    [(30.0, 30), (60.0, 60), (300.0, 300), (0.0, 6)],
)
def test_scale_to_zero_after_exactly_the_grace(scale_to_zero_after: float, grace: int) -> None:
    # 0.7 in flight (one pod) until t=99 inclusive, then nothing.
    policy = Policy(scale_to_zero_after=scale_to_zero_after)
    steps = simulate(policy, ramp((100, 0.7, 0.7)), range(100 + grace + 5), replicas=1)

    assert at(steps, 99 + grace - 1).replicas >= 1
    assert at(steps, 99 + grace).replicas == 0
    assert at(steps, 99 + grace).decision.reason is R.SCALE_TO_ZERO


def test_poke_scales_from_zero_before_any_sample() -> None:
    decision = decide(P, obs(poked_at=NOW), idle_since(0.0), NOW)

    assert (decision.replicas, decision.reason) == (1, R.POKE)
    assert decision.state.last_active_at == NOW


def test_a_cold_start_that_went_back_to_zero_stays_there() -> None:
    # A poke and five seconds of one request from t=0, then silence (activators report only
    # while there is load): once at zero, the count stays at zero for the rest of the window,
    # although the stable average still remembers the load and the poke is within the window.
    policy = Policy(scale_to_zero_after=0.0)
    steps = simulate(policy, ramp((5, 1.0, 1.0)), range(120), report_zeros=False)

    first_zero = next(s.at for s in steps if s.at > 5 and s.replicas == 0)
    assert first_zero <= 5 + 6 + 2  # the grace (a panic window) after the load, rate limits
    assert all(s.replicas == 0 for s in steps if s.at >= first_zero)


def test_queue_alone_scales_from_zero_and_holds_while_messages_wait() -> None:
    # 23 messages, then 1 message that nobody drains for ten minutes, then an empty queue.
    def queue(t: int) -> int:
        return 23 if t < 10 else 1 if t < 600 else 0

    steps = simulate(P, ramp(), range(700), queue=queue)

    assert (steps[0].replicas, steps[0].decision.reason) == (5, R.QUEUE)
    assert min(s.replicas for s in steps if s.at < 600) >= 1
    assert at(steps, 658).replicas == 1  # the last message left at t=599
    assert at(steps, 659).replicas == 0


def test_min_scale_never_reaches_zero() -> None:
    policy = Policy(min_scale=1, scale_to_zero_after=0.0)
    steps = simulate(policy, ramp((30, 7.0, 7.0)), range(600))

    assert min(s.replicas for s in steps) == 1
    assert at(steps, 599).decision.reason is R.MIN


def test_restart_holds_for_a_stable_window() -> None:
    # The autoscaler restarts (State.initial()) with 10 pods running and 2.1 in flight (3 pods'
    # worth): no scale-down until it has seen a whole stable window, then down to 3.
    steps = simulate(P, lambda t: 2.1, range(1000, 1100), replicas=10)

    assert {s.replicas for s in steps if s.at < 1060} == {10}
    assert [s.replicas for s in steps if 1060 <= s.at <= 1062] == [5, 3, 3]
