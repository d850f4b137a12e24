"""The autoscaler loop: the thin shell that feeds ``decide`` and writes Deployments' scale.

Where it sits: inside the operator process, next to the reconcilers (``lambdalet.controller``),
which build it over their state (the latest Function bodies and kopf's index of their
Deployments) and start it. The HTTP endpoint (``lambdalet.autoscaler.api``) hands it the
activators' reports and cold-start pokes; it patches ``spec.replicas`` through the scale
subresource as the ``lambdalet-autoscaler`` field manager, the only writer of that field.

Every tick (``LAMBDALET_AUTOSCALER_TICK_SECONDS``) each known Function takes a turn (``step``; a
Function resting at zero with nothing reported is passed over, see ``step.resting``); a poke
gives its Function a turn at once, so a cold start waits for one scale write, not for a tick.
A turn writes only when the decided count differs from the current one, and at most one write per
Function is in flight: a Function whose write has not returned sits its turns out (a poke that
arrives meanwhile gets its turn when the write returns). Writes run as tasks, at most
``MAX_CONCURRENT_WRITES`` at once, so a slow API server never delays the next poke's decision.

Nothing is written for a Function whose Deployment is not in the index yet, or is not its own.
A failed write is logged and left to the next tick; a Deployment gone (404) is left to the
reconciler. Decision state lives only in memory: a restarted operator (or a new leader) starts
every Function afresh, which ``decide`` and ``step`` make write-free for Functions at their right
counts. ``leading`` gates every turn, for when several operator replicas elect a leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from lambdalet import names
from lambdalet.api.function import Function
from lambdalet.autoscaler.policy import Policy, PolicyError
from lambdalet.autoscaler.reports import StatsReport
from lambdalet.autoscaler.signals import Signals
from lambdalet.autoscaler.step import Step, Tracked, resting, step
from lambdalet.contracts.deployments import DeploymentState
from lambdalet.contracts.keys import Key
from lambdalet.contracts.problems import Problem
from lambdalet.contracts.views import View
from lambdalet.k8s import KubeError, NotFound
from lambdalet.settings import Settings

log = logging.getLogger("lambdalet.autoscaler")

MAX_CONCURRENT_WRITES = 16
# A tick hands the event loop back after this many turns (a few milliseconds), and turns the
# Functions poked meanwhile, so a poke never waits for thousands of Functions to be decided.
TURNS_PER_SLICE = 200


class ScaleWriter(Protocol):
    """Sets a Deployment's ``spec.replicas`` through its scale subresource (a KubeError if not)."""

    async def __call__(self, namespace: str, deployment: str, replicas: int) -> None: ...


