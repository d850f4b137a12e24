"""The invoker against the real activator in front of a real agent and Python runtime."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from lambdalet.contracts.invocation import InvokeResult
from lambdalet.dispatcher.delivery.invoker import (
    ActivatorInvoker,
    InvokerSettings,
    classify,
    invoke_timeout,
    outcome_of,
)
from lambdalet.dispatcher.delivery.outcome import FailureKind, InvokeFailed
from lambdalet.dispatcher.metrics import DispatcherCollector
from lambdalet.outcomes import Outcome
from tests.activator.stack import Stack, StaticTokens, start_stack
from tests.kit.servers.agent import StartAgent

WAIT = 30.0  # seconds any condition of these tests may take

HANDLER = """
import time

def handler(event, context):
    failed = []
    for record in event["Records"]:
        body = record["body"]
        if body == "raise":
            raise ValueError("boom")
        if body.startswith("sleep:"):
            time.sleep(float(body[6:]))
        if body == "fail":
            failed.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failed, "seen": [r["messageId"] for r in event["Records"]]}
"""


def event(*bodies: str) -> bytes:
    records = [{"messageId": f"id{n}", "body": body} for n, body in enumerate(bodies)]
    return json.dumps({"Records": records}).encode()


@pytest.fixture
async def invoker(activator: Stack) -> AsyncIterator[ActivatorInvoker]:
    client = ActivatorInvoker(InvokerSettings(activator.url, max_connections=4))
    yield client
    await client.aclose()


async def test_the_functions_answer_comes_back(
    activator: Stack, invoker: ActivatorInvoker, start_agent: StartAgent
) -> None:
    agent = start_agent({"app.py": HANDLER})
    key = activator.function("orders", pods={"127.0.0.1": agent.port})

    answer = await invoker.invoke(key, event("ok", "fail"), timeout=10)

    assert isinstance(answer, InvokeResult)
    assert (answer.status, answer.function_error) == (200, None)
    assert json.loads(answer.body) == {
        "batchItemFailures": [{"itemIdentifier": "id1"}],
        "seen": ["id0", "id1"],
    }
    assert answer.request_id


async def test_a_function_error_is_an_answer(
    activator: Stack, invoker: ActivatorInvoker, start_agent: StartAgent
) -> None:
    agent = start_agent({"app.py": HANDLER})
    key = activator.function("orders", pods={"127.0.0.1": agent.port})

    answer = await invoker.invoke(key, event("raise"), timeout=10)

    assert isinstance(answer, InvokeResult)
    assert (answer.status, answer.function_error) == (200, "Unhandled")
    assert json.loads(answer.body)["errorType"] == "ValueError"


async def test_keep_alive_connections_serve_many_invocations(
    activator: Stack, invoker: ActivatorInvoker, start_agent: StartAgent
) -> None:
    agent = start_agent({"app.py": HANDLER})
    key = activator.function("orders", pods={"127.0.0.1": agent.port})

    answers = [await invoker.invoke(key, event("ok"), timeout=10) for _ in range(50)]

    assert all(isinstance(a, InvokeResult) and a.status == 200 for a in answers)


@pytest.mark.parametrize(
    ("config", "pods", "kind", "status"),
    [
        ({"reserved": 0}, {"127.0.0.1": 1}, FailureKind.THROTTLED, 429),  # reserved concurrency
        ({}, {}, FailureKind.THROTTLED, 504),  # no pod before the activator's hold deadline
    ],
)
async def test_throttles(
    activator: Stack,
    invoker: ActivatorInvoker,
    config: dict[str, Any],
    pods: dict[str, int],
    kind: FailureKind,
    status: int,
) -> None:
    key = activator.function("orders", pods=pods, **config)

    answer = await invoker.invoke(key, event("ok"), timeout=10)

    assert isinstance(answer, InvokeFailed)
    assert (answer.kind, answer.status) == (kind, status)


async def test_an_unknown_function_is_rejected(activator: Stack, invoker: ActivatorInvoker) -> None:
    answer = await invoker.invoke(("team", "missing"), event("ok"), timeout=10)

    assert isinstance(answer, InvokeFailed)
    assert (answer.kind, answer.status) == (FailureKind.REJECTED, 404)
    assert answer.message == (
        'ResourceNotFoundException: {"Type": "User", "message": "Function not found: team:missing"}'
    )


async def test_no_answer_in_time_is_unreachable(
    activator: Stack, invoker: ActivatorInvoker, start_agent: StartAgent
) -> None:
    agent = start_agent({"app.py": HANDLER})
    key = activator.function("orders", pods={"127.0.0.1": agent.port}, timeout_seconds=10.0)

    answer = await invoker.invoke(key, event("sleep:3"), timeout=0.5)

    assert isinstance(answer, InvokeFailed)
    assert answer.kind == FailureKind.UNREACHABLE
    assert answer.message.startswith("no answer within 0.5 s")


async def test_an_activator_that_is_not_there_is_unreachable() -> None:
    from tests.kit.ports import free_port

    client = ActivatorInvoker(InvokerSettings(f"http://127.0.0.1:{free_port()}"))
    try:
        answer = await client.invoke(("team", "orders"), event("ok"), timeout=2)
    finally:
        await client.aclose()

    assert isinstance(answer, InvokeFailed)
    assert answer.kind == FailureKind.UNREACHABLE


@pytest.mark.parametrize(
    ("status", "function_error", "error_type", "expected"),
    [
        (200, None, None, "result"),
        (200, "Unhandled", None, "result"),  # the handler failed: the Function's answer
        (502, "Unhandled", None, "result"),  # the runtime could not initialise: likewise
        (413, None, None, "result"),  # the pod refused the payload
        (429, None, "TooManyRequestsException", FailureKind.THROTTLED),
        (429, None, None, FailureKind.THROTTLED),  # the pod's own 429 after the hold deadline
        (503, None, "ServiceUnavailable", FailureKind.THROTTLED),
        (504, None, "ServiceException", FailureKind.THROTTLED),
        (502, None, "ServiceException", FailureKind.UNREACHABLE),  # the pod's connection broke
        (404, None, "ResourceNotFoundException", FailureKind.REJECTED),
        (401, None, "AccessDeniedException", FailureKind.REJECTED),
        (413, None, "RequestEntityTooLargeException", FailureKind.REJECTED),
    ],
)
def test_classify(
    status: int, function_error: str | None, error_type: str | None, expected: object
) -> None:
    answer = classify(
        status, b"{}", request_id="r", function_error=function_error, error_type=error_type
    )

    if expected == "result":
        assert answer == InvokeResult(status, b"{}", "r", function_error)
    else:
        assert isinstance(answer, InvokeFailed)
        assert (answer.kind, answer.status) == (expected, status)


async def test_every_invocation_is_counted_by_its_outcome(
    activator: Stack, invoker: ActivatorInvoker, start_agent: StartAgent
) -> None:
    agent = start_agent({"app.py": HANDLER}, env={"LAMBDALET_TIMEOUT_SECONDS": "1"})
    key = activator.function("orders", pods={"127.0.0.1": agent.port}, timeout_seconds=1.0)
    throttled = activator.function("capped", pods={"127.0.0.1": agent.port}, reserved=0)

    for body in ("ok", "ok", "raise", "sleep:3"):
        await invoker.invoke(key, event(body), timeout=10)
    await invoker.invoke(throttled, event("ok"), timeout=10)
    await invoker.invoke(("team", "missing"), event("ok"), timeout=10)

    assert invoker.outcomes == {
        (key, Outcome.SUCCESS): 2,
        (key, Outcome.ERROR): 1,
        (key, Outcome.TIMEOUT): 1,
        (throttled, Outcome.THROTTLED): 1,
        (("team", "missing"), Outcome.REJECTED): 1,
    }
    registry = CollectorRegistry()
    registry.register(DispatcherCollector(list, lambda: invoker.outcomes))
    labels = {"namespace": "team", "function": "orders"}
    for outcome, count in (("success", 2), ("error", 1), ("timeout", 1)):
        value = registry.get_sample_value(
            "lambdalet_dispatcher_invocation_outcomes_total", {**labels, "outcome": outcome}
        )
        assert value == count, outcome


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (InvokeResult(200, b"{}", "r"), Outcome.SUCCESS),
        (
            InvokeResult(200, b'{"errorType":"Sandbox.Timedout"}', "r", "Unhandled"),
            Outcome.TIMEOUT,
        ),
        (InvokeResult(502, b'{"errorType":"Runtime.ImportModuleError"}', "r", "Unhandled"),
         Outcome.INIT_ERROR),
        (InvokeFailed(FailureKind.THROTTLED, "reserved", 429), Outcome.THROTTLED),
        (InvokeFailed(FailureKind.THROTTLED, "no pod in time", 504), Outcome.UNAVAILABLE),
        (InvokeFailed(FailureKind.THROTTLED, "hold queue full", 503), Outcome.UNAVAILABLE),
        (InvokeFailed(FailureKind.UNREACHABLE, "connection refused"), Outcome.UNAVAILABLE),
        (InvokeFailed(FailureKind.REJECTED, "unauthorised", 401), Outcome.REJECTED),
    ],
)  # fmt: skip
def test_outcome_of(answer: InvokeResult | InvokeFailed, outcome: Outcome) -> None:
    assert outcome_of(answer) is outcome


def test_invoke_timeout_covers_the_hold_and_the_function() -> None:
    assert invoke_timeout(3.0) == 68.0
    assert invoke_timeout(900.0, hold=10.0) == 915.0


# -- the HTTP client itself, against a scripted server --------------------------------------------

Script = list[str]  # per request, in arrival order: "ok", "slow" (0.3 s), "hold" (until
# ``release`` is set), "close", "garbage"


class ScriptedActivator:
    """A bare HTTP/1.1 server answering each request as the script says; it counts connections
    and the requests in progress at once."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[bytes] = []
        self.connections = 0
        self.busy = 0
        self.most_busy = 0
        self.release = asyncio.Event()
        self.busier = asyncio.Condition()  # notified when a request starts

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                self.requests.append(head + await reader.readexactly(length))
                step = self.script[len(self.requests) - 1]
                if step == "close":
                    return
                if step == "garbage":
                    writer.write(b"NOT HTTP\r\n\r\n")
                    await writer.drain()
                    return
                async with self.busier:
                    self.busy += 1
                    self.most_busy = max(self.most_busy, self.busy)
                    self.busier.notify_all()
                if step == "slow":
                    await asyncio.sleep(0.3)
                if step == "hold":
                    await self.release.wait()
                self.busy -= 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\nx-amzn-RequestId: r%d\r\ncontent-length: 2\r\n\r\n{}"
                    % len(self.requests)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def scripted() -> AsyncIterator[tuple[ScriptedActivator, ActivatorInvoker]]:
    server_side = ScriptedActivator([])
    server = await asyncio.start_server(server_side.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = ActivatorInvoker(InvokerSettings(f"http://127.0.0.1:{port}/", max_connections=2))
    yield server_side, client
    await client.aclose()
    server.close()


async def test_the_request_is_the_invoke_api_call(
    scripted: tuple[ScriptedActivator, ActivatorInvoker],
) -> None:
    server, client = scripted
    server.script += ["ok"]

    answer = await client.invoke(("team", "orders"), b'{"a": 1}', timeout=5)

    assert answer == InvokeResult(200, b"{}", "r1", None)
    head, _, body = server.requests[0].partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /2015-03-31/functions/team:orders/invocations HTTP/1.1"
    assert set(lines[1:]) >= {
        "content-type: application/json",
        "x-amz-invocation-type: RequestResponse",
        "content-length: 8",
    }
    assert body == b'{"a": 1}'


async def test_a_kept_alive_connection_closed_before_answering_is_dialled_again(
    scripted: tuple[ScriptedActivator, ActivatorInvoker],
) -> None:
    server, client = scripted
    server.script += ["ok", "close", "ok"]  # the second request meets a connection going away

    first = await client.invoke(("team", "orders"), b"{}", timeout=5)
    second = await client.invoke(("team", "orders"), b"{}", timeout=5)

    assert isinstance(first, InvokeResult)
    assert isinstance(second, InvokeResult)
    assert second.request_id == "r3"
    assert server.connections == 2


async def test_a_new_connection_closed_before_answering_is_not_tried_again(
    scripted: tuple[ScriptedActivator, ActivatorInvoker],
) -> None:
    server, client = scripted
    server.script += ["close"]  # the Function may have run: no second try here

    answer = await client.invoke(("team", "orders"), b"{}", timeout=5)

    assert isinstance(answer, InvokeFailed)
    assert answer.kind == FailureKind.UNREACHABLE
    assert answer.message.startswith("connection closed by the activator")
    assert len(server.requests) == 1


async def test_a_malformed_answer_is_unreachable(
    scripted: tuple[ScriptedActivator, ActivatorInvoker],
) -> None:
    server, client = scripted
    server.script += ["garbage"]

    answer = await client.invoke(("team", "orders"), b"{}", timeout=5)

    assert isinstance(answer, InvokeFailed)
    assert answer.kind == FailureKind.UNREACHABLE
    assert answer.message.startswith("malformed answer from the activator")


async def test_at_most_max_connections_calls_are_in_flight(
    scripted: tuple[ScriptedActivator, ActivatorInvoker],
) -> None:
    server, client = scripted
    server.script += ["slow"] * 6

    answers = await asyncio.gather(
        *(client.invoke(("team", "orders"), b"{}", timeout=5) for _ in range(6))
    )

    assert all(isinstance(a, InvokeResult) for a in answers)
    assert server.most_busy == 2
    assert server.connections == 2  # kept alive and reused


async def test_waiting_for_a_connection_counts_against_the_timeout(
    scripted: tuple[ScriptedActivator, ActivatorInvoker],
) -> None:
    server, client = scripted
    server.script += ["hold", "hold"]
    # Both connections busy until released: none can come free while the third call waits.
    holding = [
        asyncio.create_task(client.invoke(("team", "orders"), b"{}", timeout=WAIT))
        for _ in range(2)
    ]
    async with asyncio.timeout(WAIT), server.busier:
        await server.busier.wait_for(lambda: server.busy == 2)

    async with asyncio.timeout(WAIT):  # not until a connection comes free: none will
        waited = await client.invoke(("team", "orders"), b"{}", timeout=0.2)

    assert isinstance(waited, InvokeFailed)
    assert waited.message == "no answer within 0.2 s: no free connection"
    server.release.set()
    assert all(isinstance(answer, InvokeResult) for answer in await asyncio.gather(*holding))
    assert server.connections == 2


async def test_a_function_that_asks_for_a_bearer_token_gets_it(start_agent: StartAgent) -> None:
    tokens = StaticTokens({("team", "orders-token", "token"): "first"})
    stack = await start_stack(tokens=tokens)
    agent = start_agent({"app.py": HANDLER})
    key = stack.function(
        "orders", pods={"127.0.0.1": agent.port}, auth_secret=("orders-token", "token")
    )
    current = {"token": "first"}

    async def authorization(function: tuple[str, str]) -> str | None:
        assert function == key
        return current["token"]

    anonymous = ActivatorInvoker(InvokerSettings(stack.url))
    authorised = ActivatorInvoker(InvokerSettings(stack.url), authorization=authorization)
    try:
        refused = await anonymous.invoke(key, event("ok"), timeout=10)
        assert isinstance(refused, InvokeFailed)
        assert (refused.kind, refused.status) == (FailureKind.REJECTED, 401)

        answer = await authorised.invoke(key, event("ok"), timeout=10)
        assert isinstance(answer, InvokeResult)
        assert answer.status == 200

        # A rotated token is sent from the next call on.
        tokens.tokens = {("team", "orders-token", "token"): "second"}
        current["token"] = "second"
        again = await authorised.invoke(key, event("ok"), timeout=10)
        assert isinstance(again, InvokeResult)
        assert again.status == 200
    finally:
        await anonymous.aclose()
        await authorised.aclose()
        await stack.close()
