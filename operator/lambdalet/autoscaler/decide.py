"""The autoscaler's decision: how many pods a Function should run, from what was observed.

Where it sits: the activators count in-flight invocations per Function and report them about once
a second (held cold-start requests count: they are waiting for a pod); the event dispatcher
reports queue depth; an activator that holds a request for a Function with no ready pod *pokes*.
The autoscaler loop (the thin shell, leader only) gathers these into ``Observations``, calls
``decide`` on every tick and on every poke, patches the Deployment's ``scale`` subresource with
``Decision.replicas``, and keeps ``Decision.state`` for the next call. ``decide`` does no I/O and
reads no clock: ``now`` is seconds on the shell's monotonic clock, like every timestamp here.

The rules, in the order ``decide`` applies them (Knative's KPA, plus KEDA-style queue depth):

1. Desire. Average in-flight over the stable (60 s) and panic (6 s) windows (see
   ``windows.window_average`` for gaps and short histories), then
   ``desired = ceil(average / (target_concurrency x target_utilisation))``; from the queue,
   ``ceil(queue_depth / queue_target)``. The base desire is the larger of stable and queue.
   E.g. target 1.0 x 0.7: 7 in flight -> 10 pods; queue of 23 at 5 per pod -> 5 pods.
2. Panic. Enter (or extend) when ``desired_panic / max(ready_pods, 1) >= panic_threshold``; a
   cold start (traffic, no ready pod) counts as one pod, so at 0.7 per pod even one held
   request (desire ceil(1 / 0.7) = 2) panics. In panic the count only grows: the highest of the
   current count, both desires and the panic peak. Leave once a whole stable window has passed
   without crossing.
   E.g. 5 ready pods, the 6 s average jumps to 8.4 in flight: ceil(8.4 / 0.7) = 12 >= 2 x 5.
3. Hold (flapping protection). Out of panic, scale down only to the highest desire -- stable,
   panic-window or queue -- seen over the last stable window, and not at all in the first stable
   window after ``State.initial()`` (no history yet). The panic-window desire is in the peak
   because the stable average remembers a dip for a whole window after it ends, so "the stable
   desire stayed low for a window" alone would let any dip scale down one window later; the
   panic-window desire follows the load within seconds, so its peak says "the load itself has
   been lower for a whole window". A dip shorter than the stable window minus the panic window
   never scales down.
   E.g. 10 pods at desire 10 until t=100, desire 6 after: 10 pods until t=159, 6 at t=160.
4. Scale to zero. Activity is an in-flight sample > 0, a queued message or a poke. After
   ``scale_to_zero_grace`` seconds without activity (``scale_to_zero_after``, at least a panic
   window) the want is 0, whatever the windows say, and panic ends. Before that, at least 1
   ("grace"). A poke while no pod is ready holds at least 1 for a stable window ("poke"), even
   once the grace has run out, so a slow first start is not cut short -- until a pod has been
   ready after it: a poke that was answered must not bring the count back from 0 later.
   E.g. last in-flight sample at t=100, scale_to_zero_after 60: 1 pod at t=159, 0 at t=160.
5. Rate limits, per decision, from the current count c: up to ``ceil(max(c, 1) x up_rate)``,
   down to ``floor(c / down_rate)``. E.g. down rate 2: 10 -> 5 -> 2 -> 1 -> 0.
6. Bounds: ``[min_scale, max_scale]`` win over everything (``min_scale > 0`` never reaches 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from lambdalet.autoscaler.policy import Policy
from lambdalet.autoscaler.windows import (
    PRECISION,
    Peak,
    Sample,
    ceil_pods,
    push_peak,
    window_average,
    window_peak,
)


class Reason(StrEnum):
    """The rule that settled a decision's count, for logs and metrics."""

    STABLE = "stable"  # the stable-window desire (also when nothing changes)
    QUEUE = "queue"  # queue depth wants more than concurrency
    PANIC = "panic"  # panic mode: the panic window's desire, never scaling down
    HOLD = "hold"  # a scale-down held back by the last stable window's peak (or no history)
    POKE = "poke"  # a cold-start poke with no ready pod: at least one
    GRACE = "grace"  # recent activity, nothing in flight: keep one until the grace runs out
    SCALE_TO_ZERO = "scale-to-zero"  # idle for the whole grace
    RATE_LIMITED = "rate-limited"  # a step capped by max_scale_up_rate / max_scale_down_rate
    MIN = "min"  # raised to min_scale
    MAX = "max"  # capped at max_scale


class ObservationsError(ValueError):
    """The shell passed observations that cannot be true (negative counts, nan)."""


@dataclass(frozen=True)
class Observations:
    """What the shell saw for one Function, gathered just before ``decide``."""

    # Function-wide in-flight invocations over (at least) the last stable window, one
    # (timestamp, in_flight) pair per report; order does not matter, older ones are ignored.
    samples: tuple[Sample, ...] = ()
    ready_pods: int = 0  # pods ready to take invocations (EndpointSlice / pod readiness)
    current_replicas: int = 0  # the Deployment's spec.replicas: what was last asked for
    queue_depth: int | None = None  # messages waiting (event dispatcher); None when no source
    poked_at: float | None = None  # time of the latest cold-start poke from an activator

    def __post_init__(self) -> None:
        if min(self.ready_pods, self.current_replicas, self.queue_depth or 0) < 0:
            raise ObservationsError(f"counts must not be negative: {self}")
        for at, in_flight in self.samples:
            if not (math.isfinite(at) and math.isfinite(in_flight) and in_flight >= 0):
                raise ObservationsError(f"sample ({at}, {in_flight}) is not a finite count")


