"""The activator against real function processes: events, holding, limits, pods, Invoke API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from lambdalet.activator.http1 import ServerLimits
from lambdalet.activator.proxy import ProxyLimits
from tests.activator.stack import HANDLER, Stack, StaticTokens, start_stack
from tests.kit.servers.agent import StartAgent
from tests.kit.wait import wait_for_async

FILES = {"app.py": HANDLER}


pytestmark = pytest.mark.both_loops


@pytest.fixture
async def stack() -> AsyncIterator[Stack]:
    built = await start_stack(proxy_limits=ProxyLimits(hold_limit=50, hold_timeout=5.0))
    yield built
    await built.close()


async def test_http_request_becomes_a_v2_event_and_the_result_a_response(
    stack: Stack, start_agent: StartAgent
) -> None:
    agent = start_agent(FILES)
    key = stack.function()
    stack.proxy.set_ready(key, {"127.0.0.1": agent.port})

    response = await stack.client.post(
        "/fn/team/hello/items/7?colour=red&colour=blue",
        content=b'{"n": 1}',
        headers={"content-type": "application/json", "cookie": "session=abc"},
    )

    assert response.status_code == 201
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2; Path=/"]
    event = response.json()
    assert event["version"] == "2.0"
    assert event["rawPath"] == "/items/7"
    assert event["rawQueryString"] == "colour=red&colour=blue"
    assert event["queryStringParameters"] == {"colour": "red,blue"}
    assert event["cookies"] == ["session=abc"]
    assert event["body"] == '{"n": 1}'
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
    assert stack.pokes == []
    exposition = stack.metrics.exposition().decode()
    labels = 'function="hello",namespace="team"'
    assert f'lambdalet_activator_invocations_total{{code="201",{labels}}} 1.0' in exposition
    assert f"lambdalet_activator_invocation_duration_seconds_count{{{labels}}} 1.0" in exposition
    assert f"lambdalet_activator_in_flight{{{labels}}} 0.0" in exposition


async def test_v1_format_and_bare_results(stack: Stack, start_agent: StartAgent) -> None:
    from lambdalet.api.function import EventFormat

    agent = start_agent(FILES)
    key = stack.function(event_format=EventFormat.V1)
    stack.proxy.set_ready(key, {"127.0.0.1": agent.port})

    event = (await stack.client.get("/fn/team/hello/x")).json()
    bare = await stack.client.get("/fn/team/hello/bare")

    assert event["httpMethod"] == "GET"
    assert event["path"] == "/x"
    assert event["pathParameters"] == {"proxy": "x"}
    # v1 needs statusCode: a bare value is a malformed proxy response.
    assert bare.status_code == 502


async def test_trace_context_reaches_the_function(stack: Stack, start_agent: StartAgent) -> None:
    agent = start_agent(FILES)
    key = stack.function()
    stack.proxy.set_ready(key, {"127.0.0.1": agent.port})
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    from_w3c = await stack.client.get("/fn/team/hello/trace", headers={"traceparent": parent})
    from_xray = await stack.client.get(
        "/fn/team/hello/trace", headers={"x-amzn-trace-id": "Root=1-5759e988-bd862e3fe1be46a9"}
    )
    fresh = await stack.client.get("/fn/team/hello/trace")

    assert from_w3c.text == (
        "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1"
    )
    assert from_xray.text == "Root=1-5759e988-bd862e3fe1be46a9"
    assert fresh.text.startswith("Root=1-")
    assert fresh.text != from_w3c.text


async def test_function_error_is_internal_server_error(
    stack: Stack, start_agent: StartAgent
) -> None:
    agent = start_agent(FILES)
    key = stack.function()
    stack.proxy.set_ready(key, {"127.0.0.1": agent.port})

    response = await stack.client.get("/fn/team/hello/fail")

    assert response.status_code == 500
    assert response.json() == {"message": "Internal Server Error"}


async def test_cold_start_is_held_poked_and_released_when_a_pod_appears(
    stack: Stack, start_agent: StartAgent
) -> None:
    key = stack.function()
    requests = [asyncio.create_task(stack.client.get(f"/fn/team/hello/r{i}")) for i in range(5)]
    await wait_for_async(lambda: _held(stack) == 5, 5.0, interval=0.01)
    assert stack.pokes == [key]  # one poke for the whole cold start

    agent = start_agent(FILES)
    assert stack.proxy.announce(key, "127.0.0.1", agent.port)
    responses = await asyncio.gather(*requests)

    assert [r.status_code for r in responses] == [201] * 5
    assert sorted(r.json()["rawPath"] for r in responses) == [f"/r{i}" for i in range(5)]
    exposition = stack.metrics.exposition().decode()
    assert 'lambdalet_activator_cold_starts_total{function="hello",namespace="team"} 1.0' in (
        exposition
    )
    assert "lambdalet_activator_cold_start_duration_seconds_count" in exposition
    # The autoscaler hears of the cold start once (and writes it to the Function's status).
    cold_starts = stack.proxy.cold_starts()
    assert list(cold_starts) == [key]
    assert 0 < cold_starts[key] < 60
    assert stack.proxy.cold_starts() == {}


async def test_held_request_times_out_with_504_and_a_reason() -> None:
    stack = await start_stack(proxy_limits=ProxyLimits(hold_timeout=0.3))
    try:
        stack.function()
        started = time.monotonic()
        response = await stack.client.get("/fn/team/hello/")
        waited = time.monotonic() - started
    finally:
        await stack.close()

    assert response.status_code == 504
    assert "no instance became ready" in response.json()["message"]
    # Its own 0.3 s hold, far short of the default 60 s, however busy the machine is.
    assert 0.25 < waited < 20
    assert _held(stack) == 0


async def test_hold_queue_overflow_is_503_with_a_reason() -> None:
    stack = await start_stack(proxy_limits=ProxyLimits(hold_limit=2, hold_timeout=2.0))
    try:
        stack.function()
        held = [asyncio.create_task(stack.client.get("/fn/team/hello/")) for _ in range(2)]
        await wait_for_async(lambda: _held(stack) == 2, 5.0, interval=0.01)
        overflow = await stack.client.get("/fn/team/hello/")
        await asyncio.gather(*held)
    finally:
        await stack.close()

    assert overflow.status_code == 503
    assert "already waiting" in overflow.json()["message"]


async def test_reserved_concurrency_throttles_with_429(
    stack: Stack, start_agent: StartAgent, tmp_path: Path
) -> None:
    agent = start_agent(
        FILES, env={"LAMBDALET_CONCURRENCY": "2", "LAMBDALET_TIMEOUT_SECONDS": "30"}
    )
    key = stack.function(reserved=1, per_instance=2, timeout_seconds=30.0)
    stack.proxy.set_ready(key, {"127.0.0.1": agent.port})
    gate = tmp_path / "gate"

    # In flight until the test opens the gate, however busy the machine is.
    slow = asyncio.create_task(stack.client.get("/fn/team/hello/hold", params={"gate": str(gate)}))
    await wait_for_async(lambda: _in_flight(stack) == 1, 5.0, interval=0.01)
    throttled = await stack.client.get("/fn/team/hello/")
    invoke_throttled = await stack.client.post(
        "/2015-03-31/functions/team:hello/invocations", content=b"{}"
    )
    gate.touch()

    assert (await slow).status_code == 201
    assert throttled.status_code == 429
    assert invoke_throttled.status_code == 429
    assert invoke_throttled.headers["x-amzn-errortype"] == "TooManyRequestsException"
    assert "reserved concurrency of 1" in invoke_throttled.json()["message"]


async def test_reserved_zero_disables_the_function(stack: Stack, start_agent: StartAgent) -> None:
    agent = start_agent(FILES)
    key = stack.function(reserved=0)
    stack.proxy.set_ready(key, {"127.0.0.1": agent.port})

    assert (await stack.client.get("/fn/team/hello/")).status_code == 429


async def test_per_pod_concurrency_spreads_and_holds_without_agent_429s(
    stack: Stack, start_agent: StartAgent
) -> None:
    first, second = start_agent(FILES), start_agent(FILES)
    key = stack.function(per_instance=1)
    stack.proxy.set_ready(key, {"127.0.0.2": first.port, "127.0.0.3": second.port})

    started = time.monotonic()
    responses = await asyncio.gather(
        *(stack.client.get("/fn/team/hello/sleep/0.4") for _ in range(4))
    )
    elapsed = time.monotonic() - started

    assert [r.status_code for r in responses] == [201] * 4
    assert len({r.headers["x-pid"] for r in responses}) == 2  # both pods served
    # Two at a time, one per pod: at least 0.8 s (0.4 would mean a pod took two at once).
    assert elapsed > 0.75
    assert [log.count("START RequestId") for log in (first.log(), second.log())] == [2, 2]


async def test_unreachable_pod_is_skipped_and_the_request_served_elsewhere(
    stack: Stack, start_agent: StartAgent
) -> None:
    agent = start_agent(FILES)
    key = stack.function()
    closed_port = agent.port + 1 if agent.port < 65535 else agent.port - 1
    stack.proxy.set_ready(key, {"127.0.0.2": closed_port, "127.0.0.3": agent.port})

    responses = [await stack.client.get("/fn/team/hello/") for _ in range(3)]

    assert [r.status_code for r in responses] == [201] * 3
    pods = stack.proxy._targets[key].pods
    assert pods["127.0.0.2"].failures == 1  # tried once, then skipped for a while
    assert pods["127.0.0.3"].failures == 0


async def test_a_held_request_goes_to_a_pod_once_it_answers_again(
    stack: Stack, start_agent: StartAgent
) -> None:
    # The only pod refuses connections at first (nothing listens yet): the request waits and
    # is placed on it when its skip time is over and it answers.
    key = stack.function()
    agent = start_agent(FILES)
    agent.stop()
    stack.proxy.set_ready(key, {"127.0.0.2": agent.port})
    request = asyncio.create_task(stack.client.get("/fn/team/hello/again"))
    await wait_for_async(
        lambda: stack.proxy._targets[key].pods["127.0.0.2"].failures >= 1, 5.0, interval=0.01
    )
    revived = start_agent(FILES, env={"LAMBDALET_PORT_NUMBER": str(agent.port)})

    response = await request

    assert response.status_code == 201
    assert revived.port == agent.port


async def test_invoke_api_request_response_dry_run_and_errors(
    stack: Stack, start_agent: StartAgent
) -> None:
    agent = start_agent(FILES)
    key = stack.function()
    stack.proxy.set_ready(key, {"127.0.0.1": agent.port})
    path = "/2015-03-31/functions/team:hello/invocations"

    ok = await stack.client.post(path, content=b'{"a": 1}')
    failed = await stack.client.post(path, content=b'{"fail": true}')
    dry = await stack.client.post(path, headers={"x-amz-invocation-type": "DryRun"})
    event = await stack.client.post(path, headers={"x-amz-invocation-type": "Event"})
    bad_type = await stack.client.post(path, headers={"x-amz-invocation-type": "Later"})
    missing = await stack.client.post("/2015-03-31/functions/team:nope/invocations")

    assert ok.status_code == 200
    assert ok.json()["echo"] == {"a": 1}
    assert ok.json()["request_id"] == ok.headers["x-amzn-requestid"]
    assert ok.headers["x-amz-executed-version"] == "$LATEST"
    assert failed.status_code == 200
    assert failed.headers["x-amz-function-error"] == "Unhandled"
    assert failed.json()["errorType"] == "ValueError"
    assert dry.status_code == 204
    assert event.status_code == 400  # no Redis configured for this activator
    assert "LAMBDALET_REDIS_URL" in event.json()["message"]
    assert bad_type.status_code == 400
    assert missing.status_code == 404
    assert missing.headers["x-amzn-errortype"] == "ResourceNotFoundException"


async def test_bearer_auth() -> None:
    stack = await start_stack(
        tokens=StaticTokens({("team", "hello-auth", "token"): "s3cret"}),
        proxy_limits=ProxyLimits(hold_timeout=0.2),
    )
    try:
        stack.function(auth_secret=("hello-auth", "token"))
        none = await stack.client.get("/fn/team/hello/")
        wrong = await stack.client.get("/fn/team/hello/", headers={"authorization": "Bearer x"})
        right = await stack.client.get(
            "/fn/team/hello/", headers={"authorization": "Bearer s3cret"}
        )
    finally:
        await stack.close()

    assert none.status_code == 401
    assert wrong.status_code == 401
    # Past auth: no pod, so the request is held until its deadline.
    assert right.status_code == 504


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/fn/team/unknown/", 404),
        ("/fn/Team/hello/", 404),
        ("/elsewhere", 404),
        ("/2015-03-31/functions/a:b:c/invocations", 404),
    ],
)
async def test_unknown_routes(stack: Stack, path: str, status: int) -> None:
    stack.function()
    assert (await stack.client.get(path)).status_code == status


async def test_body_over_the_limit_is_413_before_reading_it() -> None:
    stack = await start_stack(server_limits=ServerLimits(max_body_bytes=1024))
    try:
        stack.function()
        declared = await stack.client.post("/fn/team/hello/", content=b"x" * 2048)
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
        # Chunked: no length up front, so the limit trips while reading.
        writer.write(
            b"POST /fn/team/hello/ HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
            + b"800\r\n"
            + b"y" * 2048
            + b"\r\n0\r\n\r\n"
        )
        chunked = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    finally:
        await stack.close()

    assert declared.status_code == 413
    assert chunked.startswith(b"HTTP/1.1 413 ")


async def test_slow_client_headers_and_body_time_out_with_408() -> None:
    limits = ServerLimits(header_timeout=0.3, body_timeout=0.3)
    stack = await start_stack(server_limits=limits)
    try:
        answers = []
        for partial in (
            b"GET /fn/team/hello/ HTTP/1.1\r\nhost: x\r\n",
            b"POST /fn/team/hello/ HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc",
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
            writer.write(partial)
            answers.append(await asyncio.wait_for(reader.read(), 5))  # read() ends at close
            writer.close()
    finally:
        await stack.close()

    assert all(answer.startswith(b"HTTP/1.1 408 ") for answer in answers)


async def test_malformed_request_is_400_and_pipelined_requests_are_answered_in_order(
    stack: Stack, start_agent: StartAgent
) -> None:
    agent = start_agent(FILES)
    key = stack.function()
    stack.proxy.set_ready(key, {"127.0.0.1": agent.port})

    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    writer.write(
        b"GET /fn/team/hello/one HTTP/1.1\r\nhost: x\r\n\r\n"
        b"GET /fn/team/hello/two HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    )
    pipelined = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.port)
    writer.write(b"NOT HTTP AT ALL\r\n\r\n")
    malformed = await asyncio.wait_for(reader.read(), 5)
    writer.close()

    assert pipelined.count(b"HTTP/1.1 201 ") == 2
    assert pipelined.index(b'"rawPath": "/one"') < pipelined.index(b'"rawPath": "/two"')
    assert malformed.startswith(b"HTTP/1.1 400 ")


async def test_snapshot_reports_time_weighted_load(stack: Stack, start_agent: StartAgent) -> None:
    agent = start_agent(FILES)
    key = stack.function()
    stack.proxy.set_ready(key, {"127.0.0.1": agent.port})
    stack.proxy.snapshot(1.0)  # start a fresh period

    # A 1 s invocation: the client's and the server's own work around it (not in flight) would
    # have to take 0.67 s to bring the average under 0.6, however busy the machine is.
    started = time.monotonic()
    await stack.client.get("/fn/team/hello/sleep/1.0")
    period = time.monotonic() - started
    (reported,) = stack.proxy.snapshot(period)
    idle = stack.proxy.snapshot(1.0)

    assert reported[0] == key
    assert 0.6 < reported[1] <= 1.0  # one in flight for most of the period
    assert idle == []


def _held(stack: Stack) -> int:
    return sum(held for _, _, held in stack.proxy.loads())


def _in_flight(stack: Stack) -> int:
    return sum(flying for _, flying, _ in stack.proxy.loads())


async def test_the_public_port_serves_only_public_functions(start_agent: StartAgent) -> None:
    """The entry point behind an Ingress: a cluster-local Function does not exist there."""
    agent = start_agent({"app.py": HANDLER})
    stack = await start_stack(public_only=True)
    try:
        stack.function("open", public=True, pods={"127.0.0.1": agent.port})
        stack.function("local", pods={"127.0.0.1": agent.port})
        answers = {
            name: (
                (await stack.client.get(f"/fn/team/{name}/")).status_code,
                (
                    await stack.client.post(
                        f"/2015-03-31/functions/team:{name}/invocations", content=b"{}"
                    )
                ).status_code,
            )
            for name in ("open", "local")
        }
    finally:
        await stack.close()

    assert answers == {"open": (201, 200), "local": (404, 404)}
