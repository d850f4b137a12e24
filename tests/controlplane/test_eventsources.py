"""The operator's side of EventSources against a real kube-apiserver + etcd: the Ready condition,
the assignment to a live event dispatcher replica, and sharing the status with the dispatcher.

The tests play the dispatcher: they keep Leases in the dispatcher namespace as its replicas do
(renewed from a thread, deleted on a clean shutdown) and apply the ``Polling`` condition with the
dispatcher's field manager.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from lambdalet.sharding import owner
from tests.controlplane.objects import condition, function
from tests.kit.servers.kube import Cluster, audit_length, audit_writes
from tests.kit.servers.operator import OperatorProcess
from tests.kit.wait import wait_for

pytestmark = pytest.mark.controlplane

DISPATCHER_NAMESPACE = "lambdalet-system"  # the operator's default
OPERATOR_USER = "lambdalet-operator"
LABELS = {"app.kubernetes.io/part-of": "lambdalet", "app.kubernetes.io/component": "dispatcher"}
SELECTOR = ",".join(f"{k}={v}" for k, v in LABELS.items())
RENEW_SECONDS = 2.0


class Dispatchers:
    """Dispatcher replicas as the operator sees them: Leases renewed from a thread."""

    def __init__(self, cluster: Cluster, prefix: str) -> None:
        self.cluster = cluster
        self.prefix = prefix
        self._renewing: set[str] = set()
        self._lease_seconds: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def replica(self, suffix: str) -> str:
        return f"{self.prefix}-{suffix}"

    def join(self, replica: str, lease_seconds: int = 15) -> None:
        self._lease_seconds[replica] = lease_seconds
        self._renew(replica)
        with self._lock:
            self._renewing.add(replica)

    def hang(self, replica: str) -> None:
        """Stop renewing, as a replica that froze or lost the API server would."""
        with self._lock:
            self._renewing.discard(replica)

    def leave(self, replica: str) -> None:
        """A clean shutdown: the replica deletes its Lease."""
        self.hang(replica)
        self.cluster.kubectl(
            "delete", "lease", f"lambdalet-dispatcher-{replica}", "-n", DISPATCHER_NAMESPACE,
            "--ignore-not-found",
        )  # fmt: skip

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)
        clear_leases(self.cluster)

    def _run(self) -> None:
        while not self._stop.wait(RENEW_SECONDS):
            with self._lock:
                replicas = sorted(self._renewing)
            for replica in replicas:
                self._renew(replica)

    def _renew(self, replica: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        lease = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": f"lambdalet-dispatcher-{replica}",
                "namespace": DISPATCHER_NAMESPACE,
                "labels": LABELS,
            },
            "spec": {
                "holderIdentity": replica,
                "leaseDurationSeconds": self._lease_seconds.get(replica, 15),
                "renewTime": now,
            },
        }
        self.cluster.apply([lease], "--server-side", "--field-manager=lambdalet-dispatcher")


def clear_leases(cluster: Cluster) -> None:
    cluster.kubectl("delete", "leases", "-n", DISPATCHER_NAMESPACE, "-l", SELECTOR, "--wait")


@pytest.fixture
def dispatchers(controlplane: Cluster, cp_namespace: str) -> Iterator[Dispatchers]:
    controlplane.kubectl("create", "namespace", DISPATCHER_NAMESPACE, check=False)
    clear_leases(controlplane)
    keeper = Dispatchers(controlplane, cp_namespace[-5:])
    try:
        yield keeper
    finally:
        keeper.close()


def eventsource(
    name: str, function: str = "worker", expression: str = "rate(5 minutes)", **spec: Any
) -> dict[str, Any]:
    return {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": "EventSource",
        "metadata": {"name": name},
        "spec": {"function": {"name": function}, "schedule": {"expression": expression}, **spec},
    }


def wait_reason(
    cluster: Cluster, ns: str, name: str, reason: str, timeout: float = 30, **fields: Any
) -> dict[str, Any]:
    """The EventSource once its Ready condition has ``reason`` for the current generation (and
    its status has ``fields``, e.g. assignedReplica=...)."""

    def reached() -> dict[str, Any] | None:
        source = cluster.get("eventsource", name, "-n", ns)
        ready = condition(source, "Ready")
        status = source.get("status", {})
        fresh = status.get("observedGeneration") == source["metadata"]["generation"]
        matches = all(status.get(key) == value for key, value in fields.items())
        return source if fresh and ready and ready["reason"] == reason and matches else None

    return wait_for(
        reached, timeout, what=f"EventSource {ns}/{name} Ready reason {reason} {fields}"
    )


def apply_polling(
    cluster: Cluster, ns: str, name: str, status: str, reason: str, message: str
) -> None:
    """What the dispatcher does: apply its Polling condition with its own field manager."""
    generation = cluster.get("eventsource", name, "-n", ns)["metadata"]["generation"]
    patch = {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": "EventSource",
        "metadata": {"name": name, "namespace": ns},
        "status": {
            "conditions": [
                {
                    "type": "Polling",
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "observedGeneration": generation,
                }
            ],
        },
    }
    cluster.kubectl(
        "apply", "--server-side", "--subresource=status", "--field-manager=lambdalet-dispatcher",
        "--force-conflicts", "-f", "-", input=json.dumps(patch),
    )  # fmt: skip


def warnings(cluster: Cluster, ns: str, name: str) -> list[str]:
    events = cluster.get(
        "events", "-n", ns, "--field-selector",
        f"involvedObject.kind=EventSource,involvedObject.name={name}",
    )["items"]  # fmt: skip
    return [e["reason"] for e in events if e["type"] == "Warning"]


def printed(cluster: Cluster, ns: str, name: str) -> dict[str, str]:
    """The row ``kubectl get evs`` prints for one EventSource, by column (the CRD's printer
    columns, as the API server serves them in its Table)."""
    header, row = cluster.kubectl("get", "evs", name, "-n", ns).stdout.splitlines()
    # Cells are aligned under their column names; an empty cell is blanks.
    starts = [match.start() for match in re.finditer(r"\S+", header)]
    ends = [*starts[1:], None]
    return {header[a:b].strip(): row[a:b].strip() for a, b in zip(starts, ends, strict=True)}


def test_a_missing_function_reads_function_not_found_until_it_is_created(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess, dispatchers: Dispatchers
) -> None:
    ns = cp_namespace
    controlplane.apply([eventsource("ticks")], "-n", ns)
    source = wait_reason(controlplane, ns, "ticks", "FunctionNotFound")
    ready = condition(source, "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert ready["message"] == (
        f"Function worker does not exist in namespace {ns}; create it or fix spec.function.name"
    )
    assert "assignedReplica" not in source["status"]
    wait_for(lambda: warnings(controlplane, ns, "ticks") == ["FunctionNotFound"], 30, what="event")

    controlplane.apply([function("worker")], "-n", ns)
    source = wait_reason(controlplane, ns, "ticks", "NoDispatcher")
    ready = condition(source, "Ready")
    assert ready is not None
    assert ready["message"] == (
        f"no event dispatcher replica is running in namespace {DISPATCHER_NAMESPACE}; "
        "install the chart's dispatcher (dispatcher.replicas >= 1)"
    )
    assert printed(controlplane, ns, "ticks")["REPLICA"] == ""

    replica = dispatchers.replica("a")
    dispatchers.join(replica)
    source = wait_reason(controlplane, ns, "ticks", "Starting", assignedReplica=replica)
    ready = condition(source, "Ready")
    assert ready is not None
    assert ready["message"] == f"waiting for event dispatcher {replica} to start the source"
    row = printed(controlplane, ns, "ticks")
    assert list(row) == ["NAME", "FUNCTION", "READY", "REPLICA", "AGE"]
    assert (row["NAME"], row["FUNCTION"], row["READY"], row["REPLICA"]) == (
        "ticks", "worker", "False", replica
    )  # fmt: skip

    controlplane.kubectl("delete", "function", "worker", "-n", ns)
    wait_reason(controlplane, ns, "ticks", "FunctionNotFound", assignedReplica=replica)
    # One Warning per new reason: FunctionNotFound, NoDispatcher, FunctionNotFound again.
    wait_for(
        lambda: (
            sorted(warnings(controlplane, ns, "ticks"))
            == ["FunctionNotFound", "FunctionNotFound", "NoDispatcher"]
        ),
        30,
        what="one Warning per new reason",
    )


def test_sources_go_to_the_rendezvous_owner_and_move_when_a_replica_stops_renewing(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess, dispatchers: Dispatchers
) -> None:
    ns = cp_namespace
    names = [f"src{i}" for i in range(12)]
    a, b = dispatchers.replica("a"), dispatchers.replica("b")
    dispatchers.join(a)
    dispatchers.join(b)
    controlplane.apply([function("worker"), *(eventsource(n) for n in names)], "-n", ns)
    owners = {n: owner(ns, n, [a, b]) for n in names}
    assert set(owners.values()) == {a, b}, "pick names that both replicas own some of"
    for n in names:
        wait_reason(controlplane, ns, n, "Starting", assignedReplica=owners[n])

    # b freezes: 15 s after the operator last saw its Lease change, its sources go to a.
    dispatchers.hang(b)
    for n in names:
        wait_reason(controlplane, ns, n, "Starting", timeout=25, assignedReplica=a)

    # b comes back: it takes back exactly its own sources.
    dispatchers.join(b)
    for n in names:
        wait_reason(controlplane, ns, n, "Starting", assignedReplica=owners[n])

    # Both shut down cleanly: no dispatcher at once, nothing assigned. Their Leases last an hour
    # now, so only deleting them can make the replicas go within the wait.
    dispatchers.join(a, lease_seconds=3600)
    dispatchers.join(b, lease_seconds=3600)
    dispatchers.leave(a)
    dispatchers.leave(b)
    for n in names:
        source = wait_reason(controlplane, ns, n, "NoDispatcher", timeout=60)
        assert "assignedReplica" not in source["status"]


def test_ready_follows_the_dispatchers_polling_condition_and_keeps_it(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess, dispatchers: Dispatchers
) -> None:
    ns = cp_namespace
    replica = dispatchers.replica("a")
    dispatchers.join(replica)
    controlplane.apply([function("worker"), eventsource("orders")], "-n", ns)
    wait_reason(controlplane, ns, "orders", "Starting", assignedReplica=replica)

    apply_polling(
        controlplane, ns, "orders", "False", "SourceUnavailable", "redis:6379: connection refused"
    )
    source = wait_reason(controlplane, ns, "orders", "SourceUnavailable")
    ready = condition(source, "Ready")
    assert ready is not None
    assert (ready["status"], ready["message"]) == ("False", "redis:6379: connection refused")
    wait_for(
        lambda: warnings(controlplane, ns, "orders") == ["SourceUnavailable"], 30, what="event"
    )

    apply_polling(controlplane, ns, "orders", "True", "Polling", "scheduled")
    source = wait_reason(controlplane, ns, "orders", "Delivering")
    ready = condition(source, "Ready")
    assert ready is not None
    assert ready["status"] == "True"
    assert replica in ready["message"]
    assert "Function worker" in ready["message"]

    # The operator's next writes (paused, then no dispatcher) leave the dispatcher's condition.
    controlplane.apply([eventsource("orders", enabled=False)], "-n", ns)
    source = wait_reason(controlplane, ns, "orders", "Paused", assignedReplica=replica)
    assert (condition(source, "Ready") or {}).get("status") == "True"
    dispatchers.leave(replica)
    source = wait_reason(controlplane, ns, "orders", "NoDispatcher")
    polling = condition(source, "Polling")
    assert polling is not None
    assert (polling["status"], polling["reason"]) == ("True", "Polling")
    shown = controlplane.get("eventsource", "orders", "-n", ns, "--show-managed-fields")
    managers = {
        entry["manager"]: json.dumps(entry.get("fieldsV1", {}))
        for entry in shown["metadata"]["managedFields"]
        if entry.get("subresource") == "status"
    }
    assert '"k:{\\"type\\":\\"Ready\\"}"' in managers["lambdalet-operator"]
    assert "Polling" not in managers["lambdalet-operator"]
    assert "assignedReplica" not in managers["lambdalet-operator"]  # cleared by leaving it out
    assert '"k:{\\"type\\":\\"Polling\\"}"' in managers["lambdalet-dispatcher"]


def test_a_schedule_the_dispatcher_cannot_read_is_invalid_schedule(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess, dispatchers: Dispatchers
) -> None:
    ns = cp_namespace
    # Passes the CRD's pattern, but EventBridge cron wants exactly one of dom and dow to be "?".
    controlplane.apply(
        [function("worker"), eventsource("noon", expression="cron(0 12 * * * *)")], "-n", ns
    )
    source = wait_reason(controlplane, ns, "noon", "InvalidSchedule")
    ready = condition(source, "Ready")
    assert ready is not None
    assert ready["status"] == "False"
    assert ready["message"].startswith("schedule 'cron(0 12 * * * *)': exactly one of")

    controlplane.apply([eventsource("noon", expression="cron(0 12 * * ? *)")], "-n", ns)
    wait_reason(controlplane, ns, "noon", "NoDispatcher")


def test_restarted_operator_writes_no_eventsource_status(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess, dispatchers: Dispatchers
) -> None:
    if controlplane.audit_log is None:
        pytest.skip("needs the audit log of a bed started by cluster.sh")
    ns = cp_namespace
    a, b = dispatchers.replica("a"), dispatchers.replica("b")
    dispatchers.join(a)
    dispatchers.join(b)
    controlplane.apply(
        [
            function("worker"),
            *(eventsource(f"src{i}") for i in range(4)),
            eventsource("lost", function="missing"),
            eventsource("noon", expression="cron(0 12 * * * *)"),
            eventsource("paused", enabled=False),
            eventsource("polled"),
        ],
        "-n",
        ns,
    )
    for i in range(4):
        wait_reason(
            controlplane, ns, f"src{i}", "Starting", assignedReplica=owner(ns, f"src{i}", [a, b])
        )
    wait_reason(controlplane, ns, "lost", "FunctionNotFound")
    wait_reason(controlplane, ns, "noon", "InvalidSchedule")
    wait_reason(controlplane, ns, "paused", "Paused")
    apply_polling(controlplane, ns, "polled", "True", "Polling", "scheduled")
    wait_reason(controlplane, ns, "polled", "Delivering")
    keys = [(ns, n) for n in ("src0", "src1", "src2", "src3", "lost", "noon", "paused", "polled")]

    operator.stop()
    start = audit_length(controlplane.audit_log)
    marker = len(operator.log())
    operator.start()
    wait_for(
        lambda: operator.settled_after(
            marker, keys, handler="on_eventsource", drained="EventSources idle:"
        ),
        30,
        what="the restarted operator to settle its EventSources",
    )
    writes = [
        w
        for w in audit_writes(controlplane.audit_log, OPERATOR_USER, since_line=start)
        if w["objectRef"].get("namespace") == ns
    ]
    assert writes == [], json.dumps(writes[:3], indent=1)
