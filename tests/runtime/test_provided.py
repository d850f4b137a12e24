"""``provided`` runtimes: any Runtime API client works under the agent, not only Lambdalet's own.

The clients here are a Python script speaking raw HTTP over a socket (it also probes the Runtime
API's error answers) and a shell script using curl.
"""

from __future__ import annotations

import base64
import json
import shutil
import sys
import time
from typing import Any

import pytest

from tests.kit.servers.agent import StartAgent

RAW_CLIENT = f"""#!{sys.executable}
import json
import os
import socket

HOST, PORT = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")


def call(method, path, body=b""):
    with socket.create_connection((HOST, int(PORT))) as s:
        head = (
            f"{{method}} /2018-06-01/runtime{{path}} HTTP/1.1\\r\\nHost: {{HOST}}\\r\\n"
            f"Content-Length: {{len(body)}}\\r\\nConnection: close\\r\\n\\r\\n"
        )
        s.sendall(head.encode() + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, payload = data.partition(b"\\r\\n\\r\\n")
    lines = head.decode().split("\\r\\n")
    headers = {{}}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, payload


previous = None
while True:
    status, headers, event = call("GET", "/invocation/next")
    request_id = headers["lambda-runtime-aws-request-id"]
    busy = call("GET", "/invocation/next")
    unknown = call("POST", "/invocation/no-such-request/response", b"{{}}")
    reply = {{
        "event": json.loads(event),
        "headers": {{k: v for k, v in headers.items() if k.startswith(("lambda-", "content-"))}},
        "busy": [busy[0], json.loads(busy[2])],
        "unknown": [unknown[0], json.loads(unknown[2])],
        "previous": previous,
    }}
    first = call("POST", f"/invocation/{{request_id}}/response", json.dumps(reply).encode())
    second = call("POST", f"/invocation/{{request_id}}/response", b'"again"')
    previous = [first[0], second[0], json.loads(second[2])]
"""

CURL_CLIENT = """#!/bin/sh
set -eu
api="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
headers="$(mktemp)"
while true; do
    event="$(curl -sS -D "$headers" "$api/invocation/next")"
    id="$(grep -i '^lambda-runtime-aws-request-id:' "$headers" | cut -d' ' -f2 | tr -d '\\r')"
    curl -sS -o /dev/null -X POST --data-binary "{\\"shell\\": true, \\"event\\": $event}" \\
        "$api/invocation/$id/response"
done
"""

INIT_ERROR_CLIENT = f"""#!{sys.executable}
import json
import os
import urllib.request

error = {{"errorMessage": "CONFIG_URL is not set", "errorType": "Custom.ConfigMissing"}}
urllib.request.urlopen(urllib.request.Request(
    f"http://{{os.environ['AWS_LAMBDA_RUNTIME_API']}}/2018-06-01/runtime/init/error",
    data=json.dumps(error).encode(),
    headers={{"Lambda-Runtime-Function-Error-Type": "Custom.ConfigMissing"}},
    method="POST",
))
raise SystemExit(1)
"""

PROVIDED = {"LAMBDALET_RUNTIME": "provided"}
INVALID_REQUEST_ID = {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"}


def test_raw_http_client_and_runtime_api_headers(start_agent: StartAgent) -> None:
    # No LAMBDALET_BOOTSTRAP: a provided runtime runs $LAMBDA_TASK_ROOT/bootstrap.
    agent = start_agent({"bootstrap": RAW_CLIENT}, env=PROVIDED)
    client_context = {"custom": {"k": "v"}, "env": {}, "client": {}}
    cognito = {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
    trace = "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1"

    sent_ms = int(time.time() * 1000)
    first = agent.invoke(
        {"n": 1},
        headers={
            "Lambdalet-Request-Id": "raw-1",
            "X-Amzn-Trace-Id": trace,
            "X-Amz-Client-Context": base64.b64encode(json.dumps(client_context).encode()).decode(),
            "Lambdalet-Cognito-Identity": json.dumps(cognito),
        },
    )
    received_ms = int(time.time() * 1000)
    second = agent.invoke({"n": 2}, headers={"Lambdalet-Request-Id": "raw-2"})

    assert first.status_code == 200, first.text
    body: dict[str, Any] = first.json()
    headers = body["headers"]
    assert body["event"] == {"n": 1}
    assert headers["lambda-runtime-aws-request-id"] == "raw-1"
    assert headers["content-type"] == "application/json"
    assert sent_ms + 3000 <= int(headers["lambda-runtime-deadline-ms"]) <= received_ms + 3000
    assert headers["lambda-runtime-invoked-function-arn"] == (
        "arn:aws:lambda:us-east-1:000000000000:function:hello"
    )
    assert headers["lambda-runtime-trace-id"] == trace
    assert json.loads(headers["lambda-runtime-client-context"]) == client_context
    assert json.loads(headers["lambda-runtime-cognito-identity"]) == cognito
    # Asking for more work before answering, or answering an unknown id, is refused.
    assert body["busy"][0] == 403
    assert body["busy"][1]["errorType"] == "InvalidStateTransition"
    assert body["unknown"] == [400, INVALID_REQUEST_ID]

    later: dict[str, Any] = second.json()
    assert "lambda-runtime-client-context" not in later["headers"]
    assert "lambda-runtime-cognito-identity" not in later["headers"]
    # The first invocation's response was taken (202); a second one for it was refused.
    assert later["previous"] == [202, 400, INVALID_REQUEST_ID]


def test_shell_client_with_curl(start_agent: StartAgent) -> None:
    assert shutil.which("curl"), "this test needs curl (Debian package curl)"
    agent = start_agent({"bootstrap": CURL_CLIENT}, env=PROVIDED)

    replies = [agent.invoke({"n": n}).json() for n in range(3)]

    assert replies == [{"shell": True, "event": {"n": n}} for n in range(3)]


def test_init_error_posted_by_a_custom_runtime(start_agent: StartAgent) -> None:
    agent = start_agent({"bootstrap": INIT_ERROR_CLIENT}, env=PROVIDED, wait_ready=False)

    health = agent.wait_health("init_error")
    reply = agent.invoke({})

    error = {"errorMessage": "CONFIG_URL is not set", "errorType": "Custom.ConfigMissing"}
    assert health["error"] == error
    assert reply.status_code == 502
    assert reply.json() == error


@pytest.mark.parametrize(
    ("files", "env", "error_type", "message"),
    [
        (
            {"bootstrap": "#!/bin/sh\nexit 2\n"},
            {},
            "Runtime.ExitError",
            "Runtime exited with error: exit status 2",
        ),
        (
            {},
            {"LAMBDALET_BOOTSTRAP": "/nonexistent/bootstrap"},
            "Runtime.InvalidEntrypoint",
            "/nonexistent/bootstrap",
        ),
        (
            {"bootstrap": "not a script, and not executable\n"},
            {},
            "Runtime.InvalidEntrypoint",
            "bootstrap",
        ),
    ],
)
def test_runtime_that_cannot_start(
    start_agent: StartAgent,
    files: dict[str, str],
    env: dict[str, str],
    error_type: str,
    message: str,
) -> None:
    agent = start_agent(files, env={**PROVIDED, **env}, wait_ready=False)

    health = agent.wait_health("init_error")
    reply = agent.invoke({})

    assert health["error"]["errorType"] == error_type
    assert message in health["error"]["errorMessage"]
    assert reply.status_code == 502
    assert reply.json()["errorType"] == error_type
