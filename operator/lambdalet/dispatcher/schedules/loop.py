"""The schedule loop: the thin async shell that fires one EventSource's schedule.

Where it sits: the event dispatcher runs one ``Scheduler.run`` task per schedule EventSource that
the operator's sharding assigned to its replica, and cancels it when the EventSource is deleted,
changed, paused or moved. ``invoke`` sends the payload to the Function (through the activator's
Invoke API) and raises on failure; ``last_fired`` is where the dispatcher keeps the last tick
handled, outside this process. What to fire and when is decided by ``schedule.plan``.

Each turn reads the last fired tick, plans, then fires the due tick or sleeps until the next one —
at most ``max_sleep`` seconds at a time, so a wall clock that jumps, a suspended VM, or a tick
recorded by another replica is noticed within that long.

Firing a tick, the stated policy:

- Invocations of one schedule never overlap: the loop awaits each. Ticks that pass meanwhile are
  missed ticks for ``plan``: the latest, if within the grace, fires once the invocation returns.
- A failure (an exception, or no answer within ``invoke_timeout``) is retried with the same event
  after 2 s, then 4 s (``schedule.Policy``: 3 attempts in all), while the retry is within the
  tick's grace and before the next tick; then the loop gives up on the tick with a warning.
- Before every attempt the tick is *claimed* in the store (``LastFired.claim``, a conditional
  write): a tick another replica has claimed within the last invocation timeout, or has
  recorded, is not fired here. Two replicas that both think they own the schedule (a hand-over
  in progress) therefore fire a tick once, not twice.
- The tick is recorded in ``last_fired`` after its invocation succeeded or was given up, so
  delivery is at least once: a crash or a hand-over between the invocation and the record makes
  the next owner fire the tick again once the claim has run out, with the same event id
  (``schedule.event_id``), if the tick is still within its grace. A tick fires only if it is
  later than the recorded one, so no owner fires what another has recorded.
- Without a readable ``last_fired`` nothing fires (it could fire twice): the read is retried after
  ``store_retry`` seconds, and the tick still fires if the store answers within its grace. A
  failed write is logged; this process remembers the tick itself and does not fire it again.
- Cancellation ends the loop at once, mid-invocation too: that tick is not recorded, and whoever
  runs the schedule next fires it again (within the grace).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from lambdalet.api.schedule import Timetable
from lambdalet.dispatcher.schedules.plan import Policy, Rule, event_payload, plan, retry_at

log = logging.getLogger("lambdalet.dispatcher.schedules.loop")


class Invoke(Protocol):
    """Invokes the Function with an event; returns when it succeeded, raises when not."""

    async def __call__(self, payload: bytes) -> None: ...


class LastFired(Protocol):
    """The last tick handled for one EventSource, kept where every dispatcher replica sees it."""

    async def get(self) -> datetime | None: ...

    async def claim(self, tick: datetime) -> bool:
        """Take ``tick`` for this replica before an attempt to fire it; False when it was
        recorded already or another replica is firing it (its claim is still fresh)."""
        ...

    async def set(self, tick: datetime) -> None: ...


class InMemoryLastFired:
    """``LastFired`` in memory: for tests, and for a dispatcher without a store (then a restart
    may fire the latest tick again, within its grace)."""

    def __init__(self, tick: datetime | None = None) -> None:
        self.tick = tick

    async def get(self) -> datetime | None:
        return self.tick

    async def claim(self, tick: datetime) -> bool:
        return self.tick is None or tick > self.tick

    async def set(self, tick: datetime) -> None:
        self.tick = tick


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False, kw_only=True)
class Scheduler:
    """Fires one schedule's ticks as EventBridge Scheduled Events."""

    timetable: Timetable
    rule: Rule
    invoke: Invoke
    last_fired: LastFired
    policy: Policy = field(default_factory=Policy)
    clock: Callable[[], datetime] = utc_now
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    max_sleep: float = 60.0
    invoke_timeout: float = 960.0  # Lambda's longest timeout (900 s) and some
    store_timeout: float = 10.0
    store_retry: float = 5.0
    _fired: datetime | None = field(init=False, default=None)  # the last tick this process handled
    _reported_drop: datetime | None = field(init=False, default=None)

    async def run(self) -> None:
        """Fire ticks until cancelled; returns when the schedule has no tick left (a past year)."""
        while True:
            known, last = await self._read_last_fired()
            if not known:
                await self.sleep(self.store_retry)
                continue
            now = self.clock()
            decided = plan(self.timetable, now=now, last_fired=last, grace=self.policy.grace)
            if decided.dropped_from is not None and decided.dropped_from != self._reported_drop:
                self._reported_drop = decided.dropped_from
                log.warning(
                    "%s: ticks from %s on were missed by more than %s and are not fired",
                    self.rule.arn,
                    decided.dropped_from.isoformat(),
                    self.policy.grace,
                )
            if decided.fire is not None:
                if not await self._fire(decided.fire):
                    await self.sleep(self.store_retry)
            elif decided.wake_at is None:
                log.info("%s: the schedule has no further ticks", self.rule.arn)
                return
            else:
                await self.sleep(min((decided.wake_at - now).total_seconds(), self.max_sleep))

    async def _read_last_fired(self) -> tuple[bool, datetime | None]:
        """(whether it is known, the later of the stored tick and this process's own)."""
        try:
            stored = await asyncio.wait_for(self.last_fired.get(), self.store_timeout)
        except Exception:
            log.warning(
                "%s: cannot read the last fired tick; not firing", self.rule.arn, exc_info=True
            )
            return False, None
        if stored is None or self._fired is None:
            return True, stored or self._fired
        return True, max(stored, self._fired)

    async def _fire(self, tick: datetime) -> bool:
        """Fire ``tick`` and record it; False when the store did not let this replica take it."""
        payload = event_payload(self.rule, tick)
        attempts = 0
        while True:
            attempts += 1
            if not await self._claim(tick):
                return False
            try:
                await asyncio.wait_for(self.invoke(payload), self.invoke_timeout)
                break
            except Exception as exc:
                now = self.clock()
                again = retry_at(self.timetable, self.policy, tick=tick, attempts=attempts, now=now)
                if again is None:
                    log.warning(
                        "%s: gave up on the tick at %s after %d attempt(s): %r",
                        self.rule.arn,
                        tick.isoformat(),
                        attempts,
                        exc,
                    )
                    break
                log.info(
                    "%s: attempt %d for the tick at %s failed (%r); retrying at %s",
                    self.rule.arn,
                    attempts,
                    tick.isoformat(),
                    exc,
                    again.isoformat(),
                )
                await self.sleep((again - now).total_seconds())
        self._fired = tick
        try:
            await asyncio.wait_for(self.last_fired.set(tick), self.store_timeout)
        except Exception:
            log.warning("%s: cannot record the tick at %s", self.rule.arn, tick, exc_info=True)
        return True

    async def _claim(self, tick: datetime) -> bool:
        try:
            taken = await asyncio.wait_for(self.last_fired.claim(tick), self.store_timeout)
        except Exception:
            log.warning(
                "%s: cannot claim the tick at %s; not firing", self.rule.arn, tick, exc_info=True
            )
            return False
        if not taken:
            log.info("%s: the tick at %s is another replica's", self.rule.arn, tick.isoformat())
        return taken
