"""What only the Node.js runtime does: handler styles (async, promise, callback, context methods)
and module kinds (CommonJS, ES modules), when an invocation completes, the error documents of
what JavaScript can throw, and the nodejs22 runtime's name."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from tests.kit.servers.agent import StartAgent
from tests.runtime.runtimes import ISO, NODEJS

STYLES = [
    pytest.param(
        "exports.handler = async (event) => ({ style: 'async', got: event.n });",
        {"style": "async", "got": 1},
        id="async",
    ),
    pytest.param(
        "exports.handler = () => new Promise((ok) => setTimeout(() => ok('promise'), 50));",
        "promise",
        id="promise",
    ),
    pytest.param(
        "exports.handler = (e, c, callback) => setTimeout(() => callback(null, 'cb'), 50);",
        "cb",
        id="callback",
    ),
    pytest.param("exports.handler = (e, c, callback) => callback();", None, id="callback-empty"),
    pytest.param("exports.handler = (e, c) => { c.succeed('succeed'); };", "succeed", id="succeed"),
    pytest.param("exports.handler = (e, c) => c.done(null, 'done');", "done", id="done"),
    pytest.param("exports.handler = async () => {};", None, id="async-undefined"),
    # A plain return value is not a result: Lambda answers null once the event loop is empty.
    pytest.param("exports.handler = () => 'ignored';", None, id="sync-return"),
    pytest.param(
        "exports.handler = (e, c, callback) => { c.succeed('first'); callback(null, '2nd'); };",
        "first",
        id="first-completion-wins",
    ),
]


@pytest.mark.parametrize(("source", "expected"), STYLES)
def test_handler_styles(start_agent: StartAgent, source: str, expected: Any) -> None:
    agent = start_agent({"app.js": source}, env=NODEJS.env())

    reply = agent.invoke({"n": 1})

    assert reply.status_code == 200, reply.text
    assert "X-Amz-Function-Error" not in reply.headers
    assert reply.json() == expected


MODULE_KINDS = [
    pytest.param(
        {
            "app.mjs": "const value = await Promise.resolve('ok');\n"
            "export const handler = async () => value;\n"
        },
        "app.handler",
        id="mjs-top-level-await",
    ),
    pytest.param(
        {
            "package.json": '{"type": "module"}',
            "app.js": "import os from 'node:os';\nexport const handler = async () => 'ok';\n",
        },
        "app.handler",
        id="js-type-module",
    ),
    pytest.param({"app.cjs": "exports.handler = async () => 'ok';"}, "app.handler", id="cjs"),
    pytest.param(
        {"src/api/app.js": "exports.handler = async () => 'ok';"},
        "src/api/app.handler",
        id="nested-dir",
    ),
    pytest.param(
        {"app.js": "exports.routes = { get: async () => 'ok' };"},
        "app.routes.get",
        id="nested-export",
    ),
    pytest.param(
        {
            "app.js": "module.exports = 'not this one';",
            "app.mjs": "export const handler = 'nor this one';",
            "app": "exports.handler = async () => 'ok';",
        },
        "app.handler",
        id="extensionless-first",
    ),
]


@pytest.mark.parametrize(("files", "handler"), MODULE_KINDS)
def test_module_kinds(start_agent: StartAgent, files: dict[str, str], handler: str) -> None:
    agent = start_agent(files, handler, NODEJS.env())

    reply = agent.invoke({})

    assert reply.status_code == 200, reply.text
    assert reply.json() == "ok"


ERRORS = [
    pytest.param(
        "class OrderRejected extends Error { name = 'OrderRejected'; }\n"
        "const reject = (why) => { throw new OrderRejected(why); };\n"
        "exports.handler = async () => reject('out of stock: ünïcode');",
        "OrderRejected",
        "out of stock: ünïcode",
        "OrderRejected: out of stock: ünïcode",
        id="async-throw",
    ),
    pytest.param(
        "exports.handler = () => { null.x; };",
        "TypeError",
        "Cannot read properties of null (reading 'x')",
        "TypeError: Cannot read",
        id="sync-throw",
    ),
    pytest.param(
        "exports.handler = async () => { throw 'a plain string'; };",
        "string",
        "a plain string",
        None,
        id="thrown-string",
    ),
    pytest.param(
        "exports.handler = async () => { throw { code: 42 }; };",
        "object",
        "[object Object]",
        None,
        id="thrown-object",
    ),
    pytest.param(
        "exports.handler = (e, c, callback) => callback(new RangeError('too far'));",
        "RangeError",
        "too far",
        "RangeError: too far",
        id="callback-error",
    ),
    pytest.param(
        "exports.handler = (e, c, callback) => callback('failed');",
        "string",
        "failed",
        None,
        id="callback-string",
    ),
    pytest.param(
        "exports.handler = (e, context) => context.fail(new Error('legacy'));",
        "Error",
        "legacy",
        "Error: legacy",
        id="context-fail",
    ),
    pytest.param(
        "exports.handler = (e, context) => context.fail();",
        "string",
        "handled",
        None,
        id="context-fail-empty",
    ),
    pytest.param(
        "exports.handler = async () => Promise.reject(undefined);",
        "string",
        "handled",
        None,
        id="reject-undefined",
    ),
    pytest.param(
        "exports.handler = async () => 10n;",
        "Error",
        "Unable to stringify response body",
        "Error: Unable to stringify response body",
        id="bigint-result",
    ),
    pytest.param(
        "exports.handler = async () => { const a = {}; a.a = a; return a; };",
        "Error",
        "Unable to stringify response body",
        "Error: Unable to stringify response body",
        id="circular-result",
    ),
]


@pytest.mark.parametrize(("source", "error_type", "message", "trace_head"), ERRORS)
def test_error_documents(
    start_agent: StartAgent, source: str, error_type: str, message: str, trace_head: str | None
) -> None:
    agent = start_agent({"app.js": source}, env=NODEJS.env())

    reply = agent.invoke({}, headers={"Lambdalet-Request-Id": "req-err"})

    assert reply.status_code == 200
    assert reply.headers["X-Amz-Function-Error"] == "Unhandled"
    error = reply.json()
    assert set(error) == {"errorType", "errorMessage", "trace"}
    assert error["errorType"] == error_type
    assert error["errorMessage"] == message
    if trace_head is None:
        assert error["trace"] == []
    else:
        assert error["trace"][0].startswith(trace_head)
    log = agent.wait_log(rf"^{ISO}\treq-err\tERROR\tInvoke Error \t(.*)$").group(1)
    assert f'"errorType":"{error_type}"' in log
    assert agent.invoke({}).status_code == 200  # the runtime carries on


def test_trace_shows_the_users_frames_only(start_agent: StartAgent) -> None:
    source = (
        "function reject(why) {\n  throw new Error(why);\n}\n"
        "exports.handler = async () => reject('nope');\n"
    )
    agent = start_agent({"app.js": source}, env=NODEJS.env())

    trace = agent.invoke({}).json()["trace"]

    assert trace[0] == "Error: nope"
    assert re.match(r"\s+at reject \(.*/app\.js:2:9\)$", trace[1])
    assert re.match(r"\s+at exports\.handler \(.*/app\.js:4:31\)$", trace[2])
    assert not [frame for frame in trace if "runtime-images/nodejs" in frame]


# A callback, then a timer of 0.6 s that logs; whether the answer waits for the timer depends on
# callbackWaitsForEmptyEventLoop.
WAITING = """
exports.handler = (event, context, callback) => {
  context.callbackWaitsForEmptyEventLoop = event.wait;
  setTimeout(() => console.log('timer done'), 600);
  callback(null, 'answered');
};
"""


@pytest.mark.parametrize("wait", [True, False])
def test_callback_waits_for_empty_event_loop(start_agent: StartAgent, wait: bool) -> None:
    agent = start_agent({"app.js": WAITING}, env=NODEJS.env())

    began = time.monotonic()
    reply = agent.invoke({"wait": wait}, headers={"Lambdalet-Request-Id": "req-wait"})
    took = time.monotonic() - began
    agent.wait_log(r"\tINFO\ttimer done$")
    agent.wait_log(r"^END RequestId: req-wait$")  # written just after the answer went out

    assert reply.json() == "answered"
    lines = agent.log().splitlines()
    end = lines.index("END RequestId: req-wait")
    timer = next(n for n, line in enumerate(lines) if line.endswith("\ttimer done"))
    if wait:
        assert took >= 0.6
        assert timer < end  # the timer ran inside the invocation
    else:
        # The answer went out before the timer fired: END (written once the answer is sent)
        # precedes the timer's line. Told by the log's order, not by a clock, which a busy
        # machine can stretch past the timer's 600 ms.
        assert timer > end


def test_async_handler_does_not_wait_for_the_event_loop(start_agent: StartAgent) -> None:
    # A timer far longer than any invocation takes, however busy the machine.
    source = "exports.handler = async () => { setTimeout(() => {}, 60000); return 'now'; };\n"
    agent = start_agent({"app.js": source}, env=NODEJS.env())

    began = time.monotonic()
    reply = agent.invoke({})

    assert reply.json() == "now"
    assert time.monotonic() - began < 30


def test_nodejs22_execution_env(start_agent: StartAgent) -> None:
    source = "exports.handler = async () => process.env.AWS_EXECUTION_ENV;\n"
    agent = start_agent({"app.js": source}, env=NODEJS.env({"LAMBDALET_RUNTIME": "nodejs22"}))

    assert agent.invoke({}).json() == "AWS_Lambda_nodejs22.x"
