"""What only the Python runtime does: how it turns results into JSON, its error documents'
request id and stack trace, and handlers in packages."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.kit.servers.agent import StartAgent
from tests.runtime.runtimes import PYTHON

RESULTS = """
import decimal

def handler(event, context):
    kind = event["kind"]
    if kind == "set":
        return {1, 2}
    if kind == "decimal":
        return {"price": decimal.Decimal("9.50"), "count": decimal.Decimal("3")}
    if kind == "none":
        return None
    return kind
"""


def test_error_document_names_the_request_and_the_users_frames(start_agent: StartAgent) -> None:
    agent = start_agent(PYTHON.files("reject"))

    error = agent.invoke({}, headers={"Lambdalet-Request-Id": "req-1"}).json()

    assert error["requestId"] == "req-1"
    # The user's frames, innermost last, and none of the runtime's.
    trace = error["stackTrace"]
    assert re.findall(r", in (\w+)\n", "".join(trace)) == ["handler", "reject"]
    assert 'reject("out of stock: ünïcode")' in trace[0]
    assert all("lambdalet_runtime" not in frame for frame in trace)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("none", None), ("decimal", {"price": 9.5, "count": 3}), ("text", "text")],
)
def test_results_are_json(start_agent: StartAgent, kind: str, expected: Any) -> None:
    agent = start_agent({"app.py": RESULTS})

    reply = agent.invoke({"kind": kind})

    assert reply.status_code == 200
    assert reply.json() == expected


def test_result_that_is_not_json(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": RESULTS})

    reply = agent.invoke({"kind": "set"})

    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    assert reply.json()["errorType"] == "Runtime.MarshalError"
    assert reply.json()["errorMessage"] == (
        "Unable to marshal response: Object of type set is not JSON serializable"
    )


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
