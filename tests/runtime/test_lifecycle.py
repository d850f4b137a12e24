"""The runtime's life under the agent: init errors, timeouts, crashes and restarts, concurrency,
readiness and shutdown."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.runtime.fixtures import StartAgent

# A handler whose module-level code stamps each init, so a test can tell a fresh one.
LIFECYCLE = """
import os
import signal
import time
import uuid

INSTANCE = uuid.uuid4().hex

def handler(event, context):
    action = event.get("action")
    if action == "sleep":
        time.sleep(event["seconds"])
    elif action == "meet":  # arrive, then wait (20 s at most) until every party has arrived
        open(os.path.join(event["dir"], event["name"]), "w").close()
        deadline = time.monotonic() + 20
        while len(os.listdir(event["dir"])) < event["parties"] and time.monotonic() < deadline:
            time.sleep(0.01)
        return {"pid": os.getpid(), "met": len(os.listdir(event["dir"])) >= event["parties"]}
    elif action == "hold":  # until the gate file exists (20 s at most)
        deadline = time.monotonic() + 20
        while not os.path.exists(event["gate"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    elif action == "exit":
        os._exit(event["code"])
    elif action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    return {"instance": INSTANCE, "pid": os.getpid()}
"""


@pytest.mark.parametrize(
    ("files", "handler", "error_type", "message"),
    [
        (
            {},
            "missing.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'missing': No module named 'missing'",
        ),
        (
            {"app.py": "import not_installed_anywhere\n"},
            "app.handler",
            "Runtime.ImportModuleError",
            "Unable to import module 'app': No module named 'not_installed_anywhere'",
        ),
        (
            {"app.py": "def other(event, context):\n    pass\n"},
            "app.handler",
            "Runtime.HandlerNotFound",
            "Handler 'handler' missing on module 'app'",
        ),
        (
            {"app.py": "def handler(event, context)\n"},
            "app.handler",
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'app'",
        ),
        (
            {"app.py": "raise RuntimeError('no database')\n"},
            "app.handler",
            "RuntimeError",
            "no database",
        ),
        ({"app.py": ""}, "app", "Runtime.MalformedHandlerName", "Bad handler 'app'"),
    ],
)
def test_init_error(
    start_agent: StartAgent, files: dict[str, str], handler: str, error_type: str, message: str
) -> None:
    agent = start_agent(files, handler, wait_ready=False)

    health = agent.wait_health("init_error")
    reply = agent.invoke({})

    assert health["error"]["errorType"] == error_type
    assert message in health["error"]["errorMessage"]
    assert agent.health().status_code == 503
    assert reply.status_code == 502
    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    assert reply.json()["errorType"] == error_type
    assert message in reply.json()["errorMessage"]
    agent.wait_log(
        rf"^INIT_REPORT Init Duration: \d+\.\d\d ms\tPhase: init\tStatus: error\t"
        rf"Error Type: {re.escape(error_type)}$"
    )


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


def test_timeout_kills_and_restarts_the_runtime(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": LIFECYCLE}, env={"LAMBDALET_TIMEOUT_SECONDS": "1"})
    before = agent.invoke({}).json()

    began = time.monotonic()
    reply = agent.invoke(
        {"action": "sleep", "seconds": 30}, headers={"Lambdalet-Request-Id": "slow"}
    )
    waited = time.monotonic() - began
    after = agent.invoke({}, headers={"Lambdalet-Request-Id": "after"})

    assert 1.0 <= waited < 15  # at the 1 s deadline, not at the handler's 30 s
    assert reply.status_code == 200
    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    assert reply.json()["errorType"] == "Sandbox.Timedout"
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z slow Task timed out after 1\.00 seconds",
        reply.json()["errorMessage"],
    )
    assert after.status_code == 200
    assert after.json()["instance"] != before["instance"]  # a new init
    assert after.json()["pid"] != before["pid"]
    agent.wait_log(r"^REPORT RequestId: after\t.*\tInit Duration: \d+\.\d\d ms$")
    assert re.search(r"^\S+ slow Task timed out after 1\.00 seconds$", agent.log(), re.M)
    report = re.search(r"^REPORT RequestId: slow\tDuration: (\d+\.\d\d) ms", agent.log(), re.M)
    assert report
    # The duration up to the kill: the 1 s deadline (the agent's timer may fire late on a busy
    # machine), not the handler's 30 s.
    assert 900 < float(report.group(1)) < 15000


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ({"action": "exit", "code": 3}, "Runtime exited with error: exit status 3"),
        ({"action": "exit", "code": 0}, "Runtime exited without providing a reason"),
        ({"action": "kill"}, "Runtime exited with error: signal: killed"),
    ],
)
def test_runtime_exit_fails_the_invocation_and_recovers(
    start_agent: StartAgent, event: dict[str, object], status: str
) -> None:
    agent = start_agent({"app.py": LIFECYCLE})
    before = agent.invoke({}).json()

    reply = agent.invoke(event, headers={"Lambdalet-Request-Id": "crash"})
    after = agent.invoke({})

    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    assert reply.json() == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: crash Error: {status}",
    }
    assert after.status_code == 200
    assert after.json()["instance"] != before["instance"]
    assert f"RequestId: crash Error: {status}" in agent.log()


def test_concurrent_invocations(start_agent: StartAgent, tmp_path: Path) -> None:
    agent = start_agent({"app.py": LIFECYCLE}, env={"LAMBDALET_CONCURRENCY": "2"})
    url = f"http://127.0.0.1:{agent.port}/2015-03-31/functions/function/invocations"

    def invoke(request_id: str) -> httpx.Response:
        # Each waits for the other to arrive: run one after the other, neither would meet.
        meet = {"action": "meet", "dir": str(tmp_path), "parties": 2, "name": request_id}
        return httpx.post(url, json=meet, headers={"Lambdalet-Request-Id": request_id}, timeout=60)

    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(invoke, ["one", "two"]))

    assert [r.status_code for r in replies] == [200, 200]
    assert [r.json()["met"] for r in replies] == [True, True]  # they ran at the same time
    # Two runtime processes, each with one invocation.
    assert replies[0].json()["pid"] != replies[1].json()["pid"]


def test_invocation_beyond_concurrency_is_refused(start_agent: StartAgent, tmp_path: Path) -> None:
    agent = start_agent({"app.py": LIFECYCLE}, env={"LAMBDALET_CONCURRENCY": "2"})
    url = f"http://127.0.0.1:{agent.port}/2015-03-31/functions/function/invocations"
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


def test_sigterm_lets_the_invocation_in_flight_finish(start_agent: StartAgent) -> None:
    agent = start_agent({"app.py": LIFECYCLE})
    url = f"http://127.0.0.1:{agent.port}/2015-03-31/functions/function/invocations"

    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(
            httpx.post,
            url,
            content=b'{"action": "sleep", "seconds": 0.5}',
            timeout=30,
            headers={"Lambdalet-Request-Id": "last"},
        )
        agent.wait_log(r"^START RequestId: last ")
        code = agent.stop()
        reply = in_flight.result()

    assert code == 0
    assert reply.status_code == 200
    # The runtime was stopped and reaped with the agent.
    assert not Path(f"/proc/{reply.json()['pid']}").exists()
