"""Shared pieces of the asyncq component tests: Functions, answers, a running worker.

The invoker (``tests.kit.invokers.ScriptedInvoker``) stands where the activator's proxy stands
(the seam every part invokes through), so everything on the Redis side is real. Retry delays are
shrunk (0.1 s base); every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

import pytest
import redis.asyncio

from lambdalet.activator.asyncinvoke.options import AsyncQueueOptions
from lambdalet.activator.asyncinvoke.policy import RetryPolicy
from lambdalet.activator.asyncinvoke.queue import AsyncQueue
from lambdalet.activator.model import FunctionConfig
from lambdalet.contracts.invocation import InvokeRejected, InvokeResult
from lambdalet.contracts.keys import Key
from tests.kit.invokers import ScriptedInvoker
from tests.kit.wait import wait_for_async

NS = "team"
FAST = AsyncQueueOptions(
    retry=RetryPolicy(retry_base_delay=0.1, throttle_base_delay=0.02, throttle_max_delay=0.1),
    placement_wait=0.2,
    claim_margin=0.4,
    claim_interval=0.1,
    poll_interval=0.05,
)
WAIT = 10.0  # seconds any one condition may take
ERROR_BODY = b'{"errorMessage": "boom", "errorType": "Exception"}'


def fn(name: str, **kwargs: object) -> FunctionConfig:
    """A Function of namespace ``team``; 0.1 s timeout unless given, so take-overs are quick."""
    kwargs.setdefault("timeout_seconds", 0.1)
    return FunctionConfig(namespace=NS, name=name, **kwargs)  # type: ignore[arg-type]


def ok(request_id: str = "") -> InvokeResult:
    return InvokeResult(200, b'"done"', request_id)


def error() -> InvokeResult:
    return InvokeResult(200, ERROR_BODY, "", function_error="Unhandled")


def throttle() -> InvokeRejected:
    return InvokeRejected(429, "TooManyRequestsException", "reserved concurrency reached")


async def depth_is(queue: AsyncQueue, key: Key, expected: int) -> bool:
    return await queue.depth(key) == expected


async def length_is(client: redis.asyncio.Redis, stream: str, expected: int) -> bool:
    return await client.xlen(stream) == expected


@asynccontextmanager
async def running(queue: AsyncQueue) -> AsyncIterator[asyncio.Task[None]]:
    """The worker of ``queue`` while the block runs (it may cancel it); a crash fails the test."""
    task = asyncio.create_task(queue.run())
    try:
        yield task
        if task.done() and not task.cancelled():  # the worker returned or raised by itself
            pytest.fail(f"the worker stopped: {task.exception()!r}")
    finally:
        task.cancel()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), WAIT)


def make_queue(
    client: redis.asyncio.Redis,
    invoker: ScriptedInvoker,
    configs: list[FunctionConfig],
    *,
    consumer: str = "a",
    options: AsyncQueueOptions = FAST,
    **kwargs: object,
) -> AsyncQueue:
    by_key = {config.key: config for config in configs}
    return AsyncQueue(
        client,
        invoker,
        by_key.get,
        consumer=consumer,
        options=options,
        **kwargs,  # type: ignore[arg-type]
    )


async def entries(client: redis.asyncio.Redis, stream: str) -> list[dict[bytes, bytes]]:
    """The fields of every entry of ``stream`` (the client returns bytes)."""
    return [cast(dict[bytes, bytes], fields) for _, fields in await client.xrange(stream) or []]


async def record_in(client: redis.asyncio.Redis, stream: str) -> dict[str, object]:
    await wait_for_async(
        lambda: client.xlen(stream), WAIT, what=f"a record in {stream}", interval=0.01
    )
    (fields,) = await entries(client, stream)
    record: dict[str, object] = json.loads(fields[b"record"])
    assert fields[b"requestId"] == record["requestContext"]["requestId"].encode()  # type: ignore[index]
    assert fields[b"condition"] == record["requestContext"]["condition"].encode()  # type: ignore[index]
    return record
