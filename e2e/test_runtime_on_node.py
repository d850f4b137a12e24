"""The examples on the real node: the operator deploys each on its runtime image (Python, Node,
`provided`; the agent as PID 1), and an invocation through the activator's Invoke API -- with
the Function at zero, so the autoscaler starts its first instance -- runs the unchanged code.
And on each runtime of the API but `provided`, a handler reports the interpreter it runs on:
the image's own, at the version runtime-images/versions.env pins.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from lambdalet.api.function import Runtime
from tests.kit.paths import REPO
from tests.kit.runtimes import expected_version, pinned_versions, version_matches
from tests.kit.servers.activator import ActivatorProcess
from tests.kit.servers.kube import Cluster
from tests.kit.wait import wait_for

pytestmark = pytest.mark.e2e


HELLO_EVENT = {"rawPath": "/", "queryStringParameters": {"name": "lambdalet"}}


def hello_answer(result: Any, request_id: str) -> None:
    # An API Gateway-style result, from the unchanged hello handlers of examples/.
    assert result["statusCode"] == 200
    assert result["headers"] == {"Content-Type": "application/json"}
    assert json.loads(result["body"]) == {"message": "hello, lambdalet", "requestId": request_id}


def reversed_answer(result: Any, request_id: str) -> None:
    assert result == {"reversed": "zero to scale"}


@pytest.mark.parametrize(
    ("example", "event", "check"),
    [
        ("hello-python", HELLO_EVENT, hello_answer),
        ("hello-node", HELLO_EVENT, hello_answer),
        # runtime: provided, the function's own bootstrap speaking the Runtime API
        ("custom-runtime", {"text": "scale to zero"}, reversed_answer),
    ],
)
def test_example_runs_unchanged_on_its_runtime(
    node_cluster: Cluster,
    node_namespace: str,
    activator_on_node: ActivatorProcess,
    runtime_images: None,
    example: str,
    event: dict[str, Any],
    check: Callable[[Any, str], None],
) -> None:
    ns = node_namespace
    node_cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    node_cluster.kubectl(
        "apply", "-n", ns, "-f", str(REPO / "examples" / example / "function.yaml")
    )
    node_cluster.kubectl(
        "wait", "-n", ns, f"fn/{example}", "--for=condition=Ready", "--timeout=60s"
    )
    deployment = node_cluster.get("deployment", f"fn-{example}", "-n", ns)
    assert deployment["spec"]["replicas"] == 0

    reply = httpx.post(
        f"{activator_on_node.url}/2015-03-31/functions/{ns}:{example}/invocations",
        json=event,
        timeout=90,
    )

    assert reply.status_code == 200, reply.text
    assert "X-Amz-Function-Error" not in reply.headers, reply.text
    request_id = reply.headers["x-amzn-requestid"]
    check(reply.json(), request_id)

    # The pod answered before the kubelet reported its container running (the announcement is
    # faster than the pod's status), and a cold start's panic may have started a second pod:
    # wait for the logs of the one that ran it.
    def logs_with_the_request() -> str | None:
        pods = node_cluster.get("pods", "-n", ns, "-l", f"lambdalet.dev/function={example}")
        for pod in pods["items"]:
            name = pod["metadata"]["name"]
            text = node_cluster.kubectl("logs", "-n", ns, name, check=False).stdout
            if f"REPORT RequestId: {request_id}" in text:
                return text
        return None

    logs = wait_for(logs_with_the_request, 30, what=f"log lines of request {request_id}")
    assert f"START RequestId: {request_id}" in logs
    assert f"END RequestId: {request_id}" in logs
    report = next(
        line for line in logs.splitlines() if line.startswith(f"REPORT RequestId: {request_id}")
    )
    assert "Memory Size: 128 MB" in report
    assert "Init Duration" in report  # the first invocation of a fresh instance


# Handlers that report the interpreter they run on, and the runtime Lambda would name for it.
VERSION_HANDLERS = {
    "python": (
        "handler.handler",
        "handler.py",
        "import os, sys\n\n\n"
        "def handler(event, context):\n"
        '    return {"version": sys.version.split()[0], "executable": sys.executable,\n'
        '            "executionEnv": os.environ.get("AWS_EXECUTION_ENV")}\n',
    ),
    "nodejs": (
        "index.handler",
        "index.js",
        "exports.handler = async () => ({ version: process.version.slice(1),\n"
        "  executable: process.execPath, executionEnv: process.env.AWS_EXECUTION_ENV });\n",
    ),
}


def family(runtime: Runtime) -> str:
    return "nodejs" if runtime.startswith("nodejs") else "python"


@pytest.mark.parametrize(
    "runtime", [runtime for runtime in Runtime if runtime is not Runtime.PROVIDED], ids=str
)
def test_each_runtime_image_runs_its_own_interpreter(
    node_cluster: Cluster,
    node_namespace: str,
    activator_on_node: ActivatorProcess,
    runtime_images: None,
    runtime: Runtime,
) -> None:
    ns = node_namespace
    name = "version-" + runtime.value.replace(".", "")
    handler, filename, code = VERSION_HANDLERS[family(runtime)]
    node_cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    node_cluster.apply(
        [
            {
                "apiVersion": "lambdalet.dev/v1alpha1",
                "kind": "Function",
                "metadata": {"name": name},
                "spec": {
                    "runtime": runtime.value,
                    "handler": handler,
                    "timeoutSeconds": 10,
                    "code": {"inline": {filename: code}},
                },
            }
        ],
        "-n",
        ns,
    )
    node_cluster.kubectl("wait", "-n", ns, f"fn/{name}", "--for=condition=Ready", "--timeout=60s")

    reply = httpx.post(
        f"{activator_on_node.url}/2015-03-31/functions/{ns}:{name}/invocations",
        json={},
        timeout=90,
    )

    assert reply.status_code == 200, reply.text
    assert "X-Amz-Function-Error" not in reply.headers, reply.text
    result = reply.json()
    assert version_matches(result["version"], expected_version(runtime, pinned_versions())), result
    suffix = ".x" if family(runtime) == "nodejs" else ""
    assert result["executionEnv"] == f"AWS_Lambda_{runtime.value}{suffix}", result
