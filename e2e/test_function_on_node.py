"""A Function on the real node: the operator's pod template is admitted under the `restricted`
Pod Security level, its pods run and serve, and status follows the replicas up and back to zero.

The function's code is its own image here (the bed's HTTP echo server, which answers the agent's
readiness path); the Lambda runtimes bring their own e2e tests.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.harness.cluster import build_image
from tests.kit.servers.kube import Cluster
from tests.kit.servers.operator import OperatorProcess
from tests.kit.wait import wait_for

pytestmark = pytest.mark.e2e

ECHO = Path(__file__).parent / "images" / "http-echo"
IMAGE = "localhost/e2e-http-echo:1"


def _condition(function: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in function["status"]["conditions"] if c["type"] == kind)


def _scale(cluster: Cluster, ns: str, replicas: int) -> None:
    # What the autoscaler does: the scale subresource, under its own field manager.
    cluster.kubectl(
        "patch", "deployment", "fn-echo", "-n", ns, "--subresource=scale", "--type=merge",
        "-p", f'{{"spec":{{"replicas":{replicas}}}}}', "--field-manager=lambdalet-autoscaler",
    )  # fmt: skip


def test_function_pods_run_restricted_and_status_follows_replicas(
    node_cluster: Cluster, node_namespace: str, operator_on_node: OperatorProcess
) -> None:
    build_image(ECHO, ECHO / "Containerfile", IMAGE)
    ns = node_namespace
    node_cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
    node_cluster.apply(
        [
            {
                "apiVersion": "lambdalet.dev/v1alpha1",
                "kind": "Function",
                "metadata": {"name": "echo"},
                "spec": {
                    "runtime": "provided",
                    "code": {"image": {"image": IMAGE, "pullPolicy": "Never"}},
                    "environment": {"GREETING": "hi"},
                },
            }
        ],
        "-n",
        ns,
    )

    def status_is(active: str, reason: str) -> dict[str, Any] | None:
        fn = node_cluster.get("function", "echo", "-n", ns)
        conditions = fn.get("status", {}).get("conditions", [])
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        if ready and any(
            c["type"] == "Active" and c["status"] == active and c["reason"] == reason
            for c in conditions
        ):
            return fn
        return None

    wait_for(lambda: status_is("False", "ScaledToZero"), 30, what="Ready at zero")
    assert node_cluster.get("pods", "-n", ns)["items"] == []

    _scale(node_cluster, ns, 2)
    fn = wait_for(lambda: status_is("True", "Serving"), 60, what="Active=True")
    wait_for(
        lambda: node_cluster.get("function", "echo", "-n", ns)["status"]["readyReplicas"] == 2,
        60,
        what="both instances ready",
    )
    pods = node_cluster.get("pods", "-n", ns, "-l", "lambdalet.dev/function=echo")["items"]
    assert len(pods) == 2
    for pod in pods:
        # Admitted under `restricted`, so the template passed Pod Security admission; it runs.
        assert pod["status"]["phase"] == "Running"
        reply = httpx.get(f"http://{pod['status']['podIP']}:8080/healthz", timeout=5)
        assert reply.status_code == 200
        assert reply.json()["hostname"] == pod["metadata"]["name"]
    assert _condition(fn, "Active")["message"]

    _scale(node_cluster, ns, 0)
    wait_for(lambda: status_is("False", "ScaledToZero"), 60, what="back to zero")
    fn = node_cluster.get("function", "echo", "-n", ns)
    assert fn["status"]["replicas"] == 0
    assert fn["status"]["readyReplicas"] == 0
