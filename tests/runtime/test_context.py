"""What a handler sees, in every runtime: each ``context`` field and the Lambda environment
variables."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kit.ports import free_port
from tests.kit.servers.agent import running_agent
from tests.runtime.runtimes import RUNTIMES, ByLanguage, Runtime, per_runtime

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
def replies(
    request: pytest.FixtureRequest, agent_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """Two invocations of one function: a plain one and one with every optional header."""
    runtime: Runtime = request.param
    api_port = free_port()
    env = runtime.env(
        {
            "AWS_LAMBDA_FUNCTION_NAME": "hello",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_REGION": "eu-west-1",
            "LAMBDALET_TIMEOUT_SECONDS": "7",
            "LAMBDALET_RUNTIME_API_PORT_NUMBER": str(api_port),
            "GREETING": "hallo",
        }
    )
    workdir = tmp_path_factory.mktemp(f"context-{runtime}")
    with running_agent(
        agent_binary, workdir, runtime.files("context"), "app.handler", env
    ) as agent:
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


# The module-scoped ``replies`` of one runtime serve all of that runtime's cases.
each_runtime = pytest.mark.parametrize("replies", RUNTIMES, ids=str, indirect=True)

# Under Python's names: the Node.js handler reports its camelCase fields under them.
CONTEXT_FIELDS = [
    ("plain", "aws_request_id", "req-plain"),
    ("extra", "aws_request_id", "req-extra"),
    ("plain", "function_name", "hello"),
    ("plain", "function_version", "$LATEST"),
    ("plain", "invoked_function_arn", "arn:aws:lambda:eu-west-1:000000000000:function:hello"),
    # An int in Python, a string in Node.js, as on Lambda.
    ("plain", "memory_limit_in_mb", ByLanguage(python=256, nodejs="256")),
    ("plain", "log_group_name", "/aws/lambda/hello"),
    ("plain", "identity", ByLanguage(python=[None, None], nodejs="undefined")),
    ("extra", "identity", ByLanguage(python=["eu-west-1:äbc", "eu-west-1:pool"], nodejs=COGNITO)),
    ("plain", "client_context", ByLanguage(python=None, nodejs="undefined")),
    ("extra", "client_context", CLIENT_CONTEXT),
    ("plain", "callback_waits_for_empty_event_loop", ByLanguage(nodejs=True)),
    ("plain", "methods", ByLanguage(nodejs=["function"] * 4)),
]


@pytest.mark.parametrize(
    ("replies", "case", "field", "expected"),
    per_runtime(pytest.param(*row, id="-".join(map(str, row[:2]))) for row in CONTEXT_FIELDS),
    indirect=["replies"],
)
def test_context_field(replies: Any, case: str, field: str, expected: Any) -> None:
    reply = replies[case]
    assert reply.status_code == 200, reply.text
    assert "X-Amz-Function-Error" not in reply.headers
    assert reply.json()[field] == expected
    assert type(reply.json()[field]) is type(expected)


@each_runtime
def test_log_stream_name_and_remaining_time(replies: Any) -> None:
    body = replies["plain"].json()
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\].+", body["log_stream_name"])
    # The deadline is 7 s after the invocation was accepted.
    assert 5000 < body["remaining"] <= 7000


@pytest.mark.parametrize(
    ("replies", "name", "expected"),
    per_runtime(
        [
            pytest.param("AWS_LAMBDA_FUNCTION_NAME", "hello"),
            pytest.param("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            pytest.param("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
            pytest.param("AWS_REGION", "eu-west-1"),
            pytest.param("AWS_DEFAULT_REGION", "eu-west-1"),
            pytest.param("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/hello"),
            pytest.param(
                "AWS_EXECUTION_ENV",
                ByLanguage(python="AWS_Lambda_python3.12", nodejs="AWS_Lambda_nodejs20.x"),
                id="AWS_EXECUTION_ENV",
            ),
            pytest.param("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
            pytest.param("LAMBDA_RUNTIME_DIR", "/var/runtime"),
            pytest.param("_HANDLER", "app.handler"),
            pytest.param("TZ", ":UTC"),
            pytest.param("GREETING", "hallo"),  # the user's own environment
        ]
    ),
    indirect=["replies"],
)
def test_environment_variable(replies: Any, name: str, expected: str) -> None:
    assert replies["plain"].json()["environ"].get(name) == expected


@each_runtime
def test_environment_of_the_platform(replies: Any) -> None:
    body = replies["plain"].json()
    environ = body["environ"]
    assert environ["AWS_LAMBDA_RUNTIME_API"] == f"127.0.0.1:{replies['api_port']}"
    assert environ["LAMBDA_TASK_ROOT"] == replies["task_root"]
    assert body["cwd"] == replies["task_root"]
    assert environ["AWS_LAMBDA_LOG_STREAM_NAME"] == body["log_stream_name"]
    assert environ["LANG"]
    assert environ["PATH"]
    # The agent's own settings stay with the agent.
    assert not [name for name in environ if name.startswith("LAMBDALET_")]


@each_runtime
def test_trace_id(replies: Any) -> None:
    assert replies["extra"].json()["environ"]["_X_AMZN_TRACE_ID"] == TRACE
    # Without one from the caller, the agent makes an X-Ray-shaped one.
    made = replies["plain"].json()["environ"]["_X_AMZN_TRACE_ID"]
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Sampled=0", made)