@dataclass(eq=False, kw_only=True)
class Autoscaler:
    """The autoscaler's per-Function memory and the loop that acts on it."""

    settings: Settings
    functions: Mapping[Key, View[Function]]
    deployment: Callable[[Key], DeploymentState | None]
    write: ScaleWriter
    clock: Callable[[], float] = time.monotonic
    leading: Callable[[], bool] = lambda: True
    # Hears each cold start a report names, for a Function ``functions`` knows (the status
    # writer, ``lambdalet.controller.functions.coldstarts``).
    cold_start: Callable[[Key, float], None] | None = None
    _signals: Signals = field(init=False)
    _tracked: dict[Key, Tracked] = field(init=False, default_factory=dict)
    # Per Function: the model the policy was built from, and the policy
    # (None when the spec is invalid), so a body is parsed once per spec change, not per tick.
    _policies: dict[Key, tuple[Function | Problem, Policy | None]] = field(
        init=False, default_factory=dict
    )
    _writing: dict[Key, asyncio.Task[None]] = field(init=False, default_factory=dict)
    _write_slots: asyncio.Semaphore = field(
        init=False, default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT_WRITES)
    )
    _poked: set[Key] = field(init=False, default_factory=set)
    _wake: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self._signals = Signals(retain=self.settings.autoscaler_stable_window_seconds)

    # -- inputs (from the HTTP endpoint)

    def receive_stats(self, report: StatsReport) -> int:
        """Record a report; returns how many of its Functions are known (the others are ignored)."""
        if self.cold_start is not None:
            for load in report.functions:
                if load.cold_start_seconds is not None and load.key in self.functions:
                    self.cold_start(load.key, load.cold_start_seconds)
        return self._signals.record(report, self.clock(), self.functions)

    def receive_poke(self, key: Key) -> bool:
        """A cold-start poke: wakes the loop for ``key``. False when the Function is unknown."""
        if key not in self.functions:
            return False
        self._signals.poke(key, self.clock())
        self._poked.add(key)
        self._wake.set()
        return True

    # -- the loop

    async def run(self) -> None:
        """Tick every ``autoscaler_tick_seconds``, and turn poked Functions in between."""
        interval = self.settings.autoscaler_tick_seconds
        next_tick = self.clock()
        while True:
            self._wake.clear()
            now = self.clock()
            if now >= next_tick:
                await self.tick()
                next_tick += interval
                if next_tick <= now:  # fell behind (a long pause): do not tick in a burst
                    next_tick = now + interval
            else:
                for key in self._take_pokes():
                    self._turn(key)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_tick - self.clock()))

    async def tick(self) -> None:
        """A turn for every known Function; forget the ones deleted since the last tick."""
        functions = self.functions
        self._signals.keep_only(functions)
        for gone in [key for key in self._tracked if key not in functions]:
            del self._tracked[gone]
        for gone in [key for key in self._policies if key not in functions]:
            del self._policies[gone]
        self._take_pokes()  # this tick turns them
        for count, key in enumerate(list(functions), start=1):
            self._turn(key)
            if count % TURNS_PER_SLICE == 0:
                await asyncio.sleep(0)
                for poked in self._take_pokes():  # taken while the tick let go: not at its end
                    self._turn(poked)

    async def aclose(self) -> None:
        """Cancel the writes in flight (at shutdown)."""
        tasks = list(self._writing.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def writes_done(self) -> None:
        """Wait for the writes in flight to return (callers bound the wait)."""
        while self._writing:
            await asyncio.gather(*self._writing.values(), return_exceptions=True)

    def tracked(self, key: Key) -> Tracked | None:
        return self._tracked.get(key)

    # -- one Function

    def _take_pokes(self) -> list[Key]:
        """Poked Functions without a write in flight (the others wait for theirs to return)."""
        ready = [key for key in self._poked if key not in self._writing]
        self._poked.difference_update(ready)
        return ready

    def _turn(self, key: Key) -> None:
        if not self.leading():
            # A follower keeps no decision state: on taking over it starts like a restart.
            self._tracked.clear()
            return
        if key in self._writing:
            return
        view = self.functions.get(key)
        if view is None:
            return
        try:
            policy = self._policy(key, view)
            deployment = self.deployment(key)
            if policy is None or deployment is None:
                return
            uid = view.body["metadata"].get("uid")
            if deployment.owner_uid is None or deployment.owner_uid != uid:
                return  # not this Function's (the reconciler reports the conflict)
            now = self.clock()
            tracked = self._tracked.get(key, Tracked())
            if resting(policy, deployment, tracked, self._signals.quiet(key, now)):
                return
            signal = self._signals.signal(key, now)
            result = step(policy, deployment, signal, tracked, now)
        except Exception:  # a bug must not stop the loop for every other Function
            log.exception("%s/%s: autoscaling decision failed", *key)
            return
        self._tracked[key] = result.tracked
        if result.write is not None:
            self._writing[key] = asyncio.create_task(self._write(key, result, signal.poked_at))

    def _policy(self, key: Key, view: View[Function]) -> Policy | None:
        """The Function's policy, built once per model the shared view parsed (a status write
        hands over the same model)."""
        cached = self._policies.get(key)
        if cached is not None and cached[0] is view.parsed:
            return cached[1]
        policy = None
        function = view.model
        if function is not None:  # an invalid spec is reported by the reconciler
            try:
                policy = replace(
                    Policy.from_api(function.spec.scaling, function.spec.concurrency),
                    stable_window=self.settings.autoscaler_stable_window_seconds,
                    panic_window=self.settings.autoscaler_panic_window_seconds,
                )
            except PolicyError as exc:
                log.warning("%s/%s: not autoscaled: %s", *key, exc)
        self._policies[key] = (view.parsed, policy)
        return policy

    async def _write(self, key: Key, result: Step, poked_at: float | None) -> None:
        namespace, name = key
        replicas = result.decision.replicas
        started = self.clock()
        try:
            async with self._write_slots:
                await self.write(namespace, names.deployment(name), replicas)
        except NotFound:
            log.info("%s/%s: Deployment gone; not scaled to %d", namespace, name, replicas)
            self._failed(key)
        except KubeError as exc:
            log.warning(
                "%s/%s: scaling to %d failed, retrying on the next tick: %s",
                namespace,
                name,
                replicas,
                exc,
            )
            self._failed(key)
        except Exception:
            log.exception("%s/%s: scaling to %d failed", namespace, name, replicas)
            self._failed(key)
        else:
            decision = result.decision
            after_poke = ""
            if poked_at is not None and started - poked_at < 1.0:
                # The poke that caused this write: from its arrival to the write's answer.
                after_poke = f"; {(self.clock() - poked_at) * 1000:.1f} ms after the poke"
            log.info(
                "scaled %s/%s from %d to %d: %s (in flight: stable %.2f, panic %.2f)%s",
                namespace,
                name,
                result.current,
                replicas,
                decision.reason,
                decision.stable_concurrency,
                decision.panic_concurrency,
                after_poke,
            )
        finally:
            self._writing.pop(key, None)
            if key in self._poked:
                self._wake.set()

    def _failed(self, key: Key) -> None:
        tracked = self._tracked.get(key)
        if tracked is not None:
            self._tracked[key] = tracked.failed()
