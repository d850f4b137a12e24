"""AsyncQueue against a real redis-server: enqueue, the worker, retries and destinations."""

from __future__ import annotations

import json
import socket
import time
from dataclasses import replace

import pytest
import redis.asyncio
from prometheus_client import CollectorRegistry

from lambdalet.activator.asyncinvoke.options import AsyncQueueOptions
from lambdalet.activator.asyncinvoke.policy import MAX_ASYNC_PAYLOAD
from lambdalet.activator.asyncinvoke.queue import AsyncMetrics
from lambdalet.activator.model import FailureDestination
from lambdalet.api.function import DestinationType
from lambdalet.contracts.invocation import InvokeRejected
from tests.activator.asyncq_harness import (
    FAST,
    NS,
    WAIT,
    entries,
    error,
    fn,
    length_is,
    make_queue,
    record_in,
    running,
    throttle,
)
from tests.kit.invokers import ScriptedInvoker
from tests.kit.wait import wait_for_async


async def test_success_invokes_once_and_deletes_the_entry(
    redis_client: redis.asyncio.Redis,
) -> None:
    invoker, registry = ScriptedInvoker(), CollectorRegistry()
    config = fn("hello")
    queue = make_queue(redis_client, invoker, [config], metrics=AsyncMetrics(registry))
    headers = {"X-Amzn-Trace-Id": "Root=1-abc"}
    await queue.enqueue(config, b'{"n": 1}', request_id="req-1", headers=headers)
    assert await queue.depth(config.key) == 1
    async with running(queue):
        await wait_for_async(lambda: invoker.calls, WAIT, what="the invocation", interval=0.01)
        stream = "lambdalet:async:team:hello"
        await wait_for_async(
            lambda: length_is(redis_client, stream, 0), WAIT, what="the ack", interval=0.01
        )
    [call] = invoker.calls
    assert (call.key, call.payload, call.request_id, call.headers) == (
        config.key, b'{"n": 1}', "req-1", headers
    )  # fmt: skip
    assert await queue.depth(config.key) == 0
    pending = await redis_client.xpending("lambdalet:async:team:hello", "lambdalet-activator")
    assert pending["pending"] == 0
    assert not await redis_client.exists("lambdalet:dlq:team:hello")
    labels = {"namespace": NS, "function": "hello"}
    for outcome in ("enqueued", "succeeded"):
        value = registry.get_sample_value(
            "lambdalet_activator_async_events_total", {**labels, "outcome": outcome}
        )
        assert value == 1.0, outcome


