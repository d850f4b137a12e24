"""What a Node.js handler sees: every ``context`` field and the Lambda environment variables.

``node_binary`` and ``node_env`` (the agent settings that run Lambdalet's Node.js runtime with the
``node`` on PATH) serve the other ``test_nodejs_*`` modules too: tests/runtime/conftest.py is
shared with the Python runtime's tests.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.fixtures import StartAgent
from tests.runtime.harness import REPO, free_port, running_agent

NODE_BOOTSTRAP = REPO / "runtime-images" / "nodejs" / "bootstrap.js"


def node_binary() -> str:
    """The ``node`` on PATH; fails the test when there is none."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("the Node.js runtime tests need `node` on PATH", pytrace=False)
    return node


def node_env(extra: Mapping[str, str] | None = None, runtime: str = "nodejs20") -> dict[str, str]:
    """Agent settings that run Lambdalet's Node.js runtime, plus ``extra``."""
    return {
        "LAMBDALET_RUNTIME": runtime,
        "LAMBDALET_BOOTSTRAP": f"{node_binary()} {NODE_BOOTSTRAP}",
        **(extra or {}),
    }


HANDLER = """
const os = require('os');

exports.handler = async (event, context) => {
  const shown = (value) => (value === undefined ? 'undefined' : value);
  return {
    awsRequestId: context.awsRequestId,
    functionName: context.functionName,
    functionVersion: context.functionVersion,
    invokedFunctionArn: context.invokedFunctionArn,
    memoryLimitInMB: context.memoryLimitInMB,
    logGroupName: context.logGroupName,
    logStreamName: context.logStreamName,
    identity: shown(context.identity),
    clientContext: shown(context.clientContext),
    callbackWaitsForEmptyEventLoop: context.callbackWaitsForEmptyEventLoop,
    methods: ['getRemainingTimeInMillis', 'done', 'succeed', 'fail'].map(
      (name) => typeof context[name],
    ),
    remaining: context.getRemainingTimeInMillis(),
    environ: process.env,
    cwd: process.cwd(),
  };
};
"""

CLIENT_CONTEXT = {
    "client": {
        "installation_id": "inst-1",
        "app_title": "Café 🦙",
        "app_version_name": "1.2",
        "app_version_code": "12",
        "app_package_name": "dev.lambdalet.shop",
    },
    "custom": {"tier": "gold"},
    "env": {"locale": "de_DE"},
}
COGNITO = {"cognitoIdentityId": "eu-west-1:äbc", "cognitoIdentityPoolId": "eu-west-1:pool"}
TRACE = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"


@pytest.fixture(scope="module")
def replies(agent_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Two invocations of one function: a plain one and one with every optional header."""
    api_port = free_port()
    env = node_env(
        {
            "AWS_LAMBDA_FUNCTION_NAME": "hello",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_REGION": "eu-west-1",
            "LAMBDALET_TIMEOUT_SECONDS": "7",
            "LAMBDALET_RUNTIME_API_PORT_NUMBER": str(api_port),
            "GREETING": "hallo",
        }
    )
    workdir = tmp_path_factory.mktemp("node-context")
    with running_agent(agent_binary, workdir, {"app.js": HANDLER}, "app.handler", env) as agent:
        plain = agent.invoke({}, headers={"Lambdalet-Request-Id": "req-plain"})
        extra = agent.invoke(
            {},
            headers={
                "Lambdalet-Request-Id": "req-extra",
                "X-Amzn-Trace-Id": TRACE,
                "X-Amz-Client-Context": base64.b64encode(
                    json.dumps(CLIENT_CONTEXT, ensure_ascii=False).encode()
                ).decode(),
                "Lambdalet-Cognito-Identity": json.dumps(COGNITO),
            },
        )
        yield {
            "plain": plain,
            "extra": extra,
            "api_port": api_port,
            "task_root": str(agent.task_root),
        }


@pytest.mark.parametrize(
    ("case", "field", "expected"),
    [
        ("plain", "awsRequestId", "req-plain"),
        ("extra", "awsRequestId", "req-extra"),
        ("plain", "functionName", "hello"),
        ("plain", "functionVersion", "$LATEST"),
        ("plain", "invokedFunctionArn", "arn:aws:lambda:eu-west-1:000000000000:function:hello"),
        ("plain", "memoryLimitInMB", "256"),  # a string, as on Lambda
        ("plain", "logGroupName", "/aws/lambda/hello"),
        ("plain", "identity", "undefined"),
        ("extra", "identity", COGNITO),
        ("plain", "clientContext", "undefined"),
        ("extra", "clientContext", CLIENT_CONTEXT),
        ("plain", "callbackWaitsForEmptyEventLoop", True),
        ("plain", "methods", ["function"] * 4),
    ],
)
def test_context_field(replies: Any, case: str, field: str, expected: Any) -> None:
    reply = replies[case]
    assert reply.status_code == 200, reply.text
    assert "X-Amz-Function-Error" not in reply.headers
    assert reply.json()[field] == expected


def test_log_stream_name_and_remaining_time(replies: Any) -> None:
    body = replies["plain"].json()
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\].+", body["logStreamName"])
    # The deadline is 7 s after the invocation was accepted.
    assert 5000 < body["remaining"] <= 7000


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("AWS_LAMBDA_FUNCTION_NAME", "hello"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/hello"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_nodejs20.x"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime"),
        ("_HANDLER", "app.handler"),
        ("TZ", ":UTC"),
        ("GREETING", "hallo"),  # the user's own environment
    ],
)
def test_environment_variable(replies: Any, name: str, expected: str) -> None:
    assert replies["plain"].json()["environ"].get(name) == expected


def test_environment_of_the_platform(replies: Any) -> None:
    body = replies["plain"].json()
    environ = body["environ"]
    assert environ["AWS_LAMBDA_RUNTIME_API"] == f"127.0.0.1:{replies['api_port']}"
    assert environ["LAMBDA_TASK_ROOT"] == replies["task_root"]
    assert body["cwd"] == replies["task_root"]
    assert environ["AWS_LAMBDA_LOG_STREAM_NAME"] == body["logStreamName"]
    assert environ["LANG"]
    assert environ["PATH"]
    assert not [name for name in environ if name.startswith("LAMBDALET_")]


def test_trace_id(replies: Any) -> None:
    assert replies["extra"].json()["environ"]["_X_AMZN_TRACE_ID"] == TRACE
    made = replies["plain"].json()["environ"]["_X_AMZN_TRACE_ID"]
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Sampled=0", made)


def test_nodejs22_execution_env(start_agent: StartAgent) -> None:
    source = "exports.handler = async () => process.env.AWS_EXECUTION_ENV;\n"
    agent = start_agent({"app.js": source}, env=node_env(runtime="nodejs22"))

    assert agent.invoke({}).json() == "AWS_Lambda_nodejs22.x"
