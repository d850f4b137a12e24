"""``status.lastColdStartSeconds`` against a real kube-apiserver: a cold start the activator's
proxy measured (a request held until a real agent announced itself) goes out in the activator's
load report, and the operator writes it to the Function's status, once per cold start.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lambdalet.activator.metrics import Metrics
from lambdalet.activator.model import FunctionConfig
from lambdalet.activator.proxy import Proxy
from lambdalet.activator.stats import Reporter
from lambdalet.activator.upstream import Pool
from lambdalet.contracts.keys import Key
from tests.controlplane.test_autoscaler import create, function
from tests.kit.servers.agent import StartAgent
from tests.kit.servers.kube import Cluster, audit_length, audit_writes
from tests.kit.servers.operator import OperatorProcess
from tests.kit.wait import wait_for

pytestmark = pytest.mark.controlplane

TIMEOUT = 30.0
OPERATOR_USER = "lambdalet-operator"


def stored(cluster: Cluster, ns: str, name: str) -> dict[str, Any]:
    status: dict[str, Any] = cluster.get("function", name, "-n", ns).get("status", {})
    return status


def status_writes(cluster: Cluster, ns: str, name: str, since: int) -> list[dict[str, Any]]:
    assert cluster.audit_log is not None
    return [
        write
        for write in audit_writes(cluster.audit_log, OPERATOR_USER, since_line=since)
        if write["objectRef"].get("namespace") == ns
        and write["objectRef"].get("name") == name
        and write["objectRef"].get("subresource") == "status"
    ]


async def test_a_cold_start_the_activator_measured_shows_in_the_status(
    controlplane: Cluster,
    cp_namespace: str,
    operator: OperatorProcess,
    start_agent: StartAgent,
) -> None:
    ns = cp_namespace
    create(controlplane, ns, function("cold"))
    # The operator knows the Function once it has written its status (as it has in a cluster,
    # where the pod that starts cold is of the Deployment it made): a report about a Function it
    # does not know yet is ignored, which a loaded machine could otherwise make of this one.
    wait_for(
        lambda: stored(controlplane, ns, "cold").get("observedGeneration") == 1,
        TIMEOUT,
        what="the operator's first status of the Function",
    )
    assert "lastColdStartSeconds" not in stored(controlplane, ns, "cold")

    key: Key = (ns, "cold")
    poked = asyncio.Event()  # the proxy pokes the autoscaler when it holds a request at zero
    proxy = Proxy(Pool(), poke=lambda _: poked.set(), metrics=Metrics())
    proxy.set_config(FunctionConfig(namespace=ns, name="cold"))
    measured: dict[Key, float] = {}

    def cold_starts() -> dict[Key, float]:
        taken = proxy.cold_starts()
        measured.update(taken)
        return taken

    # The report carries the proxy's cold starts but no load: load would make the autoscaler
    # scale the Deployment, and the status writes that follow would blur the count below.
    reporter = Reporter(
        operator.autoscaler_url, "activator-a", snapshot=lambda _: [], cold_starts=cold_starts
    )
    try:
        # A request for the Function at zero is held until a pod announces itself.
        held = asyncio.create_task(proxy.invoke(key, b"{}", request_id="cold-1"))
        async with asyncio.timeout(TIMEOUT):
            await poked.wait()
        agent = start_agent({"app.py": "def handler(event, context):\n    return 'warm'\n"})
        assert proxy.announce(key, "127.0.0.1", agent.port)
        assert (await held).body == b'"warm"'

        await reporter.report(1.0)
        assert reporter.failures == 0
        figure = round(measured[key], 2)
        assert figure > 0
        wait_for(
            lambda: stored(controlplane, ns, "cold").get("lastColdStartSeconds") == figure,
            TIMEOUT,
            what=f"lastColdStartSeconds {figure}",
        )

        # Warm requests report no cold start and write nothing.
        await proxy.invoke(key, b"{}", request_id="warm-1")
        await reporter.report(1.0)
        assert measured == {key: measured[key]}
        if controlplane.audit_log is None:
            return
        # A second activator that held requests of the same cold start reports it too: the
        # same figure to 10 ms writes nothing; the next cold start (2.5 s) writes once.
        marker = audit_length(controlplane.audit_log)
        other = Reporter(
            operator.autoscaler_url,
            "activator-b",
            snapshot=lambda _: [],
            cold_starts=lambda: {key: measured[key]},
        )
        try:
            await other.report(1.0)
        finally:
            await other.aclose()
        later = Reporter(
            operator.autoscaler_url,
            "activator-a",
            snapshot=lambda _: [],
            cold_starts=lambda: {key: 2.5},
        )
        try:
            await later.report(1.0)
        finally:
            await later.aclose()
        wait_for(
            lambda: stored(controlplane, ns, "cold").get("lastColdStartSeconds") == 2.5,
            TIMEOUT,
            what="lastColdStartSeconds 2.5",
        )
        writes = status_writes(controlplane, ns, "cold", marker)
        assert len(writes) == 1, [
            (w["verb"], w.get("userAgent"), w["requestReceivedTimestamp"], w["responseStatus"])
            for w in writes
        ]
        # The reconciler keeps the figure and its own conditions.
        status = stored(controlplane, ns, "cold")
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert (ready["status"], status["lastColdStartSeconds"]) == ("True", 2.5)
        header, row = controlplane.kubectl(
            "get", "fn", "cold", "-n", ns, "-o", "wide"
        ).stdout.split("\n")[:2]
        assert dict(zip(header.split(), row.split(), strict=True))["COLD-START"] == "2.5"
    finally:
        await reporter.aclose()
        proxy.close()
