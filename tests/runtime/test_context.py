"""What a Python handler sees: every ``context`` field and the Lambda environment variables."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.runtime.harness import free_port, running_agent

HANDLER = """
import os

def handler(event, context):
    cc = context.client_context
    return {
        "aws_request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining": context.get_remaining_time_in_millis(),
        "identity": [
            context.identity.cognito_identity_id,
            context.identity.cognito_identity_pool_id,
        ],
        "client_context": None if cc is None else {
            "client": None if cc.client is None else vars(cc.client),
            "custom": cc.custom,
            "env": cc.env,
        },
        "environ": dict(os.environ),
        "cwd": os.getcwd(),
    }
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
    env = {
        "AWS_LAMBDA_FUNCTION_NAME": "hello",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "AWS_REGION": "eu-west-1",
        "LAMBDALET_TIMEOUT_SECONDS": "7",
        "LAMBDALET_RUNTIME_API_PORT_NUMBER": str(api_port),
        "LAMBDALET_RUNTIME": "python3.12",
        "GREETING": "hallo",
    }
    workdir = tmp_path_factory.mktemp("context")
    with running_agent(agent_binary, workdir, {"app.py": HANDLER}, "app.handler", env) as agent:
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
        ("plain", "aws_request_id", "req-plain"),
        ("extra", "aws_request_id", "req-extra"),
        ("plain", "function_name", "hello"),
        ("plain", "function_version", "$LATEST"),
        ("plain", "invoked_function_arn", "arn:aws:lambda:eu-west-1:000000000000:function:hello"),
        ("plain", "memory_limit_in_mb", 256),
        ("plain", "log_group_name", "/aws/lambda/hello"),
        ("plain", "identity", [None, None]),
        ("extra", "identity", ["eu-west-1:äbc", "eu-west-1:pool"]),
        ("plain", "client_context", None),
        ("extra", "client_context", CLIENT_CONTEXT),
    ],
)
def test_context_field(replies: Any, case: str, field: str, expected: Any) -> None:
    reply = replies[case]
    assert reply.status_code == 200, reply.text
    assert "X-Amz-Function-Error" not in reply.headers
    assert reply.json()[field] == expected


def test_log_stream_name_and_remaining_time(replies: Any) -> None:
    body = replies["plain"].json()
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\].+", body["log_stream_name"])
    # The deadline is 7 s after the invocation was accepted.
    assert 5000 < body["remaining"] <= 7000
    assert isinstance(body["memory_limit_in_mb"], int)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("AWS_LAMBDA_FUNCTION_NAME", "hello"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_REGION", "eu-west-1"),
        ("AWS_DEFAULT_REGION", "eu-west-1"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/hello"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_python3.12"),
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
    environ = replies["plain"].json()["environ"]
    assert environ["AWS_LAMBDA_RUNTIME_API"] == f"127.0.0.1:{replies['api_port']}"
    assert environ["LAMBDA_TASK_ROOT"] == replies["task_root"]
    assert replies["plain"].json()["cwd"] == replies["task_root"]
    assert environ["AWS_LAMBDA_LOG_STREAM_NAME"] == replies["plain"].json()["log_stream_name"]
    assert environ["LANG"]
    assert environ["PATH"]
    # The agent's own settings stay with the agent.
    assert not [name for name in environ if name.startswith("LAMBDALET_")]


def test_trace_id(replies: Any) -> None:
    assert replies["extra"].json()["environ"]["_X_AMZN_TRACE_ID"] == TRACE
    # Without one from the caller, the agent makes an X-Ray-shaped one.
    made = replies["plain"].json()["environ"]["_X_AMZN_TRACE_ID"]
    assert re.fullmatch(r"Root=1-[0-9a-f]{8}-[0-9a-f]{24};Sampled=0", made)
