"""AsyncQueue against a real redis-server: dead workers, restarts, depth, concurrency bound."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import replace

import redis.asyncio

from lambdalet.activator.asyncinvoke.options import AsyncQueueOptions
from tests.activator.asyncq_harness import (
    FAST,
    WAIT,
    depth_is,
    error,
    fn,
    length_is,
    make_queue,
    running,
)
from tests.kit.invokers import ScriptedInvoker
from tests.kit.servers.redis import RedisServer
from tests.kit.wait import wait_for_async

GROUP = "lambdalet-activator"


async def pending(client: redis.asyncio.Redis, stream: str) -> dict[str, int]:
    """Pending entries of ``stream`` by consumer name."""
    summary = await client.xpending(stream, GROUP)
    return {c["name"].decode(): int(c["pending"]) for c in summary["consumers"]}


async def test_entries_of_a_killed_worker_are_taken_over(redis_client: redis.asyncio.Redis) -> None:
    config = fn("victim")  # 0.1 s timeout: taken over after 0.2 + 0.1 + 0.4 s idle
    stream = "lambdalet:async:team:victim"
    stuck = ScriptedInvoker(gate=asyncio.Event())  # never answers
    first = make_queue(redis_client, stuck, [config], consumer="a")
    await first.enqueue(config, b'{"k": 1}', request_id="req-k", headers={})
    async with running(first) as worker:
        await wait_for_async(
            lambda: stuck.calls, WAIT, what="the first worker's invocation", interval=0.01
        )
        worker.cancel()  # killed mid-invocation: no answer, no ack
        await asyncio.gather(worker, return_exceptions=True)
    assert await pending(redis_client, stream) == {"a": 1}

    rescuer = ScriptedInvoker()
    second = make_queue(redis_client, rescuer, [config], consumer="b")
    async with running(second):
        await wait_for_async(
            lambda: rescuer.calls, WAIT, what="the second worker's invocation", interval=0.01
        )
        await wait_for_async(
            lambda: length_is(redis_client, stream, 0), WAIT, what="the ack", interval=0.01
        )
    assert rescuer.ids("victim") == ["req-k"]
    assert rescuer.calls[0].payload == b'{"k": 1}'
    assert await pending(redis_client, stream) == {}


async def test_restarted_queue_object_finds_stored_and_own_pending_events(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    config = fn("durable")
    stream = "lambdalet:async:team:durable"
    # Taking over from others needs 30 s idle here: only reading its own pending entries again
    # lets the restarted consumer "a" finish the held event within the test's wait.
    slow_claims = replace(FAST, claim_margin=30.0)
    before = redis_server.client()
    stuck = ScriptedInvoker(gate=asyncio.Event())
    queue = make_queue(before, stuck, [config], consumer="a", options=slow_claims)
    await queue.enqueue(config, b"1", request_id="req-1", headers={})
    async with running(queue) as worker:
        await wait_for_async(lambda: stuck.calls, WAIT, what="the held invocation", interval=0.01)
        worker.cancel()
        await asyncio.gather(worker, return_exceptions=True)
    await queue.enqueue(config, b"2", request_id="req-2", headers={})
    await queue.enqueue(config, b"3", request_id="req-3", headers={})
    await before.aclose()

    after = redis_server.client()
    invoker = ScriptedInvoker()
    restarted = make_queue(after, invoker, [config], consumer="a", options=slow_claims)
    assert await restarted.depth(config.key) == 3
    try:
        async with running(restarted):
            await wait_for_async(
                lambda: len(invoker.calls) == 3, WAIT, what="all three invocations", interval=0.01
            )
            await wait_for_async(
                lambda: length_is(redis_client, stream, 0), WAIT, what="the acks", interval=0.01
            )
    finally:
        await after.aclose()
    assert sorted(invoker.ids("durable")) == ["req-1", "req-2", "req-3"]


async def test_depth_counts_waiting_in_progress_and_delayed(
    redis_client: redis.asyncio.Redis,
) -> None:
    a, b, c = (fn(name, timeout_seconds=5.0) for name in "abc")  # held, not abandoned
    gate = asyncio.Event()
    invoker = ScriptedInvoker(scripts={"a": [error(), error()]}, gate=gate)
    options = replace(FAST, retry=replace(FAST.retry, retry_base_delay=60.0))
    queue = make_queue(redis_client, invoker, [a, b, c], options=options)
    for i in range(2):
        await queue.enqueue(a, b"{}", request_id=f"a-{i}", headers={})
    await queue.enqueue(b, b"{}", request_id="b-0", headers={})
    assert [await queue.depth(key) for key in (a.key, b.key, c.key)] == [2, 1, 0]
    async with running(queue):
        await wait_for_async(
            lambda: len(invoker.calls) == 3,
            WAIT,
            what="three invocations in progress",
            interval=0.01,
        )
        assert [await queue.depth(key) for key in (a.key, b.key)] == [2, 1]  # in progress
        gate.set()
        await wait_for_async(lambda: depth_is(queue, b.key, 0), WAIT, what="b done", interval=0.01)
        await wait_for_async(
            lambda: length_is(redis_client, "lambdalet:async:team:a", 0),
            WAIT,
            what="a delayed",
            interval=0.01,
        )
        assert await redis_client.zcard("lambdalet:async-delayed") == 2
        assert await queue.depth(a.key) == 2  # waiting for their retry in a minute


async def test_concurrency_bound_is_honoured(redis_client: redis.asyncio.Redis) -> None:
    configs = [fn(name, timeout_seconds=5.0) for name in ("x", "y", "z")]  # held, not abandoned
    gate = asyncio.Event()
    invoker = ScriptedInvoker(gate=gate)
    options = replace(FAST, max_concurrency=2)
    queue = make_queue(redis_client, invoker, configs, options=options)
    for config in configs:  # entries in three streams: one read can return more than 2
        for i in range(3):
            await queue.enqueue(config, b"{}", request_id=f"{config.name}-{i}", headers={})
    async with running(queue):
        await wait_for_async(
            lambda: invoker.in_flight >= 2, WAIT, what="two invocations in flight", interval=0.01
        )
        # A worker that ignored the bound would start more within a few poll intervals.
        await asyncio.sleep(10 * options.poll_interval)
        assert invoker.max_in_flight == 2
        gate.set()
        await wait_for_async(
            lambda: len(invoker.calls) == 9, WAIT, what="all nine invocations", interval=0.01
        )
        for config in configs:
            stream = f"lambdalet:async:team:{config.name}"
            empty = functools.partial(length_is, redis_client, stream, 0)
            await wait_for_async(empty, WAIT, what=f"{stream} empty", interval=0.01)
    assert invoker.max_in_flight == 2
    assert len(set(invoker.ids("x") + invoker.ids("y") + invoker.ids("z"))) == 9


async def test_two_workers_share_the_events(redis_client: redis.asyncio.Redis) -> None:
    config = fn("shared")
    gate = asyncio.Event()
    one, two = ScriptedInvoker(gate=gate), ScriptedInvoker(gate=gate)
    options = AsyncQueueOptions(max_concurrency=3, poll_interval=0.05)
    first = make_queue(redis_client, one, [config], consumer="one", options=options)
    second = make_queue(redis_client, two, [config], consumer="two", options=options)
    for i in range(6):
        await first.enqueue(config, b"{}", request_id=f"req-{i}", headers={})
    async with running(first), running(second):
        # Each takes at most 3 at a time, so both must have taken some.
        await wait_for_async(
            lambda: len(one.calls) == 3 and len(two.calls) == 3,
            WAIT,
            what="both busy",
            interval=0.01,
        )
        gate.set()
        await wait_for_async(
            lambda: depth_is(first, config.key, 0), WAIT, what="all done", interval=0.01
        )
    ids = one.ids("shared") + two.ids("shared")
    assert sorted(ids) == [f"req-{i}" for i in range(6)]  # each exactly once
