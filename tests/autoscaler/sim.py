"""A simulated autoscaler shell: steps ``decide`` once per simulated second through a script.

It plays the parts the real loop and its neighbours will: the activators report the offered
in-flight load every second (held cold-start requests included) and poke when a request finds no
ready pod; the Deployment takes the decided count at once and its new pods turn ready
``ready_delay`` seconds later. No clock, no sleeps: time is the loop variable.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

from lambdalet.autoscaler import Decision, Observations, Policy, Sample, State, decide

Script = Callable[[int], float]


@dataclass(frozen=True)
class Step:
    at: int
    in_flight: float
    ready: int
    decision: Decision

    @property
    def replicas(self) -> int:
        return self.decision.replicas


def ramp(*parts: tuple[int, float, float]) -> Script:
    """Piecewise-linear load from t=0: each part is (seconds, level at start, level at end)."""

    def load(t: int) -> float:
        start = 0
        for seconds, first, last in parts:
            if t < start + seconds:
                return first + (last - first) * (t - start) / seconds
            start += seconds
        return 0.0

    return load


def simulate(
    policy: Policy,
    load: Script,
    seconds: range,
    *,
    replicas: int = 0,
    state: State | None = None,
    ready_delay: int = 2,
    queue: Callable[[int], int] | None = None,
    report_zeros: bool = True,
) -> list[Step]:
    state = State.initial() if state is None else state
    current = replicas
    asked: dict[int, int] = {}  # second -> replicas decided then
    samples: list[Sample] = []
    poked_at: float | None = None
    steps: list[Step] = []
    for t in seconds:
        in_flight = load(t)
        if in_flight > 0 or report_zeros:
            samples.append((float(t), in_flight))
        samples = [s for s in samples if s[0] > t - policy.stable_window]
        ready = min(current, asked.get(t - ready_delay, replicas))
        if in_flight > 0 and ready == 0:
            poked_at = float(t)
        observations = Observations(
            samples=tuple(samples),
            ready_pods=ready,
            current_replicas=current,
            queue_depth=None if queue is None else queue(t),
            poked_at=poked_at,
        )
        decision = decide(policy, observations, state, float(t))
        state, current = decision.state, decision.replicas
        asked[t] = current
        steps.append(Step(at=t, in_flight=in_flight, ready=ready, decision=decision))
    return steps


def direction_changes(counts: list[int]) -> int:
    """How often a sequence turns from growing to shrinking or back (flat stretches ignored)."""
    signs = [b > a for a, b in itertools.pairwise(counts) if a != b]
    return sum(1 for a, b in itertools.pairwise(signs) if a != b)
