"""A runtime's life under the agent, in every runtime: init errors, timeouts, exits and crashes,
and concurrent invocations."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.kit.servers.agent import INVOKE_PATH, StartAgent
from tests.runtime.runtimes import (
    RUNTIMES,
    Runtime,
    crash_and_recover,
    init_error_cases,
    per_runtime,
)

each_runtime = pytest.mark.parametrize("runtime", RUNTIMES, ids=str)


@pytest.mark.parametrize(
    ("runtime", "files", "handler", "error_type", "message"), init_error_cases()
)
def test_init_error(
    start_agent: StartAgent,
    runtime: Runtime,
    files: dict[str, str],
    handler: str,
    error_type: str,
    message: str,
) -> None:
    agent = start_agent(files, handler, runtime.env(), wait_ready=False)

    health = agent.wait_health("init_error")
    reply = agent.invoke({})

    assert health["error"]["errorType"] == error_type
    assert message in health["error"]["errorMessage"]
    if runtime.trace_names_the_error:
        assert health["error"][runtime.trace_key][0].startswith(error_type)
    assert agent.health().status_code == 503
    assert reply.status_code == 502
    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    assert reply.json()["errorType"] == error_type
    assert message in reply.json()["errorMessage"]
    agent.wait_log(
        rf"^INIT_REPORT Init Duration: \d+\.\d\d ms\tPhase: init\tStatus: error\t"
        rf"Error Type: {re.escape(error_type)}$"
    )
    assert re.search(runtime.error_logged("", error_type, message), agent.log(), re.M)


@each_runtime
def test_timeout_kills_and_restarts_the_runtime(start_agent: StartAgent, runtime: Runtime) -> None:
    agent = start_agent(
        runtime.files("lifecycle"), env=runtime.env({"LAMBDALET_TIMEOUT_SECONDS": "1"})
    )
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
    ("runtime", "event", "status"),
    per_runtime(
        [
            pytest.param(
                {"action": "exit", "code": 3},
                "Runtime exited with error: exit status 3",
                id="exit-3",
            ),
            pytest.param(
                {"action": "exit", "code": 0},
                "Runtime exited without providing a reason",
                id="exit-0",
            ),
            pytest.param(
                {"action": "kill"}, "Runtime exited with error: signal: killed", id="kill"
            ),
        ]
    ),
)
def test_runtime_exit_fails_the_invocation_and_recovers(
    start_agent: StartAgent, runtime: Runtime, event: dict[str, object], status: str
) -> None:
    reply, log = crash_and_recover(start_agent, runtime, event)

    assert reply.json() == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: crash Error: {status}",
    }
    assert f"RequestId: crash Error: {status}" in log


@each_runtime
def test_concurrent_invocations(start_agent: StartAgent, runtime: Runtime, tmp_path: Path) -> None:
    agent = start_agent(runtime.files("lifecycle"), env=runtime.env({"LAMBDALET_CONCURRENCY": "2"}))
    url = f"http://127.0.0.1:{agent.port}{INVOKE_PATH}"

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
