"""Invocations in every runtime: payloads, events that are not JSON, a response over the size
limit, a handler's exception, warm reuse and the function's log."""

from __future__ import annotations

import base64
import math
import re
from typing import Any

import pytest

from tests.kit.servers.agent import StartAgent
from tests.runtime.runtimes import RUNTIMES, ByLanguage, Runtime, per_runtime

each_runtime = pytest.mark.parametrize("runtime", RUNTIMES, ids=str)

PAYLOADS = [
    pytest.param(
        {"greeting": "hallo wêreld", "emoji": "🦙🚀", "cjk": "関数", "rtl": "مرحبا"}, id="unicode"
    ),
    pytest.param({"blob": base64.b64encode(bytes(range(256)) * 8).decode()}, id="base64-binary"),
    pytest.param({"nested": [1, 2.5, None, True, {"deep": ["a", {"b": []}]}]}, id="nested"),
    pytest.param("just a string \u0000 with a NUL", id="string-with-nul"),
    pytest.param([], id="empty-list"),
    # A JavaScript number is a double: an integer past 2**53 does not come back exact.
    pytest.param(ByLanguage(python=12345678901234567890), id="big-int"),
    pytest.param(None, id="null"),
    pytest.param({"escapes": 'quote " backslash \\ tab \t newline \n'}, id="escapes"),
]


@pytest.mark.parametrize(("runtime", "event"), per_runtime(PAYLOADS))
def test_payload_round_trips(start_agent: StartAgent, runtime: Runtime, event: Any) -> None:
    agent = start_agent(runtime.files("echo"), env=runtime.env())

    reply = agent.invoke(event)

    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == event


@pytest.mark.parametrize(
    ("runtime", "body", "expected"),
    per_runtime(
        [
            pytest.param(b"", {}, id="empty-is-an-empty-event"),
            pytest.param(b'{"a": [1, 2]}', {"a": [1, 2]}, id="json"),
        ]
    ),
)
def test_event_decoding(
    start_agent: StartAgent, runtime: Runtime, body: bytes, expected: Any
) -> None:
    agent = start_agent(runtime.files("echo"), env=runtime.env())

    assert agent.invoke(body=body).json() == expected


@each_runtime
def test_event_that_is_not_json(start_agent: StartAgent, runtime: Runtime) -> None:
    agent = start_agent(runtime.files("echo"), env=runtime.env())

    reply = agent.invoke(body=b"{not json")

    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    assert reply.json()["errorType"] == "Runtime.UnmarshalError"


@each_runtime
def test_response_size_limit(start_agent: StartAgent, runtime: Runtime) -> None:
    agent = start_agent(runtime.files("big"), env=runtime.env())
    limit = 6_291_556

    largest = agent.invoke({"size": limit - 2})  # the JSON string has quotes
    too_large = agent.invoke({"size": limit - 1})

    assert largest.status_code == 200
    assert len(largest.content) == limit
    assert too_large.headers["X-Amz-Function-Error"] == "Unhandled"
    assert too_large.json() == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": f"Response payload size ({limit + 1} bytes) exceeded maximum allowed "
        f"payload size ({limit} bytes).",
    }
    assert agent.invoke({"size": 2}).json() == "xx"  # the runtime carries on


@each_runtime
def test_handler_exception(start_agent: StartAgent, runtime: Runtime) -> None:
    agent = start_agent(runtime.files("reject"), env=runtime.env())

    reply = agent.invoke({}, headers={"Lambdalet-Request-Id": "req-1"})

    assert reply.status_code == 200
    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    error = reply.json()
    assert set(error) == runtime.error_keys
    assert error["errorType"] == "OrderRejected"
    assert error["errorMessage"] == "out of stock: ünïcode"
    assert isinstance(error[runtime.trace_key], list)
    agent.wait_log(runtime.error_logged("req-1", "OrderRejected", "out of stock: ünïcode"))
    assert agent.invoke({}).status_code == 200  # the runtime carries on


@each_runtime
def test_warm_invocations_reuse_the_module(start_agent: StartAgent, runtime: Runtime) -> None:
    agent = start_agent(runtime.files("warm"), env=runtime.env())

    replies = [agent.invoke({}).json() for _ in range(3)]

    assert [r["calls"] for r in replies] == [1, 2, 3]
    assert len({r["instance"] for r in replies}) == 1
    assert len({r["pid"] for r in replies}) == 1


@each_runtime
def test_log_lines(start_agent: StartAgent, runtime: Runtime) -> None:
    agent = start_agent(
        runtime.files("warm"), env=runtime.env({"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"})
    )
    ids = ["first-request", "second-request"]

    for request_id in ids:
        agent.invoke({}, headers={"Lambdalet-Request-Id": request_id})
    agent.wait_log(rf"^REPORT RequestId: {ids[1]}\t")

    lines = agent.log().splitlines()
    assert re.fullmatch(runtime.init_log_line, lines[0])  # during init
    for n, request_id in enumerate(ids):
        start = lines.index(f"START RequestId: {request_id} Version: $LATEST")
        expected = runtime.warm_log_lines(request_id, n + 1)
        logged = lines[start + 1 : start + 1 + len(expected)]
        for line, pattern in zip(logged, expected, strict=True):
            assert re.fullmatch(pattern, line), line
        assert lines[start + 1 + len(expected)] == f"END RequestId: {request_id}"
        report = lines[start + 2 + len(expected)]
        fields = re.fullmatch(
            rf"REPORT RequestId: {request_id}\tDuration: (\d+\.\d\d) ms\tBilled Duration: (\d+) ms"
            r"\tMemory Size: 512 MB\tMax Memory Used: (\d+) MB(\tInit Duration: \d+\.\d\d ms)?",
            report,
        )
        assert fields, report
        duration, billed, memory, init = fields.groups()
        assert int(billed) == max(1, math.ceil(float(duration)))
        assert int(memory) > 5  # an interpreter's resident memory
        # Init Duration only on the first invocation after an init.
        assert (init is not None) == (n == 0)
