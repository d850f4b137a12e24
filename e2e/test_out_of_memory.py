"""Out of memory on the real node: a handler that allocates past its Function's ``memoryMiB``
is killed by the kernel (the pod's memory limit), and the invocation answers as Lambda's does:
``X-Amz-Function-Error: Unhandled`` with ``Runtime.OutOfMemory``; the activator counts it as
``oom``, and the next invocation gets a fresh runtime. The first invocation is a cold start,
which the operator writes to ``status.lastColdStartSeconds``.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.kit.servers.activator import ActivatorProcess
from tests.kit.servers.kube import Cluster
from tests.kit.wait import wait_for

pytestmark = pytest.mark.e2e

HANDLER = """
def handler(event, context):
    if event.get("mib"):
        hoard = bytearray(event["mib"] * 1024 * 1024)
        for page in range(0, len(hoard), 4096):  # touch every page: it must be resident
            hoard[page] = 1
    return {"memory": context.memory_limit_in_mb}
"""
MESSAGE = re.compile(r"RequestId: [0-9a-f-]{36} Error: Runtime exited with error: signal: killed")


def manifest(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "memoryMiB": 128,
            "timeoutSeconds": 30,
            "code": {"inline": {"app.py": HANDLER}},
        },
    }


def outcome_count(metrics: str, ns: str, name: str, outcome: str) -> float:
    labels = f'function="{name}",namespace="{ns}",outcome="{outcome}",path="invoke"'
    found = re.search(
        rf"^lambdalet_activator_invocation_outcomes_total\{{{labels}\}} (\S+)$", metrics, re.M
    )
    return float(found[1]) if found else 0.0


def test_allocating_past_memory_mib_is_runtime_out_of_memory(
    node_cluster: Cluster,
    node_namespace: str,
    runtime_images: None,
    activator_on_node: ActivatorProcess,
) -> None:
    ns, name = node_namespace, "hog"
    node_cluster.apply([manifest(name)], "-n", ns)
    node_cluster.kubectl("wait", "-n", ns, f"fn/{name}", "--for=condition=Ready", "--timeout=60s")
    invoke = f"{activator_on_node.url}/2015-03-31/functions/{ns}:{name}/invocations"

    cold = httpx.post(invoke, json={}, timeout=90)  # from zero
    assert cold.status_code == 200, cold.text
    assert cold.json() == {"memory": 128}
    status = wait_for(
        lambda: node_cluster.get("function", name, "-n", ns)["status"].get("lastColdStartSeconds"),
        30,
        what="status.lastColdStartSeconds",
    )
    assert 0 < status < 90

    killed = httpx.post(invoke, json={"mib": 512}, timeout=60)

    assert killed.status_code == 200, killed.text
    assert killed.headers["x-amz-function-error"] == "Unhandled"
    doc = killed.json()
    assert doc["errorType"] == "Runtime.OutOfMemory", doc
    assert MESSAGE.fullmatch(doc["errorMessage"]), doc
    metrics = activator_on_node.metrics()
    assert outcome_count(metrics, ns, name, "oom") == 1
    assert outcome_count(metrics, ns, name, "success") == 1
    # The pod stays; a new runtime takes the next invocation.
    again = httpx.post(invoke, json={}, timeout=60)
    assert again.status_code == 200, again.text
    assert "x-amz-function-error" not in again.headers
