"""The examples on the real node: the operator deploys each on its runtime image (Python, Node,
`provided`; the agent as PID 1), and an invocation sent to the pod runs the unchanged code.

The activator is not part of this test: the pod is scaled by hand, as the autoscaler would, and
invoked at its own address.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from e2e.harness.cluster import REPO, Cluster
from e2e.harness.operator import OperatorProcess
from e2e.harness.wait import wait_for

pytestmark = pytest.mark.e2e

INVOKE = "/2015-03-31/functions/function/invocations"


@pytest.fixture(scope="module")
def runtime_images(node_cluster: Cluster) -> None:
    subprocess.run(
        [str(REPO / "runtime-images" / "build.sh")], check=True, capture_output=True, timeout=600
    )


HELLO_EVENT = {"rawPath": "/", "queryStringParameters": {"name": "lambdalet"}}


def hello_answer(result: Any) -> None:
    # An API Gateway-style result, from the unchanged hello handlers of examples/.
    assert result["statusCode"] == 200
    assert result["headers"] == {"Content-Type": "application/json"}
    assert json.loads(result["body"]) == {"message": "hello, lambdalet", "requestId": "req-e2e-1"}


def reversed_answer(result: Any) -> None:
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
    operator_on_node: OperatorProcess,
    runtime_images: None,
    example: str,
    event: dict[str, Any],
    check: Callable[[Any], None],
) -> None:
    ns = node_namespace
    node_cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    node_cluster.kubectl(
        "apply", "-n", ns, "-f", str(REPO / "examples" / example / "function.yaml")
    )
    node_cluster.kubectl(
        "wait", "-n", ns, f"fn/{example}", "--for=condition=Ready", "--timeout=60s"
    )
    node_cluster.kubectl(
        "patch", "deployment", f"fn-{example}", "-n", ns, "--subresource=scale",
        "--type=merge", "-p", '{"spec":{"replicas":1}}', "--field-manager=lambdalet-autoscaler",
    )  # fmt: skip

    def serving() -> dict[str, Any] | None:
        fn = node_cluster.get("function", example, "-n", ns)
        active = [c for c in fn["status"]["conditions"] if c["type"] == "Active"]
        return fn if active and active[0]["status"] == "True" else None

    wait_for(serving, 90, what=f"an instance of {example} ready")
    pod = node_cluster.get("pods", "-n", ns, "-l", f"lambdalet.dev/function={example}")["items"][0]
    url = f"http://{pod['status']['podIP']}:8080{INVOKE}"

    reply = httpx.post(url, json=event, headers={"Lambdalet-Request-Id": "req-e2e-1"}, timeout=10)

    assert reply.status_code == 200
    assert "X-Amz-Function-Error" not in reply.headers, reply.text
    check(reply.json())
    logs = node_cluster.kubectl("logs", "-n", ns, pod["metadata"]["name"]).stdout
    assert "START RequestId: req-e2e-1" in logs
    assert "END RequestId: req-e2e-1" in logs
    report = next(
        line for line in logs.splitlines() if line.startswith("REPORT RequestId: req-e2e-1")
    )
    assert "Memory Size: 128 MB" in report
    assert "Init Duration" in report  # the first invocation of a fresh instance
