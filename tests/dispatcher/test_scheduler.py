"""The schedule loop in simulated time: a fake clock whose ``sleep`` advances it at once, a
recording ``invoke``, an in-memory ``LastFired``. A run ends when the simulated clock passes its
horizon (``Horizon`` out of ``sleep``); every real wait has a deadline, nothing sleeps."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from lambdalet.api.schedule import parse
from lambdalet.dispatcher.schedules.loop import InMemoryLastFired, LastFired, Scheduler
from lambdalet.dispatcher.schedules.plan import Policy, Rule, event_id

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)
RULE = Rule("team", "tick")
DEADLINE = 5.0  # real seconds a test waits for the loop before failing
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)


class Horizon(BaseException):
    """The simulated run reached its end (a BaseException: the loop must not take it for a
    failed invocation)."""


@dataclass
class SimTime:
    now: datetime
    until: datetime
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> datetime:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += timedelta(seconds=seconds)
        if self.now > self.until:
            raise Horizon
        await asyncio.sleep(0)


@dataclass
class Invoker:
    """Records each invocation as (start, end, event); fails or hangs as told."""

    time: SimTime
    duration: timedelta = timedelta(0)
    failures: list[Exception] = field(default_factory=list)
    hang: bool = False  # the next call never returns
    calls: list[tuple[datetime, datetime, dict[str, Any]]] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, payload: bytes) -> None:
        start = self.time.now
        self.started.set()
        self.time.now += self.duration
        self.calls.append((start, self.time.now, json.loads(payload)))
        await asyncio.sleep(0)
        if self.time.now > self.time.until:
            raise Horizon
        if self.hang:
            self.hang = False
            await asyncio.Event().wait()
        if self.failures:
            raise self.failures.pop(0)

    def fired(self) -> list[tuple[datetime, datetime]]:
        """(when invoked, which tick) per call."""
        return [(start, parse_time(event["time"])) for start, _, event in self.calls]


class FlakyStore(InMemoryLastFired):
    def __init__(self, read_failures: int = 0, writes_fail: bool = False) -> None:
        super().__init__()
        self.read_failures = read_failures
        self.writes_fail = writes_fail

    async def get(self) -> datetime | None:
        if self.read_failures:
            self.read_failures -= 1
            raise ConnectionError("store down")
        return await super().get()

    async def set(self, tick: datetime) -> None:
        if self.writes_fail:
            raise ConnectionError("store down")
        await super().set(tick)


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def scheduler(
    time: SimTime,
    invoke: Invoker,
    store: LastFired,
    expression: str = "rate(5 minutes)",
    zone: str = "UTC",
    **options: Any,
) -> Scheduler:
    return Scheduler(
        timetable=parse(expression, zone, T0),
        rule=RULE,
        invoke=invoke,
        last_fired=store,
        **({"clock": time.clock, "sleep": time.sleep} | options),
    )


async def run_to_horizon(loop: Scheduler) -> None:
    with pytest.raises(Horizon):
        await asyncio.wait_for(loop.run(), DEADLINE)


async def test_fires_every_tick_on_time_and_records_it() -> None:
    time = SimTime(T0 - 30 * SECOND, until=T0 + 20 * MINUTE)
    invoke, store = Invoker(time), InMemoryLastFired()
    await run_to_horizon(scheduler(time, invoke, store))
    ticks = [T0 + k * 5 * MINUTE for k in range(5)]
    assert invoke.fired() == [(tick, tick) for tick in ticks]
    assert [event["id"] for _, _, event in invoke.calls] == [event_id(RULE, t) for t in ticks]
    assert store.tick == ticks[-1]
    assert max(time.sleeps) <= 60.0  # re-plans at least once a minute


async def test_daily_cron_in_berlin_across_spring_forward() -> None:
    time = SimTime(datetime(2026, 3, 28, tzinfo=UTC), until=datetime(2026, 3, 30, 12, tzinfo=UTC))
    invoke = Invoker(time)
    loop = scheduler(
        time, invoke, InMemoryLastFired(), "30 2 * * *", "Europe/Berlin", max_sleep=3600
    )
    await run_to_horizon(loop)
    assert [tick for _, tick in invoke.fired()] == [
        datetime(2026, 3, 28, 1, 30, tzinfo=UTC),  # 02:30 CET
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),  # 02:30 does not exist: 03:00 CEST
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]


async def test_a_long_invocation_is_never_overlapped_and_catches_up_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = SimTime(T0, until=T0 + 6 * MINUTE)
    invoke = Invoker(time, duration=150 * SECOND)  # longer than the interval
    with caplog.at_level(logging.WARNING):
        await run_to_horizon(scheduler(time, invoke, InMemoryLastFired(), "rate(1 minute)"))
    assert invoke.fired() == [
        (T0, T0),
        (T0 + 150 * SECOND, T0 + 2 * MINUTE),  # 1:00 dropped, 2:00 fired late, once
        (T0 + 300 * SECOND, T0 + 5 * MINUTE),  # 3:00 and 4:00 dropped
    ]
    for (_, end, _), (start, _, _) in zip(invoke.calls, invoke.calls[1:], strict=False):
        assert start >= end
    assert "missed by more than 0:05:00" in caplog.text


async def test_after_downtime_only_the_latest_tick_fires(caplog: pytest.LogCaptureFixture) -> None:
    time = SimTime(T0 + 62 * MINUTE, until=T0 + 70 * MINUTE)
    invoke = Invoker(time)
    with caplog.at_level(logging.WARNING):
        await run_to_horizon(scheduler(time, invoke, InMemoryLastFired(T0)))
    assert invoke.fired() == [
        (T0 + 62 * MINUTE, T0 + 60 * MINUTE),
        (T0 + 65 * MINUTE, T0 + 65 * MINUTE),
        (T0 + 70 * MINUTE, T0 + 70 * MINUTE),
    ]
    assert caplog.text.count("ticks from 2026-03-02T12:05:00+00:00 on were missed") == 1


async def test_a_failed_invocation_is_retried_with_the_same_event() -> None:
    time = SimTime(T0, until=T0 + MINUTE)
    invoke = Invoker(time, failures=[RuntimeError("503"), RuntimeError("503")])
    store = InMemoryLastFired()
    await run_to_horizon(scheduler(time, invoke, store))
    assert [start for start, _, _ in invoke.calls] == [T0, T0 + 2 * SECOND, T0 + 6 * SECOND]
    assert len({json.dumps(event) for _, _, event in invoke.calls}) == 1
    assert store.tick == T0


async def test_gives_up_after_the_attempts_and_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    time = SimTime(T0, until=T0 + 5 * MINUTE)
    invoke = Invoker(time, failures=[RuntimeError("boom")] * 3)
    store = InMemoryLastFired()
    with caplog.at_level(logging.WARNING):
        await run_to_horizon(scheduler(time, invoke, store))
    assert [tick for _, tick in invoke.fired()] == [T0, T0, T0, T0 + 5 * MINUTE]
    assert "gave up on the tick at 2026-03-02T12:00:00+00:00 after 3 attempt(s)" in caplog.text
    assert store.tick == T0 + 5 * MINUTE


async def test_no_answer_within_the_invoke_timeout_is_a_failure() -> None:
    time = SimTime(T0, until=T0 + MINUTE)
    invoke = Invoker(time, hang=True)
    await run_to_horizon(scheduler(time, invoke, InMemoryLastFired(), invoke_timeout=0.01))
    assert [start for start, _, _ in invoke.calls] == [T0, T0 + 2 * SECOND]


async def test_cancel_while_sleeping() -> None:
    time = SimTime(T0, until=T0 + 60 * MINUTE)
    invoke, store = Invoker(time), InMemoryLastFired()
    parked = asyncio.Event()

    async def sleep_forever(seconds: float) -> None:
        parked.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(scheduler(time, invoke, store, sleep=sleep_forever).run())
    await asyncio.wait_for(parked.wait(), DEADLINE)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, DEADLINE)
    assert store.tick == T0


async def test_a_tick_cancelled_mid_invocation_is_refired_by_the_next_owner() -> None:
    time = SimTime(T0, until=T0 + 2 * MINUTE)
    store = InMemoryLastFired()
    first = Invoker(time, hang=True)
    task = asyncio.create_task(scheduler(time, first, store).run())
    await asyncio.wait_for(first.started.wait(), DEADLINE)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, DEADLINE)
    assert store.tick is None  # not recorded: at least once

    time.now += 20 * SECOND  # the hand-over
    second = Invoker(time)
    await run_to_horizon(scheduler(time, second, store))
    assert second.fired() == [(T0 + 20 * SECOND, T0)]
    assert second.calls[0][2]["id"] == first.calls[0][2]["id"]


async def test_a_hand_over_fires_every_tick_once() -> None:
    store = InMemoryLastFired()
    old_time = SimTime(T0, until=T0 + 12 * MINUTE)
    old = Invoker(old_time)
    await run_to_horizon(scheduler(old_time, old, store))
    new_time = SimTime(T0 + 12 * MINUTE + 20 * SECOND, until=T0 + 30 * MINUTE)
    new = Invoker(new_time)
    await run_to_horizon(scheduler(new_time, new, store))
    ticks = [tick for _, tick in old.fired() + new.fired()]
    assert ticks == [T0 + k * 5 * MINUTE for k in range(7)]


async def test_an_unreadable_store_holds_fire_until_it_answers() -> None:
    time = SimTime(T0, until=T0 + MINUTE)
    invoke = Invoker(time)
    await run_to_horizon(scheduler(time, invoke, FlakyStore(read_failures=2), store_retry=5.0))
    assert invoke.fired() == [(T0 + 10 * SECOND, T0)]


async def test_an_unwritable_store_does_not_make_this_process_fire_twice(
    caplog: pytest.LogCaptureFixture,
) -> None:
    time = SimTime(T0, until=T0 + 6 * MINUTE)
    invoke = Invoker(time)
    with caplog.at_level(logging.WARNING):
        await run_to_horizon(scheduler(time, invoke, FlakyStore(writes_fail=True)))
    assert [tick for _, tick in invoke.fired()] == [T0, T0 + 5 * MINUTE]
    assert "cannot record the tick" in caplog.text


async def test_a_schedule_without_further_ticks_ends_the_loop() -> None:
    time = SimTime(T0, until=T0 + MINUTE)
    invoke = Invoker(time)
    loop = scheduler(time, invoke, InMemoryLastFired(), "cron(0 0 1 1 ? 2025)")
    await asyncio.wait_for(loop.run(), DEADLINE)
    assert invoke.calls == []


async def test_policy_is_configurable() -> None:
    time = SimTime(T0, until=T0 + MINUTE)
    invoke = Invoker(time, failures=[RuntimeError("503")] * 5)
    policy = Policy(attempts=5, backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=3))
    await run_to_horizon(scheduler(time, invoke, InMemoryLastFired(), policy=policy))
    starts = [(start - T0).total_seconds() for start, _, _ in invoke.calls]
    assert starts == [0, 1, 3, 6, 9]


class ClaimedElsewhere(InMemoryLastFired):
    """Another replica holds the claim on every tick until ``free_at``, then records nothing."""

    def __init__(self, time: SimTime, free_at: datetime) -> None:
        super().__init__()
        self.time = time
        self.free_at = free_at
        self.refused = 0

    async def claim(self, tick: datetime) -> bool:
        if self.time.now < self.free_at:
            self.refused += 1
            return False
        return await super().claim(tick)


async def test_a_tick_claimed_by_another_replica_is_not_fired_until_the_claim_runs_out() -> None:
    time = SimTime(T0, until=T0 + 2 * MINUTE)
    invoke = Invoker(time)
    store = ClaimedElsewhere(time, free_at=T0 + 30 * SECOND)

    await run_to_horizon(scheduler(time, invoke, store, store_retry=10.0))

    # Refused at 0, 10 and 20 s; the claim ran out at 30 s and the tick fired then, once.
    assert store.refused == 3
    assert invoke.fired() == [(T0 + 30 * SECOND, T0)]
    assert store.tick == T0
