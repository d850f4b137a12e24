"""Invocations through the agent and the Python runtime: payloads, errors, limits, warm reuse and
the START / END / REPORT log lines."""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

import pytest

from tests.runtime.fixtures import StartAgent

ECHO = """
def handler(event, context):
    return event
"""

ERRORS = """
import decimal

class OrderRejected(Exception):
    pass

def reject(reason):
    raise OrderRejected(reason)

def handler(event, context):
    kind = event["kind"]
    if kind == "raise":
        reject("out of stock: ünïcode")
    if kind == "set":
        return {1, 2}
    if kind == "decimal":
        return {"price": decimal.Decimal("9.50"), "count": decimal.Decimal("3")}
    if kind == "none":
        return None
    if kind == "big":
        return "x" * event["size"]
    return kind
"""

WARM = """
import logging
import os
import uuid

INSTANCE = uuid.uuid4().hex  # module-level code: runs once per init
calls = 0
logger = logging.getLogger()
logger.setLevel(logging.INFO)

def handler(event, context):
    global calls
    calls += 1
    print(f"handling {context.aws_request_id}")
    logger.info("logged %s", calls)
    return {"instance": INSTANCE, "calls": calls, "pid": os.getpid()}
"""

PAYLOADS = [
    pytest.param(
        {"greeting": "hallo wêreld", "emoji": "🦙🚀", "cjk": "関数", "rtl": "مرحبا"}, id="unicode"
    ),
    pytest.param({"blob": base64.b64encode(bytes(range(256)) * 8).decode()}, id="base64-binary"),
    pytest.param({"nested": [1, 2.5, None, True, {"deep": ["a", {"b": []}]}]}, id="nested"),
    pytest.param("just a string \u0000 with a NUL", id="string-with-nul"),
    pytest.param([], id="empty-list"),
    pytest.param(12345678901234567890, id="big-int"),
    pytest.param(None, id="null"),
    pytest.param({"escapes": 'quote " backslash \\ tab \t newline \n'}, id="escapes"),
]


@pytest.mark.parametrize("event", PAYLOADS)
def test_payload_round_trips(start_agent: StartAgent, event: Any) -> None:
    agent = start_agent({"app.py": ECHO})

    reply = agent.invoke(event)

    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == event


def test_empty_body_is_an_empty_event(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": ECHO})

    assert agent.invoke(body=b"").json() == {}


def test_response_headers(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": ECHO})

    given = agent.invoke({}, headers={"Lambdalet-Request-Id": "my-id"})
    made = agent.invoke({})

    assert given.headers["Lambdalet-Request-Id"] == "my-id"
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        made.headers["Lambdalet-Request-Id"],
    )
    assert given.headers["X-Amz-Executed-Version"] == "$LATEST"


def test_handler_exception(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": ERRORS})

    reply = agent.invoke({"kind": "raise"}, headers={"Lambdalet-Request-Id": "req-1"})

    assert reply.status_code == 200
    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    error = reply.json()
    assert error["errorType"] == "OrderRejected"
    assert error["errorMessage"] == "out of stock: ünïcode"
    assert error["requestId"] == "req-1"
    # The user's frames, innermost last, and none of the runtime's.
    trace = error["stackTrace"]
    assert re.findall(r", in (\w+)\n", "".join(trace)) == ["handler", "reject"]
    assert 'reject("out of stock: ünïcode")' in trace[0]
    assert all("lambdalet_runtime" not in frame for frame in trace)
    assert "[ERROR] OrderRejected: out of stock: ünïcode" in agent.log()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("none", None), ("decimal", {"price": 9.5, "count": 3}), ("text", "text")],
)
def test_results_are_json(start_agent: StartAgent, kind: str, expected: Any) -> None:
    agent = start_agent({"app.py": ERRORS})

    reply = agent.invoke({"kind": kind})

    assert reply.status_code == 200
    assert reply.json() == expected


