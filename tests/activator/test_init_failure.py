"""A pod's init failure, reported to the activator (``Proxy.init_failed``, the /v1/init-error
endpoint after verification): while the Function has no pod to route to, held and new requests
get the init error at once -- the same answer the failed pod gives -- instead of waiting until
their deadline. The error documents come from a real agent whose handler does not import."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from lambdalet.activator.proxy import ProxyLimits
from tests.activator.stack import HANDLER, Stack, start_stack
from tests.activator.test_proxy import _held
from tests.kit.servers.agent import Agent, StartAgent
from tests.kit.wait import wait_for_async

pytestmark = pytest.mark.both_loops

INVOKE = "/2015-03-31/functions/team:hello/invocations"
BROKEN = {"app.py": "import no_such_module\n\ndef handler(event, context):\n    return 1\n"}


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    built = await start_stack(proxy_limits=ProxyLimits(hold_timeout=20.0))
    yield built
    await built.close()


def broken_agent(start_agent: StartAgent) -> tuple[Agent, bytes]:
    """An agent whose init fails, and the error document it answers invocations with."""
    agent = start_agent(BROKEN, wait_ready=False)
    health = agent.wait_health("init_error")
    return agent, json.dumps(health["error"]).encode()


async def test_held_requests_get_the_init_error_at_once(
    stack: Stack, start_agent: StartAgent
) -> None:
    key = stack.function()
    held = [asyncio.create_task(stack.client.post(INVOKE, content=b"{}")) for _ in range(3)]
    await wait_for_async(lambda: _held(stack) == 3, 5.0, interval=0.01)
    agent, error = broken_agent(start_agent)
    async with httpx.AsyncClient() as client:
        direct = await client.post(
            f"http://127.0.0.1:{agent.port}/2015-03-31/functions/function/invocations"
        )

    started = time.monotonic()
    assert stack.proxy.init_failed(key, "127.0.0.1", error)
    replies = await asyncio.gather(*held)

    assert time.monotonic() - started < 10  # at once, not after the 20 s hold timeout
    for reply in replies:
        # What the failed pod itself answers.
        assert reply.status_code == direct.status_code == 502
        assert reply.headers["x-amz-function-error"] == "Unhandled"
        assert reply.json() == direct.json()
        assert reply.json()["errorType"] == "Runtime.ImportModuleError"
    assert _held(stack) == 0


async def test_new_requests_get_it_too_until_a_pod_is_ready(
    stack: Stack, start_agent: StartAgent
) -> None:
    key = stack.function()
    _, error = broken_agent(start_agent)
    stack.proxy.init_failed(key, "10.0.0.9", error)

    failed = await stack.client.post(INVOKE, content=b"{}")
    route = await stack.client.get("/fn/team/hello/")
    assert failed.status_code == 502
    assert failed.json()["errorType"] == "Runtime.ImportModuleError"
    # An HTTP route answers a function error as API Gateway does.
    assert (route.status_code, route.json()) == (500, {"message": "Internal Server Error"})
    assert stack.pokes == []  # nothing held, nothing to scale for

    # A fixed pod announces itself: requests go to it again.
    good = start_agent({"app.py": HANDLER})
    stack.proxy.announce(key, "127.0.0.1", good.port)
    ok = await stack.client.post(INVOKE, content=b'{"a": 1}')
    assert ok.status_code == 200, ok.text
    assert ok.json()["echo"] == {"a": 1}


async def test_the_failed_pod_stopping_clears_it(stack: Stack, start_agent: StartAgent) -> None:
    key = stack.function()
    _, error = broken_agent(start_agent)
    stack.proxy.init_failed(key, "10.0.0.9", error)
    stack.proxy.withdraw(key, "10.0.0.7")  # another pod: the failure stands
    assert (await stack.client.post(INVOKE, content=b"{}")).status_code == 502

    stack.proxy.withdraw(key, "10.0.0.9")
    held = asyncio.create_task(stack.client.post(INVOKE, content=b"{}"))

    # Held for the next pod, whose init is tried afresh.
    await wait_for_async(lambda: _held(stack) == 1, 5.0, interval=0.01)
    assert stack.pokes == [key]
    good = start_agent({"app.py": HANDLER})
    stack.proxy.announce(key, "127.0.0.1", good.port)
    assert (await held).status_code == 200


async def test_a_ready_pod_is_used_whatever_another_pod_reported(
    stack: Stack, start_agent: StartAgent
) -> None:
    good = start_agent({"app.py": HANDLER})
    key = stack.function(pods={"127.0.0.1": good.port})
    _, error = broken_agent(start_agent)

    stack.proxy.init_failed(key, "10.0.0.9", error)
    reply = await stack.client.post(INVOKE, content=b'{"b": 2}')

    assert reply.status_code == 200, reply.text
    assert reply.json()["echo"] == {"b": 2}


async def test_an_unknown_function_is_refused(stack: Stack) -> None:
    assert not stack.proxy.init_failed(("team", "nope"), "10.0.0.9", b"{}")
