"""The Redis Streams source against a real redis-server: the ``Source`` contract, consumers that
die, broker restarts, and the delivery loop end to end through the activator and a real agent.
Every message is counted: none lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from lambdalet.api.eventsource import DeadLetter, DeadLetterType, RedisStreams
from lambdalet.dispatcher.delivery.invoker import ActivatorInvoker, InvokerSettings
from lambdalet.dispatcher.delivery.loop import Delivery, DeliverySettings
from lambdalet.dispatcher.delivery.outcome import Policy
from lambdalet.dispatcher.sources.redis_streams import (
    RedisStreamsConfig,
    RedisStreamsSource,
    connector,
    message_of,
)
from lambdalet.dispatcher.sources.source import Message, SourceConfigError, SourceError
from tests.activator.stack import Stack
from tests.kit.invokers import RecordingInvoker
from tests.kit.servers.agent import StartAgent
from tests.kit.servers.redis import DurableRedis, RedisServer
from tests.kit.wait import wait_for_async

STREAM, DLQ, GROUP = "orders", "orders-dlq", "lambdalet"
WAIT_TIMEOUT = 30.0  # seconds any condition of these tests may take


def source_for(server: RedisServer, consumer: str = "c1", **config: object) -> RedisStreamsSource:
    values: dict[str, object] = {
        "stream": STREAM,
        "consumer": consumer,
        "dead_letter_stream": DLQ,
        "max_wait": 2.0,
    }
    values.update(config)
    settings = RedisStreamsConfig(**values)  # type: ignore[arg-type]
    return RedisStreamsSource(connector(server.url, max_wait=settings.max_wait), settings)


@pytest.fixture
async def source(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> AsyncIterator[RedisStreamsSource]:
    built = source_for(redis_server)
    await built.start()
    yield built
    await built.close()


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def produce(client: redis.asyncio.Redis, count: int, *, body: str = "m{n}") -> list[str]:
    pipe = client.pipeline(transaction=False)
    for n in range(count):
        pipe.xadd(STREAM, {"body": body.format(n=n), "n": str(n)})
    return [entry_id.decode() for entry_id in await pipe.execute()]


async def group_info(client: redis.asyncio.Redis) -> dict[str, object]:
    for group in await client.xinfo_groups(STREAM):
        if group["name"] in (GROUP, GROUP.encode()):
            return {str(k): v for k, v in group.items()}
    return {}


async def all_settled(client: redis.asyncio.Redis, produced: int) -> bool:
    """Every entry delivered to the group and acknowledged."""
    info = await group_info(client)
    return (
        bool(info)
        and info["pending"] == 0
        and info["lag"] == 0
        and info["entries-read"] == produced
    )


# -- the Source contract ----------------------------------------------------------------------


async def test_the_group_starts_at_the_beginning_of_the_stream(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    ids = await produce(redis_client, 3)  # before the EventSource existed
    source = source_for(redis_server)
    await source.start()
    await source.start()  # idempotent

    got = await source.receive(10, 0)
    await source.close()

    assert [m.id for m in got] == ids
    assert [m.body for m in got] == [b"m0", b"m1", b"m2"]


async def test_entries_become_messages(
    source: RedisStreamsSource, redis_client: redis.asyncio.Redis
) -> None:
    before = time.time_ns() // 1_000_000
    with_body = await redis_client.xadd(STREAM, {"body": b"\xff raw", "tenant": "acme"})
    without = await redis_client.xadd(STREAM, {"order": "7", "state": "new"})

    first, second = await source.receive(10, 0)

    assert first.id == text(with_body)
    assert (first.body, first.attributes) == (b"\xff raw", {"tenant": "acme"})
    assert first.receive_count == 1
    assert first.sent_at_ms == int(first.id.split("-")[0])
    assert before <= first.first_received_at_ms <= time.time_ns() // 1_000_000
    assert second.id == text(without)
    assert json.loads(second.body) == {"order": "7", "state": "new"}
    assert second.attributes == {}
    assert source.arn == "arn:aws:sqs:us-east-1:000000000000:orders"


@pytest.mark.parametrize(
    ("fields", "body", "attributes"),
    [
        ({b"body": b"x"}, b"x", {}),
        ({b"body": b"x", b"a": b"1", b"b": b"\xff"}, b"x", {"a": "1", "b": "\ufffd"}),
        ({b"data": b"x"}, b'{"data": "x"}', {}),
        ({b"body": b""}, b"", {}),
    ],
)
def test_message_of(fields: dict[bytes, bytes], body: bytes, attributes: dict[str, str]) -> None:
    message = message_of(b"1700000000123-4", fields, 3, 0)

    assert (message.id, message.body, dict(message.attributes)) == (
        "1700000000123-4",
        body,
        attributes,
    )
    assert (message.receive_count, message.sent_at_ms, message.first_received_at_ms) == (
        3,
        1700000000123,
        1700000000123,  # not known (reclaimed): the sent time
    )


async def test_receive_takes_at_most_max_and_waits_at_most_wait(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    # A read may block 30 s: a receive that did not keep to its own 0.3 s would take that long.
    source = source_for(redis_server, max_wait=30.0)
    await source.start()
    await produce(redis_client, 5)

    assert len(await source.receive(3, 0)) == 3
    assert len(await source.receive(3, 0)) == 2
    started = time.monotonic()
    assert await source.receive(3, 0.3) == []
    await source.close()
    # Its own wait, and far short of the 30 s, however busy the machine is.
    assert 0.25 <= time.monotonic() - started < 15


async def test_a_waiting_receive_returns_when_a_message_comes(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    source = source_for(redis_server, max_wait=30.0)
    await source.start()

    async def later() -> None:
        await asyncio.sleep(0.2)
        await produce(redis_client, 1)

    started = time.monotonic()
    producer = asyncio.create_task(later())
    got = await source.receive(10, 30)
    await producer
    await source.close()

    assert [m.body for m in got] == [b"m0"]
    # Returned for the message, not at the end of its 30 s wait (by far, however busy the
    # machine is).
    assert time.monotonic() - started < 15


async def test_ack_ends_messages_and_keeps_the_stream(
    source: RedisStreamsSource, redis_client: redis.asyncio.Redis
) -> None:
    await produce(redis_client, 4)
    got = await source.receive(10, 0)

    await source.ack(got[:3])

    assert (await group_info(redis_client))["pending"] == 1
    assert await redis_client.xlen(STREAM) == 4
    assert await source.receive(10, 0) == []  # acked ones never again; m3 is still in flight
    assert await source.depth() == 1


async def test_retry_redelivers_first_with_the_count_from_redis(
    redis_server: RedisServer, source: RedisStreamsSource, redis_client: redis.asyncio.Redis
) -> None:
    await produce(redis_client, 3)
    first = await source.receive(2, 0)
    other = source_for(redis_server, "c2", min_idle=60.0)
    await other.start()

    await source.retry(first)
    assert await other.receive(10, 0) != first  # gets m2 only: retried ones stay with c1
    again = await source.receive(10, 0)
    await source.retry(again)
    third = await source.receive(10, 0)
    await other.close()

    assert [m.id for m in again] == [m.id for m in first]
    assert [m.receive_count for m in again] == [2, 2]
    assert [m.receive_count for m in third] == [3, 3]
    assert [m.first_received_at_ms for m in third] == [m.first_received_at_ms for m in first]
    pending = await redis_client.xpending_range(STREAM, GROUP, "-", "+", 10)
    assert sorted((p["consumer"], p["times_delivered"]) for p in pending) == [
        (b"c1", 3),
        (b"c1", 3),
        (b"c2", 1),
    ]


async def test_dead_letters_carry_the_entry_and_why(
    source: RedisStreamsSource, redis_client: redis.asyncio.Redis
) -> None:
    await redis_client.xadd(STREAM, {"body": "poison", "tenant": "acme"})
    await produce(redis_client, 1)
    poison, fine = await source.receive(10, 0)

    await source.dead_letter([poison], "BatchItemFailure")
    await source.dead_letter([poison], "BatchItemFailure")  # already handled: no second copy
    await source.ack([fine])

    dead: Any = await redis_client.xrange(DLQ)
    assert len(dead) == 1
    assert dead[0][1] == {
        b"body": b"poison",
        b"tenant": b"acme",
        b"lambdalet.id": poison.id.encode(),
        b"lambdalet.stream": b"orders",
        b"lambdalet.reason": b"BatchItemFailure",
        b"lambdalet.receiveCount": b"1",
    }
    assert (await group_info(redis_client))["pending"] == 0


async def test_depth_is_lag_plus_pending(
    source: RedisStreamsSource, redis_client: redis.asyncio.Redis
) -> None:
    assert await source.depth() == 0
    await produce(redis_client, 10)
    got = await source.receive(3, 0)
    assert await source.depth() == 10
    await source.ack(got)
    assert await source.depth() == 7


async def test_a_dead_consumers_messages_are_reclaimed(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    ids = await produce(redis_client, 8)
    dying = source_for(redis_server, "dies", min_idle=0.3, reclaim_interval=0.0)
    await dying.start()
    held = await dying.receive(5, 0)  # ... and then the process is gone, nothing acked
    await dying.close()
    survivor = source_for(redis_server, "lives", min_idle=0.3, reclaim_interval=0.0)
    await survivor.start()
    got: list[Message] = []

    async def everything() -> bool:
        batch = await survivor.receive(10, 0.05)
        got.extend(batch)
        await survivor.ack(batch)
        return len({m.id for m in got}) == len(ids)

    await wait_for_async(everything, WAIT_TIMEOUT, what="every message at the survivor")
    await survivor.close()

    reclaimed = [m for m in got if m.id in {h.id for h in held}]
    assert sorted(m.id for m in got) == sorted(ids)
    assert sorted(m.id for m in reclaimed) == sorted(h.id for h in held)
    assert {m.receive_count for m in reclaimed} == {2}
    assert await all_settled(redis_client, len(ids))


async def test_broker_errors_are_source_errors(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    from tests.kit.ports import free_port

    nowhere = source_for(RedisServer("127.0.0.1", free_port()))
    with pytest.raises(SourceError):
        await nowhere.start()
    await nowhere.close()

    await redis_client.set(STREAM, "not a stream")
    wrong = source_for(redis_server)
    with pytest.raises(SourceConfigError):
        await wrong.start()
    await wrong.close()

    no_target = source_for(redis_server, dead_letter_stream=None)
    with pytest.raises(SourceConfigError):
        await no_target.dead_letter([message_of(b"1-0", {b"body": b"x"}, 1, 0)], "why")

    with pytest.raises(SourceConfigError):
        RedisStreamsSource.from_spec(
            RedisStreams(address="127.0.0.1:6379", stream=STREAM),
            consumer="c",
            dead_letter=DeadLetter(type=DeadLetterType.RABBITMQ, target="dlq"),
        )


async def test_a_lost_group_is_made_again_on_start(
    source: RedisStreamsSource, redis_client: redis.asyncio.Redis
) -> None:
    await produce(redis_client, 1)
    await redis_client.xgroup_destroy(STREAM, GROUP)

    with pytest.raises(SourceError):
        await source.receive(10, 0)
    await source.start()

    assert [m.body for m in await source.receive(10, 0)] == [b"m0"]


async def test_from_spec_connects_by_url(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    await produce(redis_client, 1)
    spec = RedisStreams(url=redis_server.url, stream=STREAM, consumer_group="from-spec")
    dead_letter = DeadLetter(type=DeadLetterType.REDIS_STREAM, target=DLQ)
    source = RedisStreamsSource.from_spec(
        spec, consumer="c", dead_letter=dead_letter, region="eu-west-1"
    )
    await source.start()
    got = await source.receive(10, 0)
    await source.close()

    assert [m.body for m in got] == [b"m0"]
    assert source.arn == "arn:aws:sqs:eu-west-1:000000000000:orders"


# -- the delivery loop on Redis ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(delivery: Delivery) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(delivery.run())
    try:
        yield task
    finally:
        delivery.stop()
        try:
            await asyncio.wait_for(task, 15)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_windowed_batches_on_redis(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis
) -> None:
    recorder = RecordingInvoker()
    settings = DeliverySettings(
        ("team", "orders"), batch_size=100, batch_window=1.0, receive_wait=1.0
    )
    delivery = Delivery(source_for(redis_server), recorder, settings)
    async with running(delivery):
        for n in range(30):
            await redis_client.xadd(STREAM, {"body": f"m{n}"})
            if n % 10 == 9:
                await asyncio.sleep(0.1)

        async def delivered() -> bool:
            return await all_settled(redis_client, 30)

        await wait_for_async(delivered, WAIT_TIMEOUT, what="30 messages settled")

    assert [len(records) for records in recorder.events] == [30]  # one window held them all
    assert delivery.stats.acked == 30


ROBUST_HANDLER = """
import json, os

