"""Invocations counted by what became of them, on every path of the activator, against real
agents: ``lambdalet_activator_invocation_outcomes_total{path,outcome}``.

The Invoke API answers a function error, a timeout, a runtime exit and an out-of-memory kill all
with 200 (as Lambda does), and an HTTP route the status the handler chose; the outcome tells
them apart (``lambdalet.outcomes``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio

from lambdalet.activator.asyncinvoke.options import AsyncQueueOptions
from lambdalet.activator.asyncinvoke.policy import RetryPolicy
from lambdalet.activator.asyncinvoke.queue import AsyncQueue
from lambdalet.activator.metrics import Metrics
from lambdalet.activator.proxy import Proxy, ProxyLimits
from tests.activator.stack import Stack, StaticTokens, start_stack
from tests.kit.servers.agent import StartAgent
from tests.kit.wait import wait_for_async

pytestmark = pytest.mark.both_loops

OUTCOMES = "lambdalet_activator_invocation_outcomes_total"
INVOKE = "/2015-03-31/functions/team:hello/invocations"

# The action comes in the Invoke API's payload, or as the path of an HTTP route.
HANDLER = """
import os, time

def handler(event, context):
    action = event.get("action") or (event.get("rawPath") or "/").strip("/")
    if action == "fail":
        raise ValueError("boom")
    if action == "sleep":
        time.sleep(60)  # until the timeout ends it
    if action == "exit":
        os._exit(3)
    if action == "hog":
        hoard = bytearray(400 * 1024 * 1024)
        for page in range(0, len(hoard), 4096):
            hoard[page] = 1
    # A status the handler chose: not the invocation's outcome.
    return {"statusCode": 500, "body": "chosen"} if action == "500" else "ok"
"""
# Short enough for "sleep" to time out soon, long enough that nothing else comes near it on a
# busy machine.
TIMEOUT = 3.0
FAST_TIMEOUT = {"LAMBDALET_TIMEOUT_SECONDS": str(TIMEOUT)}


def outcomes(metrics: Metrics, path: str) -> dict[str, float]:
    """The non-zero outcome counts of team/hello on ``path``."""
    counts: dict[str, float] = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            labels = sample.labels
            if (
                sample.name == OUTCOMES
                and (labels["namespace"], labels["function"], labels["path"])
                == ("team", "hello", path)
                and sample.value
            ):
                counts[labels["outcome"]] = sample.value
    return counts


async def call(stack: Stack, path: str, action: str) -> int:
    if path == "http":
        response = await stack.client.get(f"/fn/team/hello/{action}")
    else:
        response = await stack.client.post(INVOKE, json={"action": action})
    return response.status_code


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    built = await start_stack(proxy_limits=ProxyLimits(hold_timeout=0.5))
    yield built
    await built.close()


@pytest.mark.parametrize("path", ["http", "invoke"])
async def test_function_errors_timeouts_and_exits_are_told_apart(
    stack: Stack, start_agent: StartAgent, path: str
) -> None:
    agent = start_agent({"app.py": HANDLER}, env=FAST_TIMEOUT)
    stack.function(pods={"127.0.0.1": agent.port}, timeout_seconds=TIMEOUT)

    statuses = [
        await call(stack, path, action) for action in ("ok", "500", "fail", "sleep", "exit")
    ]

    # The Invoke API says 200 to all of them; an HTTP route 200, the handler's 500, then 500s.
    assert statuses == ([200, 500, 500, 500, 500] if path == "http" else [200] * 5)
    assert outcomes(stack.metrics, path) == {
        "success": 2,
        "error": 1,
        "timeout": 1,
        "runtime_exit": 1,
    }


@pytest.mark.parametrize("path", ["http", "invoke"])
async def test_an_out_of_memory_kill_counts_as_oom(
    stack: Stack, small_memory_cgroup: Path, start_agent: StartAgent, path: str
) -> None:
    agent = start_agent({"app.py": HANDLER}, cgroup=small_memory_cgroup)
    stack.function(pods={"127.0.0.1": agent.port})

    assert await call(stack, path, "hog") == (500 if path == "http" else 200)

    assert outcomes(stack.metrics, path) == {"oom": 1}


@pytest.mark.parametrize("path", ["http", "invoke"])
async def test_an_init_error_counts_as_init_error(
    stack: Stack, start_agent: StartAgent, path: str
) -> None:
    agent = start_agent({"app.py": "import not_installed_anywhere\n"}, wait_ready=False)
    agent.wait_health("init_error")
    stack.function(pods={"127.0.0.1": agent.port})

    assert await call(stack, path, "ok") == (500 if path == "http" else 502)

    assert outcomes(stack.metrics, path) == {"init_error": 1}


@pytest.mark.parametrize("path", ["http", "invoke"])
async def test_invocations_that_never_ran(path: str) -> None:
    tokens = StaticTokens({("team", "auth", "token"): "secret"})
    stack = await start_stack(proxy_limits=ProxyLimits(hold_timeout=0.3), tokens=tokens)
    try:
        stack.function(reserved=0, pods={"127.0.0.1": 1})
        throttled = await call(stack, path, "ok")
        stack.function(pods={})  # no instance comes before the hold's deadline
        unavailable = await call(stack, path, "ok")
        stack.function(auth_secret=("auth", "token"), pods={})  # and no token is sent
        rejected = await call(stack, path, "ok")

        assert (throttled, unavailable, rejected) == (429, 504, 401)
        assert outcomes(stack.metrics, path) == {"throttled": 1, "unavailable": 1, "rejected": 1}
    finally:
        await stack.close()


async def test_the_invoke_apis_event_and_dry_run_are_queued_and_dry_run(stack: Stack) -> None:
    stack.function()

    dry = await stack.client.post(INVOKE, headers={"x-amz-invocation-type": "DryRun"}, json={})
    event = await stack.client.post(INVOKE, headers={"x-amz-invocation-type": "Event"}, json={})

    assert (dry.status_code, event.status_code) == (204, 400)  # no Redis: Event is refused
    assert outcomes(stack.metrics, "invoke") == {"dry_run": 1, "rejected": 1}


async def test_the_asynchronous_worker_counts_each_attempt(
    redis_client: redis.asyncio.Redis, start_agent: StartAgent
) -> None:
    metrics = Metrics()

    def queue(proxy: Proxy) -> AsyncQueue:
        options = AsyncQueueOptions(
            retry=RetryPolicy(retry_base_delay=0.1, throttle_base_delay=0.1), poll_interval=0.2
        )
        return AsyncQueue(
            redis_client,
            proxy,
            proxy.config,
            consumer="test",
            options=options,
            attempted=metrics.attempted,
        )

    stack = await start_stack(async_queue=queue, metrics=metrics)
    assert stack.queue is not None
    worker = asyncio.create_task(stack.queue.run())
    try:
        agent = start_agent({"app.py": HANDLER}, env=FAST_TIMEOUT)
        # No retries: each event is attempted once.
        stack.function(pods={"127.0.0.1": agent.port}, timeout_seconds=TIMEOUT, max_retries=0)
        for action in ("ok", "fail", "sleep", "exit"):
            reply = await stack.client.post(
                INVOKE, headers={"x-amz-invocation-type": "Event"}, json={"action": action}
            )
            assert reply.status_code == 202

        await wait_for_async(lambda: sum(outcomes(metrics, "async").values()) == 4, 30.0)
        assert outcomes(metrics, "async") == {
            "success": 1,
            "error": 1,
            "timeout": 1,
            "runtime_exit": 1,
        }
        assert outcomes(metrics, "invoke") == {"queued": 4}
    finally:
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker
        await stack.close()
