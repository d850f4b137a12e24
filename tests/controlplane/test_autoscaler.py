"""The autoscaler against a real kube-apiserver + etcd: pokes and stats posted to the operator's
endpoint, as activators will, scale Functions' Deployments through the scale subresource.

No kubelet runs on this bed, so pods never become ready: a poked Function stays at one pod for a
stable window (the poke's hold), and load reported by stats is the only way past that.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from tests.controlplane import objects
from tests.kit.servers.kube import Cluster, audit_length, audit_writes
from tests.kit.servers.operator import OperatorProcess
from tests.kit.wait import wait_for

pytestmark = pytest.mark.controlplane

TIMEOUT = 30.0


def function(name: str, **scaling: Any) -> dict[str, Any]:
    return objects.function(name, **({"scaling": scaling} if scaling else {}))


def create(cluster: Cluster, ns: str, *functions: dict[str, Any]) -> None:
    """Apply ``functions`` and wait until each has its Deployment and reads Ready."""
    cluster.apply(list(functions), "-n", ns)
    for fn in functions:
        name = fn["metadata"]["name"]

        def ready(name: str = name) -> bool:
            got = cluster.get("function", name, "-n", ns)
            conditions = got.get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

        wait_for(ready, TIMEOUT, what=f"Function {ns}/{name} Ready")


def replicas(cluster: Cluster, ns: str, name: str) -> int:
    count: int = cluster.get("deployment", f"fn-{name}", "-n", ns)["spec"]["replicas"]
    return count


@pytest.fixture
def endpoint(operator: OperatorProcess) -> Iterator[httpx.Client]:
    """An HTTP client on the operator's autoscaler endpoint, once it answers."""
    with httpx.Client(base_url=operator.autoscaler_url, timeout=5.0) as http:

        def healthy() -> bool:
            return http.get("/healthz").status_code == 200

        wait_for(healthy, TIMEOUT, what="the autoscaler endpoint")
        yield http


def scaled_lines(operator: OperatorProcess, ns: str, name: str, since: int = 0) -> list[str]:
    return re.findall(rf"scaled {ns}/{name} from .*", operator.log()[since:])


def test_a_poke_scales_from_zero_at_once_and_only_once(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess, endpoint: httpx.Client
) -> None:
    ns = cp_namespace
    create(controlplane, ns, function("cold"), function("other"))
    assert replicas(controlplane, ns, "cold") == 0
    marker = len(operator.log())

    # Watch the Deployment, poke once the watch is established, time until the count shows.
    api_client = k8s_config.new_client_from_config(str(controlplane.kubeconfig))
    watcher = k8s_watch.Watch()
    poked_at = None
    latency = None
    try:
        for event in watcher.stream(
            k8s_client.AppsV1Api(api_client).list_namespaced_deployment,
            ns,
            field_selector="metadata.name=fn-cold",
            timeout_seconds=int(TIMEOUT),
        ):
            if poked_at is None:  # the first event: the watch is established
                poked_at = time.perf_counter()
                response = endpoint.post("/v1/poke", json={"namespace": ns, "name": "cold"})
                assert response.status_code == 202
            elif event["object"].spec.replicas == 1:
                latency = time.perf_counter() - poked_at
                break
    finally:
        watcher.stop()
        api_client.close()
    assert latency is not None, "no scale to 1 within the watch"

    # A second poke while the first has not produced a ready pod writes nothing; a poke for
    # another Function behind it shows the loop has gone past it.
    assert endpoint.post("/v1/poke", json={"namespace": ns, "name": "cold"}).status_code == 202
    assert endpoint.post("/v1/poke", json={"namespace": ns, "name": "other"}).status_code == 202
    wait_for(lambda: replicas(controlplane, ns, "other") == 1, TIMEOUT, what="other at 1")
    lines = scaled_lines(operator, ns, "cold", since=marker)
    assert len(lines) == 1, lines
    # Scaled by the poke itself, not by a later tick: the reason says so. (How fast is a figure
    # for benchmarks/scale_from_zero.py, not a bound for a test on a shared machine.)
    assert "from 0 to 1: poke" in lines[0]
    in_operator = re.search(r"([\d.]+) ms after the poke", lines[0])
    print(
        f"\npoke -> scale 0->1 visible in a watch: {latency * 1000:.1f} ms; "
        f"poke -> PATCH answered, in the operator: {in_operator[1] if in_operator else '?'} ms"
    )

    # spec.replicas belongs to the autoscaler's field manager, written through the scale
    # subresource; the operator's own applies do not hold it.
    deployment = json.loads(
        controlplane.kubectl(
            "get", "deployment", "fn-cold", "-n", ns, "-o", "json", "--show-managed-fields"
        ).stdout
    )
    owners = [
        (entry["manager"], entry.get("subresource", ""), entry["operation"])
        for entry in deployment["metadata"]["managedFields"]
        if "f:replicas" in entry.get("fieldsV1", {}).get("f:spec", {})
    ]
    assert owners == [("lambdalet-autoscaler", "scale", "Apply")]


