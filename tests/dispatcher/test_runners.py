"""The queue runner with several pollers (``maxConcurrency``): against a real redis-server, the
in-process activator and real agents, every message is handled once, across the pollers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from lambdalet.api.eventsource import EventSourceSpec
from lambdalet.dispatcher.delivery.invoker import ActivatorInvoker, InvokerSettings
from lambdalet.dispatcher.delivery.loop import DeliveryStats
from lambdalet.dispatcher.replica.runners import (
    Assignment,
    Context,
    QueueRunner,
    poller_consumer,
    total_stats,
)
from lambdalet.k8s import Connection, KubeClient
from tests.activator.stack import Stack
from tests.dispatcher.test_redis_streams import (
    STREAM,
    WAIT_TIMEOUT,
    all_settled,
    group_info,
    produce,
)
from tests.kit.ports import free_port
from tests.kit.servers.agent import StartAgent
from tests.kit.servers.redis import RedisServer
from tests.kit.wait import wait_for_async

REPLICA = "dispatcher-a"

SEEN_HANDLER = """
import os, time

def handler(event, context):
    with open(os.environ["SEEN_LOG"], "a") as seen:
        for record in event["Records"]:
            seen.write(record["messageId"] + "\\n")
    time.sleep(0.005)
"""


@pytest.mark.parametrize(
    ("index", "consumer"),
    [(0, "dispatcher-a"), (1, "dispatcher-a-1"), (15, "dispatcher-a-15")],
)
def test_poller_consumer_names(index: int, consumer: str) -> None:
    assert poller_consumer(REPLICA, index) == consumer


def test_total_stats_adds_every_count() -> None:
    one = DeliveryStats(received=3, acked=2, retried=1, batches=2, invocations=4, not_answered=2)
    two = DeliveryStats(received=5, acked=4, dead_lettered=1, batches=3, invocations=3)

    assert total_stats([one, two]) == DeliveryStats(
        received=8, acked=6, retried=1, dead_lettered=1, batches=5, invocations=7, not_answered=2
    )
    assert total_stats([]) == DeliveryStats()


@contextlib.asynccontextmanager
async def runner_for(
    redis_server: RedisServer, activator: Stack, **spec: Any
) -> AsyncIterator[QueueRunner]:
    """A QueueRunner of a Redis Streams EventSource; its status writes go nowhere (a closed
    port: logged and skipped). Cancelled at the end, as the supervisor's shutdown may."""
    invoker = ActivatorInvoker(InvokerSettings(activator.url))
    client = KubeClient(Connection(server=f"http://127.0.0.1:{free_port()}"))
    context = Context(client=client, invoker=invoker, replica=REPLICA, s3_url=None, webhook_key=b"")
    assignment = Assignment(
        namespace="team",
        name="orders",
        uid="uid-1",
        generation=1,
        created=datetime(2026, 1, 1, tzinfo=UTC),
        spec=EventSourceSpec.model_validate(
            {
                "function": {"name": "orders"},
                "redisStreams": {"url": redis_server.url, "stream": STREAM},
                **spec,
            }
        ),
        function_timeout=10.0,
        stored={},
    )
    runner = QueueRunner(context, assignment)
    task = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await invoker.aclose()
        await client.aclose()


async def test_pollers_share_the_queue_and_each_message_is_handled_once(
    redis_server: RedisServer,
    redis_client: redis.asyncio.Redis,
    activator: Stack,
    start_agent: StartAgent,
    tmp_path: Path,
) -> None:
    ids = await produce(redis_client, 60)
    # No pod yet: every poller holds its batch (the activator answers 504 after its hold and
    # the poller invokes again), so the group has one pending entry per poller.
    key = activator.function("orders", pods={})

    async with runner_for(redis_server, activator, batchSize=1, maxConcurrency=4) as runner:

        async def each_poller_holds_one() -> bool:
            held = [int(c["pending"]) for c in await consumers_of(redis_client)]
            return held == [1, 1, 1, 1]

        await wait_for_async(
            each_poller_holds_one, WAIT_TIMEOUT, what="4 pollers holding a batch each"
        )
        assert {_text(c["name"]) for c in await consumers_of(redis_client)} == {
            "dispatcher-a",
            "dispatcher-a-1",
            "dispatcher-a-2",
            "dispatcher-a-3",
        }
        assert await runner.depth() == 60  # lag 56 + pending 4: the queue once, not 4 times

        # Two instances of the Function (one invocation each at a time): pollers run together.
        logs = [tmp_path / "seen-1.log", tmp_path / "seen-2.log"]
        agents = [start_agent({"app.py": SEEN_HANDLER}, env={"SEEN_LOG": str(p)}) for p in logs]
        activator.proxy.set_ready(key, {"127.0.0.1": agents[0].port, "127.0.0.2": agents[1].port})

        async def settled() -> bool:
            return await all_settled(redis_client, len(ids))

        await wait_for_async(settled, WAIT_TIMEOUT, what="every message settled")
        stats = runner.stats()

    seen = [line for log in logs for line in log.read_text().splitlines()]
    assert sorted(seen) == sorted(ids)  # each message handled once, none twice, none lost
    assert all(log.read_text() for log in logs)  # both instances took invocations
    assert stats is not None
    assert (stats.acked, stats.dead_lettered, stats.dropped, stats.retried) == (60, 0, 0, 0)
    assert stats.batches == 60
    info = await group_info(redis_client)
    assert (info["pending"], info["lag"]) == (0, 0)


async def test_one_poller_reads_as_the_replica(
    redis_server: RedisServer,
    redis_client: redis.asyncio.Redis,
    activator: Stack,
    start_agent: StartAgent,
    tmp_path: Path,
) -> None:
    ids = await produce(redis_client, 10)
    seen_log = tmp_path / "seen.log"
    agent = start_agent({"app.py": SEEN_HANDLER}, env={"SEEN_LOG": str(seen_log)})
    activator.function("orders", pods={"127.0.0.1": agent.port})

    async with runner_for(redis_server, activator, batchSize=3) as runner:

        async def settled() -> bool:
            return await all_settled(redis_client, len(ids))

        await wait_for_async(settled, WAIT_TIMEOUT, what="every message settled")
        assert await runner.depth() == 0

    assert [_text(c["name"]) for c in await consumers_of(redis_client)] == [REPLICA]
    assert sorted(seen_log.read_text().splitlines()) == sorted(ids)


async def consumers_of(client: redis.asyncio.Redis) -> list[dict[str, Any]]:
    """The group's consumers (none before a poller has made the group)."""
    try:
        consumers: list[dict[str, Any]] = await client.xinfo_consumers(STREAM, "lambdalet")
    except redis.ResponseError as exc:
        if "NOGROUP" in str(exc):
            return []
        raise
    return consumers


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
