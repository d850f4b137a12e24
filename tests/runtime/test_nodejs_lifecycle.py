"""The Node.js runtime's life under the agent: init errors, timeouts, exits, uncaught errors and
concurrency."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.runtime.fixtures import StartAgent
from tests.runtime.test_nodejs_context import node_env

# A handler whose module-level code stamps each init, so a test can tell a fresh one.
LIFECYCLE = """
const crypto = require('crypto');

const INSTANCE = crypto.randomUUID();

exports.handler = async (event) => {
  switch (event.action) {
    case 'sleep':
      await new Promise((resolve) => setTimeout(resolve, event.seconds * 1000));
      break;
    case 'meet': {  // arrive, then wait (20 s at most) until every party has arrived
      const fs = require('fs');
      fs.writeFileSync(require('path').join(event.dir, event.name), '');
      const deadline = Date.now() + 20000;
      while (fs.readdirSync(event.dir).length < event.parties && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      return { pid: process.pid, met: fs.readdirSync(event.dir).length >= event.parties };
    }
    case 'exit':
      process.exit(event.code);
    case 'reject':
      Promise.reject(new Error('nobody waits for me'));
      await new Promise((resolve) => setTimeout(resolve, 60000));
      break;
    case 'throw-later':
      setTimeout(() => { throw new TypeError('thrown from a timer'); }, 10);
      await new Promise((resolve) => setTimeout(resolve, 60000));
      break;
  }
  return { instance: INSTANCE, pid: process.pid };
};
"""

INIT_ERRORS = [
    pytest.param(
        {},
        "missing.handler",
        "Runtime.ImportModuleError",
        "Error: Cannot find module 'missing'",
        id="missing-module",
    ),
    pytest.param(
        {"app.js": "require('not-installed-anywhere');\n"},
        "app.handler",
        "Runtime.ImportModuleError",
        "Error: Cannot find module 'not-installed-anywhere'",
        id="missing-dependency",
    ),
    pytest.param(
        {"app.mjs": "import 'not-installed-anywhere';\n"},
        "app.handler",
        "Runtime.ImportModuleError",
        "Error: Cannot find package 'not-installed-anywhere'",
        id="esm-missing-dependency",
    ),
    pytest.param(
        {"app.js": "exports.other = async () => 1;\n"},
        "app.handler",
        "Runtime.HandlerNotFound",
        "app.handler is undefined or not exported",
        id="missing-export",
    ),
    pytest.param(
        {"app.js": "exports.handler = 42;\n"},
        "app.handler",
        "Runtime.HandlerNotFound",
        "app.handler is not a function",
        id="export-not-a-function",
    ),
    pytest.param(
        {"app.js": "exports.handler = async (event => 1;\n"},
        "app.handler",
        "Runtime.UserCodeSyntaxError",
        "SyntaxError: ",
        id="syntax-error",
    ),
    pytest.param(
        {"app.mjs": "export const handler = async ( => 1;\n"},
        "app.handler",
        "Runtime.UserCodeSyntaxError",
        "SyntaxError: ",
        id="esm-syntax-error",
    ),
    pytest.param(
        {"app.js": "throw new Error('no database');\n"},
        "app.handler",
        "Error",
        "no database",
        id="module-throws",
    ),
    pytest.param(
        {"app.mjs": "await Promise.reject(new RangeError('no config'));\n"},
        "app.handler",
        "RangeError",
        "no config",
        id="top-level-await-rejects",
    ),
    pytest.param(
        {"app.js": "Promise.reject(new Error('forgotten'));\nexports.handler = async () => 1;\n"},
        "app.handler",
        "Runtime.UnhandledPromiseRejection",
        "Error: forgotten",
        id="unhandled-rejection-at-init",
    ),
    pytest.param(
        {"app.js": ""},
        "app",
        "Runtime.MalformedHandlerName",
        "Bad handler 'app'",
        id="no-export-name",
    ),
    pytest.param(
        {"app.js": ""},
        "../app.handler",
        "Runtime.MalformedHandlerName",
        "Bad handler '../app.handler'",
        id="outside-the-task-root",
    ),
]


@pytest.mark.parametrize(("files", "handler", "error_type", "message"), INIT_ERRORS)
def test_init_error(
    start_agent: StartAgent, files: dict[str, str], handler: str, error_type: str, message: str
) -> None:
    agent = start_agent(files, handler, node_env(), wait_ready=False)

    health = agent.wait_health("init_error")
    reply = agent.invoke({})

    assert health["error"]["errorType"] == error_type
    assert message in health["error"]["errorMessage"]
    assert health["error"]["trace"][0].startswith(error_type)
    assert agent.health().status_code == 503
    assert reply.status_code == 502
    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    assert reply.json()["errorType"] == error_type
    assert message in reply.json()["errorMessage"]
    agent.wait_log(
        rf"^INIT_REPORT Init Duration: \d+\.\d\d ms\tPhase: init\tStatus: error\t"
        rf"Error Type: {re.escape(error_type)}$"
    )
    assert re.search(
        rf"\tundefined\tERROR\t(Uncaught Exception|Unhandled Promise Rejection) \t"
        rf'\{{"errorType":"{re.escape(error_type)}"',
        agent.log(),
    )


def test_timeout_kills_and_restarts_the_runtime(start_agent: StartAgent) -> None:
    agent = start_agent({"app.js": LIFECYCLE}, env=node_env({"LAMBDALET_TIMEOUT_SECONDS": "1"}))
    before = agent.invoke({}).json()

    began = time.monotonic()
    reply = agent.invoke(
        {"action": "sleep", "seconds": 30}, headers={"Lambdalet-Request-Id": "slow"}
    )
    waited = time.monotonic() - began
    after = agent.invoke({}, headers={"Lambdalet-Request-Id": "after"})

    assert 1.0 <= waited < 15  # at the 1 s deadline, not at the handler's 30 s
    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    assert reply.json()["errorType"] == "Sandbox.Timedout"
    assert reply.json()["errorMessage"].endswith("slow Task timed out after 1.00 seconds")
    assert after.status_code == 200
    assert after.json()["instance"] != before["instance"]  # a fresh init
    agent.wait_log(r"^REPORT RequestId: after\t.*\tInit Duration: \d+\.\d\d ms$")


@pytest.mark.parametrize(
    ("event", "error_type", "message", "log"),
    [
        pytest.param(
            {"action": "exit", "code": 2},
            "Runtime.ExitError",
            "RequestId: crash Error: Runtime exited with error: exit status 2",
            None,
            id="process-exit",
        ),
        pytest.param(
            {"action": "reject"},
            "Runtime.UnhandledPromiseRejection",
            "Error: nobody waits for me",
            "Unhandled Promise Rejection",
            id="unhandled-rejection",
        ),
        pytest.param(
            {"action": "throw-later"},
            "TypeError",
            "thrown from a timer",
            "Uncaught Exception",
            id="uncaught-exception",
        ),
    ],
)
def test_a_crash_fails_the_invocation_and_a_fresh_runtime_follows(
    start_agent: StartAgent,
    event: dict[str, object],
    error_type: str,
    message: str,
    log: str | None,
) -> None:
    # The handler would return after 60 s, well within its timeout: an answer in less than half
    # that came at the crash, however slow a loaded machine is.
    agent = start_agent({"app.js": LIFECYCLE}, env=node_env({"LAMBDALET_TIMEOUT_SECONDS": "120"}))
    before = agent.invoke({}).json()

    began = time.monotonic()
    reply = agent.invoke(event, headers={"Lambdalet-Request-Id": "crash"})
    took = time.monotonic() - began
    after = agent.invoke({})

    assert took < 30  # answered at the crash, not when the handler would have returned (60 s)
    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    assert reply.json()["errorType"] == error_type
    assert reply.json()["errorMessage"] == message
    assert after.status_code == 200
    assert after.json()["instance"] != before["instance"]
    assert after.json()["pid"] != before["pid"]
    if log is not None:
        assert re.search(rf"\tcrash\tERROR\t{log} \t\{{", agent.log())


def test_concurrent_invocations_overlap(start_agent: StartAgent, tmp_path: Path) -> None:
    agent = start_agent({"app.js": LIFECYCLE}, env=node_env({"LAMBDALET_CONCURRENCY": "2"}))
    url = f"http://127.0.0.1:{agent.port}/2015-03-31/functions/function/invocations"

    def invoke(request_id: str) -> httpx.Response:
        # Each waits for the other to arrive: run one after the other, neither would meet.
        meet = {"action": "meet", "dir": str(tmp_path), "parties": 2, "name": request_id}
        return httpx.post(url, json=meet, headers={"Lambdalet-Request-Id": request_id}, timeout=60)

    with ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(invoke, ["one", "two"]))

    assert [r.status_code for r in replies] == [200, 200]
    assert [r.json()["met"] for r in replies] == [True, True]  # they ran at the same time
    assert replies[0].json()["pid"] != replies[1].json()["pid"]