def test_stats_scale_up_and_idle_scales_back_to_zero(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess, endpoint: httpx.Client
) -> None:
    ns = cp_namespace
    create(controlplane, ns, function("busy", maxScale=20, scaleToZeroAfterSeconds=0))
    report = {
        "activator": "activator-test",
        "functions": [
            {"namespace": ns, "name": "busy", "inFlight": 7},
            {"namespace": ns, "name": "nobody", "inFlight": 100},  # unknown: ignored
        ],
    }
    sent = time.monotonic()
    assert endpoint.post("/v1/stats", json=report).status_code == 204
    bad = endpoint.post("/v1/stats", json={"activator": "a", "functions": [{"name": "x"}]})
    assert bad.status_code == 400
    assert "inFlight must be a finite number" in bad.json()["error"]

    # 7 in flight at 0.7 per pod (target 1, 70 % utilisation).
    wait_for(lambda: replicas(controlplane, ns, "busy") == 10, 10, interval=0.1, what="10 pods")
    up = time.monotonic() - sent

    # No more reports: idle once a whole panic window (6 s) has no traffic, then down by at
    # most half per tick.
    seen = [10]

    def at_zero() -> bool:
        count = replicas(controlplane, ns, "busy")
        if count != seen[-1]:
            seen.append(count)
        return count == 0

    wait_for(at_zero, TIMEOUT, interval=0.1, what="busy back at 0")
    down = time.monotonic() - sent
    print(f"\nstats 7 in flight -> 10 pods after {up:.2f} s; back at 0 {down:.1f} s after; {seen}")
    assert all(later < earlier for earlier, later in itertools.pairwise(seen))
    assert down >= 6.0
    lines = scaled_lines(operator, ns, "busy")
    steps = [re.findall(r"from (\d+) to (\d+)", line)[0] for line in lines]
    assert steps == [("0", "10"), ("10", "5"), ("5", "2"), ("2", "1"), ("1", "0")], lines
    assert "from 1 to 0: scale-to-zero" in lines[-1]


def test_a_restarted_operator_leaves_right_counts_alone(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess, endpoint: httpx.Client
) -> None:
    ns = cp_namespace
    create(controlplane, ns, function("idle"), function("kept", minScale=2), function("byhand"))
    controlplane.kubectl(
        "scale", "deployment", "fn-byhand", "-n", ns, "--replicas=3"
    )  # a person, not the autoscaler
    wait_for(lambda: replicas(controlplane, ns, "byhand") == 3, TIMEOUT, what="byhand at 3")
    counts = {"idle": 0, "kept": 2, "byhand": 3}
    assert {name: replicas(controlplane, ns, name) for name in counts} == counts

    operator.stop()
    start = audit_length(controlplane.audit_log) if controlplane.audit_log else 0
    marker = len(operator.log())
    operator.start()
    wait_for(
        lambda: operator.settled_after(marker, [(ns, name) for name in counts]),
        TIMEOUT,
        what="the restarted operator to settle",
    )
    time.sleep(3)  # three autoscaler ticks over every Function (a negative check needs time)

    assert "scaled " + ns not in operator.log()[marker:]
    assert {name: replicas(controlplane, ns, name) for name in counts} == counts
    if controlplane.audit_log:
        scale_writes = [
            w
            for w in audit_writes(controlplane.audit_log, "lambdalet-operator", since_line=start)
            if w["objectRef"].get("namespace") == ns
        ]
        assert scale_writes == []