def test_result_that_is_not_json(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": ERRORS})

    reply = agent.invoke({"kind": "set"})

    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    assert reply.json()["errorType"] == "Runtime.MarshalError"
    assert reply.json()["errorMessage"] == (
        "Unable to marshal response: Object of type set is not JSON serializable"
    )


def test_event_that_is_not_json(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": ECHO})

    reply = agent.invoke(body=b"{not json")

    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    assert reply.json()["errorType"] == "Runtime.UnmarshalError"


def test_request_size_limit(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": "def handler(event, context):\n    return len(event)\n"})
    limit = 6_291_456
    largest = json.dumps("x" * (limit - 2)).encode()  # a JSON string of exactly the limit

    assert agent.invoke(body=largest).json() == limit - 2
    too_large = agent.invoke(body=largest + b" ")

    assert too_large.status_code == 413
    assert too_large.json()["errorType"] == "RequestEntityTooLargeException"
    assert str(limit) in too_large.json()["errorMessage"]


def test_response_size_limit(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": ERRORS})
    limit = 6_291_556

    largest = agent.invoke({"kind": "big", "size": limit - 2})  # the JSON string has quotes
    too_large = agent.invoke({"kind": "big", "size": limit - 1})

    assert largest.status_code == 200
    assert len(largest.content) == limit
    assert too_large.headers["X-Amz-Function-Error"] == "Unhandled"
    assert too_large.json() == {
        "errorType": "Function.ResponseSizeTooLarge",
        "errorMessage": f"Response payload size ({limit + 1} bytes) exceeded maximum allowed "
        f"payload size ({limit} bytes).",
    }
    # The runtime carries on.
    assert agent.invoke({"kind": "text"}).json() == "text"


def test_warm_invocations_reuse_the_module(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": WARM})

    replies = [agent.invoke({}).json() for _ in range(3)]

    assert [r["calls"] for r in replies] == [1, 2, 3]
    assert len({r["instance"] for r in replies}) == 1
    assert len({r["pid"] for r in replies}) == 1


def test_log_lines(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": WARM}, env={"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512"})
    ids = ["first-request", "second-request"]

    for request_id in ids:
        agent.invoke({}, headers={"Lambdalet-Request-Id": request_id})
    agent.wait_log(rf"^REPORT RequestId: {ids[1]}\t")

    lines = agent.log().splitlines()
    for n, request_id in enumerate(ids):
        start = lines.index(f"START RequestId: {request_id} Version: $LATEST")
        assert lines[start + 1] == f"handling {request_id}"
        assert re.fullmatch(
            rf"\[INFO\]\t\d{{4}}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{{3}}Z\t{request_id}\tlogged {n + 1}",
            lines[start + 2],
        )
        assert lines[start + 3] == f"END RequestId: {request_id}"
        report = lines[start + 4]
        fields = re.fullmatch(
            rf"REPORT RequestId: {request_id}\tDuration: (\d+\.\d\d) ms\tBilled Duration: (\d+) ms"
            r"\tMemory Size: 512 MB\tMax Memory Used: (\d+) MB(\tInit Duration: \d+\.\d\d ms)?",
            report,
        )
        assert fields, report
        duration, billed, memory, init = fields.groups()
        assert int(billed) == max(1, math.ceil(float(duration)))
        assert int(memory) > 5  # a Python interpreter's resident memory
        # Init Duration only on the first invocation after an init.
        assert (init is not None) == (n == 0)


def test_runtime_output_keeps_whole_lines(start_agent: StartAgent) -> None:
    chatty = "def handler(event, context):\n    for i in range(200):\n        print('x' * 300, i)\n"
    agent = start_agent({"app.py": chatty})

    agent.invoke({}, headers={"Lambdalet-Request-Id": "chatty"})
    agent.wait_log(r"^REPORT RequestId: chatty\t")

    printed = [line for line in agent.log().splitlines() if line.startswith("x")]
    assert printed == [f"{'x' * 300} {i}" for i in range(200)]


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Amz-Client-Context", "not base64!"),
        ("X-Amz-Client-Context", base64.b64encode(b"[1, 2]").decode()),
        ("Lambdalet-Cognito-Identity", "not json"),
        ("Lambdalet-Request-Id", "../../init/error"),
    ],
)
def test_malformed_optional_headers(start_agent: StartAgent, header: str, value: str) -> None:
    agent = start_agent({"app.py": ECHO})

    reply = agent.invoke({}, headers={header: value})

    assert reply.status_code == 400
    assert reply.json()["errorType"] == "InvalidRequestContentException"


def test_any_function_name_in_the_path(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": ECHO})

    reply = agent.client.post("/2015-03-31/functions/hello/invocations", content=b'{"a": 1}')

    assert reply.json() == {"a": 1}


@pytest.mark.parametrize("handler", ["orders/api/app.handler", "orders.api.app.handler"])
def test_handler_in_a_package(start_agent: StartAgent, handler: str) -> None:
    files = {
        "orders/__init__.py": "",
        "orders/api/__init__.py": "",
        "orders/api/app.py": "from orders import api\n\ndef handler(event, context):\n"
        "    return api.__name__\n",
    }
    agent = start_agent(files, handler)

    assert agent.invoke({}).json() == "orders.api"
