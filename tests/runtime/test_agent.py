"""What the agent does whatever the runtime, shown with the Python runtime (the harness's
default): its response headers and size limits, malformed headers, the runtime's output in whole
lines, waiting for and retrying an init, refusing an invocation beyond its concurrency, and
letting the invocation in flight finish on SIGTERM."""

from __future__ import annotations

import base64
import json
import re
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.kit.servers.agent import INVOKE_PATH, StartAgent
from tests.kit.wait import wait_for
from tests.runtime.runtimes import PYTHON

ECHO = PYTHON.files("echo")
LIFECYCLE = PYTHON.files("lifecycle")


def test_response_headers(start_agent: StartAgent) -> None:
    agent = start_agent(ECHO)

    given = agent.invoke({}, headers={"Lambdalet-Request-Id": "my-id"})
    made = agent.invoke({})

    assert given.headers["Lambdalet-Request-Id"] == "my-id"
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
        made.headers["Lambdalet-Request-Id"],
    )
    assert given.headers["X-Amz-Executed-Version"] == "$LATEST"


def test_request_size_limit(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": "def handler(event, context):\n    return len(event)\n"})
    limit = 6_291_456
    largest = json.dumps("x" * (limit - 2)).encode()  # a JSON string of exactly the limit

    assert agent.invoke(body=largest).json() == limit - 2
    too_large = agent.invoke(body=largest + b" ")

    assert too_large.status_code == 413
    assert too_large.json()["errorType"] == "RequestEntityTooLargeException"
    assert str(limit) in too_large.json()["errorMessage"]


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
    agent = start_agent(ECHO)

    reply = agent.invoke({}, headers={header: value})

    assert reply.status_code == 400
    assert reply.json()["errorType"] == "InvalidRequestContentException"


def test_any_function_name_in_the_path(start_agent: StartAgent) -> None:
    agent = start_agent(ECHO)

    reply = agent.client.post("/2015-03-31/functions/hello/invocations", content=b'{"a": 1}')

    assert reply.json() == {"a": 1}


def test_init_is_retried_after_a_failure(start_agent: StartAgent, tmp_path: Path) -> None:
    # Fails the first import only (a marker file remembers it), as a flaky dependency might.
    marker = tmp_path / "failed-once"
    flaky = f"""
import pathlib
marker = pathlib.Path({str(marker)!r})
if not marker.exists():
    marker.touch()
    raise ConnectionError("database not up yet")

def handler(event, context):
    return "recovered"
"""
    agent = start_agent({"app.py": flaky}, wait_ready=False)

    agent.wait_health("ready")

    assert marker.exists()
    assert agent.invoke({}).json() == "recovered"
    assert "Error Type: ConnectionError" in agent.log()


def test_invocation_waits_for_init(start_agent: StartAgent) -> None:
    slow = "import time\ntime.sleep(0.5)\n\ndef handler(event, context):\n    return 'late'\n"
    agent = start_agent({"app.py": slow}, wait_ready=False)

    assert agent.health().json() == {"status": "starting"}
    reply = agent.invoke({})

    assert reply.json() == "late"
    assert agent.health().json() == {"status": "ready"}


def test_invocation_waiting_for_an_init_that_fails(start_agent: StartAgent) -> None:
    failing = "import time\ntime.sleep(0.3)\nraise ImportError('libfoo.so: cannot open')\n"
    agent = start_agent({"app.py": failing}, wait_ready=False)

    assert agent.health().json() == {"status": "starting"}
    reply = agent.invoke({})

    assert reply.status_code == 502
    assert reply.json()["errorType"] == "Runtime.ImportModuleError"
    assert "libfoo.so: cannot open" in reply.json()["errorMessage"]


def test_invocation_beyond_concurrency_is_refused(start_agent: StartAgent, tmp_path: Path) -> None:
    agent = start_agent(LIFECYCLE, env={"LAMBDALET_CONCURRENCY": "2"})
    url = f"http://127.0.0.1:{agent.port}{INVOKE_PATH}"
    gate = tmp_path / "gate"
    # Both slots stay busy until the test opens the gate, however long it takes to get there.
    slow = json.dumps({"action": "hold", "gate": str(gate)}).encode()

    with ThreadPoolExecutor(2) as pool:
        busy = [
            pool.submit(
                httpx.post, url, content=slow, headers={"Lambdalet-Request-Id": i}, timeout=30
            )
            for i in ("one", "two")
        ]
        agent.wait_log(r"^START RequestId: one ")
        agent.wait_log(r"^START RequestId: two ")
        began = time.monotonic()
        third = agent.invoke({})
        refused_in = time.monotonic() - began
        gate.touch()
        results = [f.result() for f in busy]

    assert third.status_code == 429
    assert third.json()["errorType"] == "TooManyRequestsException"
    assert refused_in < 10  # at once: waiting for a slot would have taken the 20 s hold
    assert [r.status_code for r in results] == [200, 200]
    assert agent.invoke({}).status_code == 200  # the slots are free again


def test_sigterm_lets_the_invocation_in_flight_finish(
    start_agent: StartAgent, tmp_path: Path
) -> None:
    agent = start_agent(LIFECYCLE)
    url = f"http://127.0.0.1:{agent.port}{INVOKE_PATH}"
    gate = tmp_path / "gate"

    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(
            httpx.post,
            url,
            content=json.dumps({"action": "hold", "gate": str(gate)}).encode(),
            timeout=30,
            headers={"Lambdalet-Request-Id": "last"},
        )
        agent.wait_log(r"^START RequestId: last ")
        agent.process.send_signal(signal.SIGTERM)
        # The agent has taken the signal once it stops accepting: the invocation is still held
        # behind its gate, so the agent must wait for it however slow the machine is.
        wait_for(lambda: refused(agent.port), 20, what="the agent to stop accepting on SIGTERM")
        assert agent.process.poll() is None
        assert not in_flight.done()
        gate.touch()
        reply = in_flight.result()
        code = agent.process.wait(timeout=20)

    assert code == 0
    assert reply.status_code == 200
    # The runtime was stopped and reaped with the agent.
    assert not Path(f"/proc/{reply.json()['pid']}").exists()


def refused(port: int) -> bool:
    """Nothing accepts connections on ``port`` (any more)."""
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) != 0
