"""Lambda's Event invocation type end to end in the activator: the Invoke API answers 202 once
the event is in Redis, the queue's worker invokes the real function through the proxy, and a
failing event ends up, with Lambda's invocation record, in the dead-letter stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import redis.asyncio

from lambdalet.activator.asyncinvoke.options import AsyncQueueOptions
from lambdalet.activator.asyncinvoke.policy import RetryPolicy
from lambdalet.activator.asyncinvoke.queue import AsyncQueue
from lambdalet.activator.proxy import Proxy
from tests.activator.stack import HANDLER, Stack, start_stack
from tests.kit.servers.agent import StartAgent
from tests.kit.wait import wait_for_async

INVOKE = "/2015-03-31/functions/team:hello/invocations"
EVENT = {"x-amz-invocation-type": "Event"}


@pytest.fixture
async def stack(redis_client: redis.asyncio.Redis) -> AsyncIterator[Stack]:
    def queue(proxy: Proxy) -> AsyncQueue:
        options = AsyncQueueOptions(
            retry=RetryPolicy(retry_base_delay=0.1, throttle_base_delay=0.1),
            placement_wait=5.0,
            poll_interval=0.2,
        )
        return AsyncQueue(redis_client, proxy, proxy.config, consumer="test", options=options)

    built = await start_stack(async_queue=queue)
    assert built.queue is not None
    worker = asyncio.create_task(built.queue.run())
    yield built
    worker.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await worker
    await built.close()


async def test_event_is_accepted_with_202_and_invoked_from_the_queue(
    stack: Stack, start_agent: StartAgent, tmp_path: Path
) -> None:
    agent = start_agent({"app.py": HANDLER})
    key = stack.function()
    stack.proxy.set_ready(key, {"127.0.0.1": agent.port})
    written = tmp_path / "invoked.txt"

    reply = await stack.client.post(INVOKE, headers=EVENT, json={"write": str(written)})

    assert reply.status_code == 202
    assert reply.content == b""
    request_id = reply.headers["x-amzn-requestid"]
    await wait_for_async(
        lambda: written.exists() and written.read_text().strip() == request_id, 15.0
    )
    queue = stack.queue
    assert queue is not None
    await _until_async(lambda: queue.depth(key), 0)


async def test_failing_event_is_retried_then_dead_lettered_with_the_record(
    stack: Stack, start_agent: StartAgent, redis_client: redis.asyncio.Redis
) -> None:
    agent = start_agent({"app.py": HANDLER})
    key = stack.function(max_retries=1)
    stack.proxy.set_ready(key, {"127.0.0.1": agent.port})

    reply = await stack.client.post(INVOKE, headers=EVENT, json={"fail": True})

    assert reply.status_code == 202
    dlq = "lambdalet:dlq:team:hello"
    await _until_async(lambda: redis_client.xlen(dlq), 1)
    ((_, fields),) = await redis_client.xrange(dlq)
    record = json.loads(fields[b"record"])
    assert record["requestContext"]["requestId"] == reply.headers["x-amzn-requestid"]
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2
    assert record["requestPayload"] == {"fail": True}
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "ValueError"


async def test_event_over_256_kib_is_413(stack: Stack) -> None:
    stack.function()
    reply = await stack.client.post(INVOKE, headers=EVENT, content=b"x" * (256 * 1024 + 1))

    assert reply.status_code == 413
    assert reply.headers["x-amzn-errortype"] == "RequestEntityTooLargeException"


async def _until_async(
    read: Callable[[], Awaitable[int]], expected: int, within: float = 15.0
) -> None:
    deadline = time.monotonic() + within
    while (value := await read()) != expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"still {value}, not {expected}")
        await asyncio.sleep(0.05)
