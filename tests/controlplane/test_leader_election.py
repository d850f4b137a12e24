"""Operator high availability against a real kube-apiserver: of two replicas one works (holds
Lease lambdalet-operator), the other waits; killing the leader hands over to the other, which
then does the work; a clean shutdown hands over at once."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.controlplane.test_operator import function, wait_ready
from tests.kit.servers.kube import Cluster, fresh_namespace
from tests.kit.servers.operator import OperatorProcess
from tests.kit.wait import wait_for

pytestmark = pytest.mark.controlplane


@pytest.fixture
def ha_namespace(crds: Cluster) -> Iterator[str]:
    """The replicas' namespace (the session's own operator, cluster-wide, serves it too: the
    tests read the replicas' own logs for who did the work)."""
    yield from fresh_namespace(crds, f"ha-{uuid.uuid4().hex[:6]}")


def replica(cluster: Cluster, namespace: str, name: str, logs: Path) -> OperatorProcess:
    return OperatorProcess(
        cluster.operator_kubeconfig or cluster.kubeconfig,
        logs / f"operator-{name}.log",
        env={
            "LAMBDALET_NAMESPACES": namespace,
            "LAMBDALET_LEADER_ELECTION_NAMESPACE": namespace,
            "LAMBDALET_POD_NAME": name,
        },
    )


def holder(cluster: Cluster, namespace: str) -> str:
    lease = cluster.get("lease", "lambdalet-operator", "-n", namespace)
    return str(lease["spec"].get("holderIdentity") or "")


def stamp(lease: dict[str, Any], field: str) -> float:
    """A time the replicas wrote into the Lease (a MicroTime), in seconds."""
    return datetime.fromisoformat(lease["spec"][field]).timestamp()


def test_one_replica_works_and_the_other_takes_over(
    crds: Cluster, ha_namespace: str, tmp_path: Path
) -> None:
    ns = ha_namespace
    a = replica(crds, ns, "replica-a", tmp_path)
    b = replica(crds, ns, "replica-b", tmp_path)
    a.start()
    try:
        wait_for(lambda: "replica-a leads" in a.log(), 30, what="replica-a to lead")
        b.start()
        wait_for(lambda: "replica-b waits: replica-a leads" in b.log(), 30, what="b to wait")

        crds.apply([function("first")], "-n", ns)
        wait_ready(crds, ns, "first")
        wait_for(lambda: f"[{ns}/first] Handler 'on_function'" in a.log(), 30, what="a to work")
        assert "Handler 'on_function'" not in b.log()  # the follower did nothing

        # The leader dies without a word: the follower takes over once the Lease runs out.
        assert a._process is not None
        a._process.send_signal(signal.SIGKILL)
        a._process.wait(10)
        last_renewed = stamp(crds.get("lease", "lambdalet-operator", "-n", ns), "renewTime")
        wait_for(lambda: holder(crds, ns) == "replica-b", 60, what="replica-b to take the Lease")
        taken = stamp(crds.get("lease", "lambdalet-operator", "-n", ns), "acquireTime")
        # By the Lease's own times, not by how fast this test polls: not before the 15 s lease
        # ran out, and then within a look or two (2 s apart), with room for a busy machine.
        assert 15 <= taken - last_renewed <= 30, (last_renewed, taken)
        crds.apply([function("second")], "-n", ns)
        wait_ready(crds, ns, "second")
        wait_for(
            lambda: f"[{ns}/second] Handler 'on_function'" in b.log(),
            30,
            what="the new leader to handle the new Function",
        )
        lease = crds.get("lease", "lambdalet-operator", "-n", ns)
        assert lease["spec"]["leaseTransitions"] == 1

        # A clean shutdown gives the Lease up: a new replica leads within a retry or two.
        b.stop()
        assert holder(crds, ns) == ""
        c = replica(crds, ns, "replica-c", tmp_path)
        c.start()
        try:
            wait_for(lambda: "replica-c leads" in c.log(), 20, what="replica-c to lead")
            # At its first look, not after watching b's Lease run out (15 s): c never saw b lead.
            assert "replica-c waits: replica-b" not in c.log()
        finally:
            c.stop()
    finally:
        a.stop()
        b.stop()