async def test_function_error_retried_max_retries_times_then_recorded_in_stream(
    redis_client: redis.asyncio.Redis,
) -> None:
    invoker = ScriptedInvoker(default=error)
    destination = FailureDestination(DestinationType.REDIS_STREAM, "failures")
    config = fn("flaky", max_retries=2, on_failure=destination)
    queue = make_queue(redis_client, invoker, [config])
    before = time.time()
    await queue.enqueue(config, b'{"order": 7}', request_id="req-7", headers={})
    async with running(queue):
        record = await record_in(redis_client, "failures")
    assert invoker.ids("flaky") == ["req-7"] * 3  # the first attempt and exactly 2 retries
    first, second, third = (call.at for call in invoker.calls)
    assert second - first >= 0.1 - 0.01  # retry_base_delay, then twice that
    assert third - second >= 0.2 - 0.01
    assert record.pop("timestamp") >= time.strftime("%Y-%m-%dT", time.gmtime(before))  # type: ignore[operator]
    assert record == {
        "version": "1.0",
        "requestContext": {
            "requestId": "req-7",
            "functionArn": "arn:aws:lambda:us-east-1:000000000000:function:flaky:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": {"order": 7},
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": {"errorMessage": "boom", "errorType": "Exception"},
    }
    [fields] = await entries(redis_client, "failures")
    assert fields[b"function"] == b"team/flaky"
    assert await queue.depth(config.key) == 0
    assert await redis_client.zcard("lambdalet:async-delayed") == 0


async def test_function_destination_gets_the_record_as_a_new_event(
    redis_client: redis.asyncio.Redis,
) -> None:
    invoker = ScriptedInvoker(scripts={"source": [error()]})
    to_sink = FailureDestination(DestinationType.FUNCTION, "sink")
    source = fn("source", max_retries=0, on_failure=to_sink)
    sink = fn("sink")
    queue = make_queue(redis_client, invoker, [source, sink])
    await queue.enqueue(source, b'"payload"', request_id="req-s", headers={})
    async with running(queue):
        await wait_for_async(
            lambda: invoker.ids("sink"), WAIT, what="the destination's invocation", interval=0.01
        )
        stream = "lambdalet:async:team:sink"
        await wait_for_async(
            lambda: length_is(redis_client, stream, 0),
            WAIT,
            what="the destination's ack",
            interval=0.01,
        )
    [call] = [call for call in invoker.calls if call.key == sink.key]
    record = json.loads(call.payload)
    assert record["requestContext"]["requestId"] == "req-s"
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestPayload"] == "payload"
    assert call.request_id != "req-s"
    assert await queue.depth(source.key) == 0
    assert not await redis_client.exists("lambdalet:dlq:team:source")


@pytest.mark.parametrize(
    "on_failure",
    [None, FailureDestination(DestinationType.FUNCTION, "no-such-function")],
    ids=["no destination", "unknown destination function"],
)
async def test_dead_letter_stream_when_no_destination_takes_it(
    redis_client: redis.asyncio.Redis, on_failure: FailureDestination | None
) -> None:
    invoker = ScriptedInvoker(default=error)
    config = fn("lonely", max_retries=0, on_failure=on_failure)
    queue = make_queue(redis_client, invoker, [config])
    await queue.enqueue(config, b"not json", request_id="req-d", headers={})
    async with running(queue):
        record = await record_in(redis_client, "lambdalet:dlq:team:lonely")
    assert record["requestContext"]["condition"] == "RetriesExhausted"  # type: ignore[index]
    assert record["requestPayload"] == "not json"
    assert await queue.depth(config.key) == 0


async def test_old_event_is_recorded_without_being_invoked(
    redis_client: redis.asyncio.Redis,
) -> None:
    shift = [0.0]
    invoker = ScriptedInvoker()
    config = fn("slow", max_event_age_seconds=60.0)
    queue = make_queue(redis_client, invoker, [config], clock=lambda: time.time() + shift[0])
    await queue.enqueue(config, b"{}", request_id="req-old", headers={})
    shift[0] = 61.0  # the event waited longer than its maximum age
    async with running(queue):
        record = await record_in(redis_client, "lambdalet:dlq:team:slow")
    assert record["requestContext"]["condition"] == "EventAgeExceeded"  # type: ignore[index]
    assert record["requestContext"]["approximateInvokeCount"] == 0  # type: ignore[index]
    assert "responseContext" not in record
    assert invoker.calls == []


async def test_throttles_until_the_event_is_too_old(redis_client: redis.asyncio.Redis) -> None:
    invoker = ScriptedInvoker(default=throttle)
    config = fn("busy", max_retries=0, max_event_age_seconds=0.5)
    queue = make_queue(redis_client, invoker, [config])
    await queue.enqueue(config, b"{}", request_id="req-b", headers={})
    async with running(queue):
        record = await record_in(redis_client, "lambdalet:dlq:team:busy")
    context = record["requestContext"]
    assert context["condition"] == "EventAgeExceeded"  # type: ignore[index]
    # max_retries 0, yet it was tried again and again: throttles use up no retry.
    assert context["approximateInvokeCount"] == len(invoker.calls) >= 2  # type: ignore[index]
    assert record["responseContext"] == {"statusCode": 429, "executedVersion": "$LATEST"}


async def test_throttles_do_not_use_up_retries(redis_client: redis.asyncio.Redis) -> None:
    invoker = ScriptedInvoker(scripts={"mixed": [throttle()] * 4}, default=error)
    config = fn("mixed", max_retries=1)
    queue = make_queue(redis_client, invoker, [config])
    await queue.enqueue(config, b"{}", request_id="req-m", headers={})
    async with running(queue):
        record = await record_in(redis_client, "lambdalet:dlq:team:mixed")
    assert invoker.ids("mixed") == ["req-m"] * 6  # 4 throttles, then 1 attempt + 1 retry
    assert record["requestContext"]["condition"] == "RetriesExhausted"  # type: ignore[index]
    assert record["requestContext"]["approximateInvokeCount"] == 6  # type: ignore[index]


async def test_enqueue_beyond_the_bound_is_rejected(redis_client: redis.asyncio.Redis) -> None:
    config = fn("bounded")
    options = AsyncQueueOptions(max_events_per_function=3)
    queue = make_queue(redis_client, ScriptedInvoker(), [config], options=options)
    for i in range(3):
        await queue.enqueue(config, b"{}", request_id=f"req-{i}", headers={})
    with pytest.raises(InvokeRejected) as raised:
        await queue.enqueue(config, b"{}", request_id="req-3", headers={})
    assert raised.value.status == 429
    assert "team/bounded is full (3 events" in raised.value.message
    assert await queue.depth(config.key) == 3  # the rejected event was not stored
    other = fn("other")  # the bound is per function
    await queue.enqueue(other, b"{}", request_id="req-o", headers={})


async def test_payload_limit_is_256_kib(redis_client: redis.asyncio.Redis) -> None:
    config = fn("big")
    queue = make_queue(redis_client, ScriptedInvoker(), [config])
    await queue.enqueue(config, b"x" * MAX_ASYNC_PAYLOAD, request_id="req-max", headers={})
    with pytest.raises(InvokeRejected) as raised:
        await queue.enqueue(config, b"x" * (MAX_ASYNC_PAYLOAD + 1), request_id="r", headers={})
    assert (raised.value.status, raised.value.error_type) == (413, "RequestEntityTooLargeException")
    assert await queue.depth(config.key) == 1


async def test_enqueue_without_redis_is_a_503() -> None:
    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = redis.asyncio.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1)
    config = fn("nowhere")
    try:
        options = replace(FAST, redis_timeout=0.5)  # redis-py would retry for seconds
        queue = make_queue(client, ScriptedInvoker(), [config], options=options)
        with pytest.raises(InvokeRejected) as raised:
            await queue.enqueue(config, b"{}", request_id="req-x", headers={})
    finally:
        await client.aclose()
    assert (raised.value.status, raised.value.error_type) == (503, "ServiceException")


async def test_malformed_entry_goes_to_the_dead_letter_stream(
    redis_client: redis.asyncio.Redis,
) -> None:
    config = fn("junk")
    invoker = ScriptedInvoker()
    queue = make_queue(redis_client, invoker, [config])
    await queue.enqueue(config, b"{}", request_id="req-good", headers={})
    await redis_client.xadd("lambdalet:async:team:junk", {"hello": "world"})
    async with running(queue):
        await wait_for_async(
            lambda: redis_client.xlen("lambdalet:dlq:team:junk"),
            WAIT,
            what="the dead letter",
            interval=0.01,
        )
        await wait_for_async(
            lambda: length_is(redis_client, "lambdalet:async:team:junk", 0),
            WAIT,
            what="acks",
            interval=0.01,
        )
    [fields] = await entries(redis_client, "lambdalet:dlq:team:junk")
    assert fields[b"hello"] == b"world"
    assert b"malformed" in fields[b"error"]
    assert invoker.ids("junk") == ["req-good"]