@dataclass(frozen=True)
class State:
    """What one decision hands the next; the shell keeps it per Function, in memory."""

    observing_since: float | None = None  # time of the first decision since initial()
    last_active_at: float | None = None  # latest in-flight sample > 0, queued message or poke
    panic_since: float | None = None  # when panic mode began; None out of panic
    over_threshold_at: float | None = None  # latest decision that crossed the panic threshold
    panic_max: int = 0  # highest count wanted in this panic
    peaks: tuple[Peak, ...] = ()  # desires of the last stable window (windows.push_peak)
    ready_at: float | None = None  # latest decision that saw a ready pod

    @classmethod
    def initial(cls) -> State:
        """The state of a Function the autoscaler has not decided for yet (or after a restart)."""
        return cls()

    @property
    def panicking(self) -> bool:
        return self.panic_since is not None


@dataclass(frozen=True)
class Decision:
    replicas: int
    state: State
    reason: Reason
    # For metrics: the window averages (in-flight invocations) the decision was based on.
    stable_concurrency: float = 0.0
    panic_concurrency: float = 0.0


def decide(policy: Policy, observations: Observations, state: State, now: float) -> Decision:
    """The replica count for ``now``, the reason, and the state for the next decision."""
    obs = observations
    current = obs.current_replicas
    first_decision = state.observing_since is None
    observing_since = now if state.observing_since is None else state.observing_since

    # 1. Desire.
    stable_avg = window_average(obs.samples, now, policy.stable_window)
    panic_avg = window_average(obs.samples, now, policy.panic_window)
    desired_stable = ceil_pods(stable_avg / policy.per_pod)
    desired_panic = ceil_pods(panic_avg / policy.per_pod)
    desired_queue = ceil_pods((obs.queue_depth or 0) / policy.queue_target)
    if desired_queue > desired_stable:
        want, reason = desired_queue, Reason.QUEUE
    else:
        want, reason = desired_stable, Reason.STABLE
    peaks = push_peak(state.peaks, now, max(want, desired_panic), policy.stable_window)

    # 2. Panic.
    panic = _panic_update(policy, state, desired_panic, obs.ready_pods, now)
    if panic.panicking:
        want = max(current, desired_panic, want, panic.panic_max)
        panic = replace(panic, panic_max=want)
        reason = Reason.PANIC
    # 3. Hold: the last stable window's peak desire (or, with no full window of history yet,
    # the current count) is as low as a scale-down may go.
    elif want < current:
        if now - observing_since < policy.stable_window:
            floor = current
        else:
            floor = min(current, window_peak(peaks, now, policy.stable_window))
        if floor > want:
            want, reason = floor, Reason.HOLD

    # 4. Scale to zero, grace and poke.
    last_active_at = _last_active(obs, state.last_active_at, now, assume_active=first_decision)
    idle = last_active_at is None or now - last_active_at >= policy.scale_to_zero_grace
    poke_pending = (
        obs.poked_at is not None
        and obs.ready_pods == 0
        and 0 <= now - obs.poked_at < policy.stable_window
        and (state.ready_at is None or obs.poked_at > state.ready_at)
    )
    if idle and not poke_pending:
        want, reason = 0, Reason.SCALE_TO_ZERO
        panic = replace(panic, panic_since=None, over_threshold_at=None, panic_max=0)
    elif want == 0:
        want, reason = 1, Reason.POKE if poke_pending else Reason.GRACE

    # 5. Rate limits, relative to the count last asked for. From 0 the up limit acts as if one
    # pod ran (ceil(1 x 1000) = 1000), so a cold burst is not throttled to one pod; the down
    # limit reaches 0 from 1 (floor(1 / 2) = 0).
    up = ceil_pods(max(current, 1) * policy.max_scale_up_rate)
    down = math.floor(round(current / policy.max_scale_down_rate, PRECISION))
    limited = min(max(want, down), up)
    if limited != want:
        reason = Reason.RATE_LIMITED

    # 6. Bounds.
    replicas = min(max(limited, policy.min_scale), policy.max_scale)
    if replicas > limited:
        reason = Reason.MIN
    elif replicas < limited:
        reason = Reason.MAX

    return Decision(
        replicas=replicas,
        state=replace(
            panic,
            observing_since=observing_since,
            last_active_at=last_active_at,
            peaks=peaks,
            ready_at=now if obs.ready_pods > 0 else state.ready_at,
        ),
        reason=reason,
        stable_concurrency=stable_avg,
        panic_concurrency=panic_avg,
    )


def _panic_update(
    policy: Policy, state: State, desired_panic: int, ready_pods: int, now: float
) -> State:
    """``state`` with panic mode entered, extended, left or kept as it was."""
    if desired_panic / max(ready_pods, 1) >= policy.panic_threshold:
        since = now if state.panic_since is None else state.panic_since
        return replace(state, panic_since=since, over_threshold_at=now)
    crossed_at = state.over_threshold_at
    if crossed_at is not None and now - crossed_at >= policy.stable_window:
        return replace(state, panic_since=None, over_threshold_at=None, panic_max=0)
    return state


def _last_active(
    obs: Observations, previous: float | None, now: float, *, assume_active: bool
) -> float | None:
    """The latest moment with in-flight invocations, queued messages or a poke, up to ``now``.

    On the first decision after a (re)start, pods that already run count as active now: their
    history is unknown, so the grace starts afresh instead of dropping them at once.
    """
    moments = [at for at, in_flight in obs.samples if in_flight > 0 and at <= now]
    if obs.queue_depth or (assume_active and obs.current_replicas > 0):
        moments.append(now)
    if obs.poked_at is not None and obs.poked_at <= now:
        moments.append(obs.poked_at)
    if previous is not None:
        moments.append(previous)
    return max(moments, default=None)