def handler(event, context):
    failed = []
    with open(os.environ["SEEN_LOG"], "a") as seen:
        for record in event["Records"]:
            count = int(record["attributes"]["ApproximateReceiveCount"])
            seen.write(f"{record['messageId']} {count}\\n")
            body = record["body"]
            # "fail" always fails; "fail:N" fails its first N deliveries.
            if body == "fail" or (body.startswith("fail:") and count <= int(body[5:])):
                failed.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failed}
"""


async def test_partial_batch_failures_end_to_end(
    redis_server: RedisServer,
    redis_client: redis.asyncio.Redis,
    activator: Stack,
    start_agent: StartAgent,
    tmp_path: Path,
) -> None:
    seen_log = tmp_path / "seen.log"
    agent = start_agent({"app.py": ROBUST_HANDLER}, env={"SEEN_LOG": str(seen_log)})
    key = activator.function("orders", pods={"127.0.0.1": agent.port})
    bodies = ["fail" if n % 25 == 0 else "fail:1" if n % 7 == 0 else "ok" for n in range(200)]
    pipe = redis_client.pipeline(transaction=False)
    for body in bodies:
        pipe.xadd(STREAM, {"body": body})
    ids = [i.decode() for i in await pipe.execute()]
    invoker = ActivatorInvoker(InvokerSettings(activator.url))
    policy = Policy(max_retries=2, dead_letter=True, report_batch_item_failures=True)
    settings = DeliverySettings(key, batch_size=10, policy=policy, receive_wait=1.0)
    delivery = Delivery(source_for(redis_server), invoker, settings)

    async with running(delivery):

        async def delivered() -> bool:
            return await all_settled(redis_client, len(ids))

        await wait_for_async(delivered, WAIT_TIMEOUT, what="every message settled")
    await invoker.aclose()

    always = {i for i, b in zip(ids, bodies, strict=True) if b == "fail"}
    once = {i for i, b in zip(ids, bodies, strict=True) if b == "fail:1"}
    dead: Any = await redis_client.xrange(DLQ)
    assert {f[b"lambdalet.id"].decode() for _, f in dead} == always
    assert {f[b"lambdalet.receiveCount"] for _, f in dead} == {b"3"}
    assert {f[b"lambdalet.reason"] for _, f in dead} == {b"BatchItemFailure"}
    deliveries: dict[str, list[int]] = {}
    for line in seen_log.read_text().splitlines():
        message_id, count = line.split()
        deliveries.setdefault(message_id, []).append(int(count))
    assert set(deliveries) == set(ids)  # the function saw every message
    assert all(deliveries[i] == [1, 2, 3] for i in always)
    assert all(deliveries[i] == [1, 2] for i in once)
    assert all(deliveries[i] == [1] for i in set(ids) - always - once)
    stats = delivery.stats
    assert (stats.acked, stats.dead_lettered, stats.dropped) == (200 - len(always), len(always), 0)
    assert stats.acked + stats.dead_lettered == len(ids)  # counted: none lost


async def test_broker_restart_mid_stream_loses_nothing(durable_redis: DurableRedis) -> None:
    client = durable_redis.server.client()
    produced = 3000
    pipe = client.pipeline(transaction=False)
    for n in range(produced):
        pipe.xadd(STREAM, {"body": f"m{n}"})
    ids = {i.decode() for i in await pipe.execute()}
    await client.aclose()

    recorder = RecordingInvoker(delay=0.002)  # a function that takes a moment: the restart lands
    settings = DeliverySettings(
        ("team", "orders"), batch_size=20, receive_wait=0.5, backoff_initial=0.05, backoff_max=0.5
    )
    source = source_for(durable_redis.server, dead_letter_stream=None)
    delivery = Delivery(source, recorder, settings)

    async with running(delivery):
        await wait_for_async(
            _at_least(delivery, 600), WAIT_TIMEOUT, what="600 messages acked before the restart"
        )
        durable_redis.stop()
        acked_before = delivery.stats.acked
        await asyncio.sleep(0.5)  # the broker is down for a while
        durable_redis.start()
        check = durable_redis.server.client()
        try:

            async def delivered() -> bool:
                return await all_settled(check, produced)

            await wait_for_async(delivered, 60, what="every message settled after the restart")
            assert await check.xlen(STREAM) == produced
        finally:
            await check.aclose()

    assert acked_before < produced
    assert delivery.stats.source_errors >= 1
    assert set(recorder.ids()) == ids  # every message reached the function
    assert delivery.stats.acked >= produced  # every one acknowledged (some maybe twice)
    assert delivery.stats.dead_lettered == delivery.stats.dropped == 0


def _at_least(delivery: Delivery, acked: int) -> Callable[[], Awaitable[bool]]:
    async def reached() -> bool:
        return delivery.stats.acked >= acked

    return reached
