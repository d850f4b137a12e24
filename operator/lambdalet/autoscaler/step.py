"""One Function's turn in the autoscaler loop: from what is observed to "write N" or nothing.

Where it sits: the loop (``lambdalet.autoscaler.loop``) calls ``step`` on every tick and on every
poke with the Function's Deployment as kopf's index last saw it, the reported ``Signal`` and the
``Tracked`` record the previous turn left; it writes the scale only when the returned ``Step``
says so, and keeps ``Step.tracked`` for the next turn. Pure: no I/O, ``now`` is passed in.

Two things sit between the index and ``decide``:

* The index lags the autoscaler's own writes by a watch event. A count just written is taken
  as the current one until the index shows it (or ``WRITE_MEMORY_SECONDS`` pass), so the next
  tick does not write the same count again. E.g. written 1 at t=10.0, the index still says 0
  at t=10.3: current is 1, decide wants 1, nothing is written.
* A count the autoscaler did not set (``kubectl scale``, a Deployment deleted and created again)
  is taken like one found after a restart: the decision state starts afresh, so the pods that
  run keep their grace (``decide`` counts running pods as active on a first decision) instead
  of being cut at once. A restarted operator facing Functions at their right counts, or at a
  count set by hand, therefore writes nothing on its first turns.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from lambdalet.autoscaler.decide import Decision, Observations, State, decide
from lambdalet.autoscaler.policy import Policy
from lambdalet.autoscaler.signals import Signal
from lambdalet.contracts.deployments import DeploymentState

# How long a write is trusted over an index that has not shown it; a watch event normally
# arrives within a second, and kopf relists after a broken watch.
WRITE_MEMORY_SECONDS = 30.0


@dataclass(frozen=True)
class Written:
    replicas: int
    at: float


@dataclass(frozen=True)
class Tracked:
    """What the loop keeps per Function between turns (in memory only)."""

    state: State = field(default_factory=State.initial)
    # The count the last turn left the Deployment at (written, or found already right); None
    # before the first turn and after a failed write, when it is not known.
    asked: int | None = None
    written: Written | None = None  # the latest write the index has not shown yet

    def failed(self) -> Tracked:
        """After a write that did not happen: the Deployment keeps what the index says."""
        return replace(self, asked=None, written=None)


@dataclass(frozen=True)
class Step:
    tracked: Tracked
    decision: Decision
    current: int  # the count the decision started from

    @property
    def write(self) -> int | None:
        """The count to write to the scale subresource, or None to write nothing."""
        replicas = self.decision.replicas
        return replicas if replicas != self.current else None


def resting(policy: Policy, deployment: DeploymentState, tracked: Tracked, quiet: bool) -> bool:
    """Whether a turn would certainly leave a Function at zero and write nothing, so the loop
    may skip it (most Functions, most of the time, at a few microseconds instead of a decision).

    True when the last turn left it at 0 with nothing in flight to the API server, it is still
    at 0, may be at 0 (``min_scale`` 0), and nothing was reported since (``quiet``: no sample,
    queued message or poke). A count of 0 is only ever decided once idle for the whole grace,
    which also ends panic; with no new activity it stays idle, so ``decide`` would again say
    0. The state it would return differs only in peaks, and a peak of 0 never holds anything.
    """
    return (
        quiet
        and policy.min_scale == 0
        and deployment.replicas == 0
        and tracked.asked == 0
        and tracked.written is None
    )


def step(
    policy: Policy,
    deployment: DeploymentState,
    signal: Signal,
    tracked: Tracked,
    now: float,
) -> Step:
    written = tracked.written
    if written is not None and (
        deployment.replicas == written.replicas or now - written.at >= WRITE_MEMORY_SECONDS
    ):
        written = None
    current = deployment.replicas if written is None else written.replicas
    state = tracked.state
    if tracked.asked is not None and current != tracked.asked:
        state = State.initial()  # set by someone else: like a restart, its history is unknown
    decision = decide(
        policy,
        Observations(
            samples=signal.samples,
            ready_pods=deployment.ready_replicas,
            current_replicas=current,
            queue_depth=signal.queue_depth,
            poked_at=signal.poked_at,
        ),
        state,
        now,
    )
    if decision.replicas != current:
        written = Written(decision.replicas, now)
    return Step(
        tracked=Tracked(state=decision.state, asked=decision.replicas, written=written),
        decision=decision,
        current=current,
    )
