"""Scale to zero on the real node: a Function at zero answers its first request through the
activator, scales up under concurrent load, and goes back to zero when idle.

The operator (with its autoscaler) and the activator run as processes in the node's namespace;
the function pods announce themselves to the activator's internal port at the node's address.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from tests.kit.servers.activator import ActivatorProcess
from tests.kit.servers.kube import Cluster
from tests.kit.wait import wait_for

pytestmark = pytest.mark.e2e

HANDLER = """
import json, time

def handler(event, context):
    path = event.get("rawPath", "/")
    if path.startswith("/sleep/"):
        time.sleep(float(path.split("/")[2]))
    return {"statusCode": 200, "body": json.dumps({"path": path, "id": context.aws_request_id})}
"""


def function_manifest(name: str, *, max_scale: int, idle_seconds: int) -> dict[str, Any]:
    return {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "timeoutSeconds": 10,
            "code": {"inline": {"app.py": HANDLER}},
            "scaling": {"maxScale": max_scale, "scaleToZeroAfterSeconds": idle_seconds},
        },
    }


@pytest.fixture
def function(node_cluster: Cluster, node_namespace: str, runtime_images: None) -> Any:
    def create(name: str, **kwargs: Any) -> str:
        node_cluster.apply([function_manifest(name, **kwargs)], "-n", node_namespace)
        node_cluster.kubectl(
            "wait", "-n", node_namespace, f"fn/{name}", "--for=condition=Ready", "--timeout=60s"
        )
        return name

    return create


def replicas(cluster: Cluster, namespace: str, name: str) -> int:
    deployment = cluster.get("deployment", f"fn-{name}", "-n", namespace)
    return int(deployment["spec"].get("replicas") or 0)


def test_first_request_scales_from_zero_and_idle_returns_to_zero(
    node_cluster: Cluster,
    node_namespace: str,
    activator_on_node: ActivatorProcess,
    function: Any,
) -> None:
    ns = node_namespace
    name = function("cold", max_scale=3, idle_seconds=0)
    assert replicas(node_cluster, ns, name) == 0

    started = time.monotonic()
    reply = httpx.get(f"{activator_on_node.url}/fn/{ns}/{name}/hello", timeout=60)
    cold = time.monotonic() - started

    assert reply.status_code == 200, reply.text
    assert reply.json()["path"] == "/hello"
    assert replicas(node_cluster, ns, name) >= 1
    scale = node_cluster.get("deployment", f"fn-{name}", "-n", ns, "--show-managed-fields")
    managers = {
        entry["manager"]
        for entry in scale["metadata"]["managedFields"]
        if "f:replicas" in str(entry.get("fieldsV1", {}))
    }
    assert "lambdalet-autoscaler" in managers
    warm_started = time.monotonic()
    assert httpx.get(f"{activator_on_node.url}/fn/{ns}/{name}/", timeout=10).status_code == 200
    warm = time.monotonic() - warm_started
    print(f"cold start through the activator {cold:.2f} s, warm {warm * 1000:.1f} ms")
    assert "lambdalet_activator_cold_starts_total" in activator_on_node.metrics()

    # Idle: scaleToZeroAfterSeconds 0 means one panic window (6 s) without traffic.
    wait_for(lambda: replicas(node_cluster, ns, name) == 0, 60, what="scale back to zero")
    wait_for(
        lambda: (
            not node_cluster.get("pods", "-n", ns, "-l", f"lambdalet.dev/function={name}")["items"]
        ),
        60,
        what="the last pod to go",
    )
    # And it stays there: no flapping back up on the memory of the earlier load.
    time.sleep(5)
    assert replicas(node_cluster, ns, name) == 0
    function_status = node_cluster.get("function", name, "-n", ns)["status"]
    active = next(c for c in function_status["conditions"] if c["type"] == "Active")
    assert active["status"] == "False"


def test_burst_of_200_on_a_function_at_zero_has_no_errors_and_scales_up(
    node_cluster: Cluster,
    node_namespace: str,
    activator_on_node: ActivatorProcess,
    function: Any,
) -> None:
    ns = node_namespace
    name = function("burst", max_scale=4, idle_seconds=30)
    assert replicas(node_cluster, ns, name) == 0

    async def burst() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=120, limits=limits) as client:
            return await asyncio.gather(
                *(
                    client.get(f"{activator_on_node.url}/fn/{ns}/{name}/sleep/0.2")
                    for _ in range(200)
                )
            )

    started = time.monotonic()
    responses = asyncio.run(burst())
    elapsed = time.monotonic() - started

    statuses = [r.status_code for r in responses]
    assert statuses == [200] * 200, {s: statuses.count(s) for s in set(statuses)}
    assert len({r.json()["id"] for r in responses}) == 200
    # 200 held requests at one per instance: the autoscaler panics to maxScale.
    assert replicas(node_cluster, ns, name) == 4
    print(f"0 -> 200 concurrent requests: all 200 OK in {elapsed:.1f} s")
