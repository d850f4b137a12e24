"""Invocations over one activator's share of reserved concurrency, handed to a peer (``forward``).

Two activators in-process, each with its own share (a fixed ``Shares``, as ``peers`` would give
it), the peer's forwarded-invocation endpoint served on a real socket, a real agent behind the
peer. The handler holds each invocation until the test releases it, so nothing depends on timing.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from lambdalet.activator.forward import Forwarder, serve_forwarded
from lambdalet.activator.http1 import serve
from lambdalet.activator.model import FunctionConfig
from lambdalet.activator.upstream import Pool
from tests.activator.stack import Stack, start_stack
from tests.kit.servers.agent import StartAgent
from tests.kit.wait import wait_for_async

pytestmark = pytest.mark.both_loops

KEY = "shared-key"
INVOKE = "/2015-03-31/functions/team:hello/invocations"
HANDLER = """
import os, time

def handler(event, context):
    gate = event["gate"]
    deadline = time.monotonic() + 20
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"by": os.getpid(), "id": context.aws_request_id}
"""


@dataclass
class FixedShare:
    share_of: int

    def share(self, config: FunctionConfig) -> int | None:
        return None if config.reserved is None else self.share_of


@dataclass
class Pair:
    origin: Stack  # share 0: every capped invocation is over its share
    peer: Stack  # share 1
    peer_port: int


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    peer = await start_stack(shares=FixedShare(1))
    endpoint = await serve(
        functools.partial(serve_forwarded, key=KEY, invoke=peer.proxy.invoke, hold_limit=5.0),
        "127.0.0.1",
        0,
    )
    port = endpoint.sockets[0].getsockname()[1]
    forwarder = Forwarder(Pool(), KEY, lambda config: [("127.0.0.1", port)])
    origin = await start_stack(shares=FixedShare(0), forwarder=forwarder)
    yield Pair(origin, peer, port)
    endpoint.close()
    await origin.close()
    await peer.close()


async def test_an_invocation_over_the_share_runs_through_the_peer_that_holds_one(
    pair: Pair, start_agent: StartAgent, tmp_path: Path
) -> None:
    agent = start_agent({"app.py": HANDLER})
    config = {"reserved": 1, "timeout_seconds": 30.0}
    pair.origin.function(**config)  # the origin has no pod: it could not run it itself
    pair.peer.function(pods={"127.0.0.1": agent.port}, **config)
    gate = tmp_path / "gate"
    payload = json.dumps({"gate": str(gate)}).encode()

    first = asyncio.create_task(pair.origin.client.post(INVOKE, content=payload))
    await wait_for_async(lambda: _in_flight(pair.peer) == 1, 20.0)
    # The peer's one unit is in use: the next one is refused there, so 429 here.
    second = await pair.origin.client.post(INVOKE, content=payload)
    assert second.status_code == 429
    assert second.headers["x-amzn-errortype"] == "TooManyRequestsException"
    gate.touch()
    answer = await first
    assert answer.status_code == 200
    assert answer.json()["id"] == answer.headers["x-amzn-requestid"]

    exposition = pair.origin.metrics.exposition().decode()
    labels = 'function="hello",namespace="team",reason="reserved"'
    assert f"lambdalet_activator_throttles_total{{{labels}}} 1.0" in exposition
    assert "lambdalet_activator_throttles_total{" not in pair.peer.metrics.exposition().decode()


async def test_a_function_error_comes_back_as_the_pod_gave_it(
    pair: Pair, start_agent: StartAgent
) -> None:
    agent = start_agent({"app.py": "def handler(event, context):\n    raise ValueError('boom')\n"})
    pair.origin.function(reserved=1)
    pair.peer.function(pods={"127.0.0.1": agent.port}, reserved=1)

    answer = await pair.origin.client.post(INVOKE, content=b"{}")

    assert answer.status_code == 200
    assert answer.headers["x-amz-function-error"] == "Unhandled"
    assert answer.json()["errorType"] == "ValueError"


async def test_without_the_key_the_peer_takes_nothing(pair: Pair) -> None:
    async with httpx.AsyncClient() as client:
        refused = await client.post(
            f"http://127.0.0.1:{pair.peer_port}/2015-03-31/functions/function/invocations",
            headers={"lambdalet-forwarded-function": "team/hello", "authorization": "Bearer x"},
            content=b"{}",
        )
    assert refused.status_code == 401
    assert refused.headers["lambdalet-rejected"] == "Unauthorized"


def _in_flight(stack: Stack) -> int:
    return sum(flying for _, flying, _ in stack.proxy.loads())
