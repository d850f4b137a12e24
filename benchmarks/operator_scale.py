"""P7: the operator over 1,000 Functions on a real control plane.

Prints the seconds from applying 1,000 Functions at once until every one has its Deployment and
a Ready=True condition, the operator's peak RSS, and — after restarting the operator with those
Functions in place — how many writes it sends the API server while settling (target: none).

    .venv/bin/python benchmarks/operator_scale.py [--functions N]

Starts and stops its own kube-apiserver + etcd + kube-controller-manager (the `controlplane`
profile of e2e/cluster/cluster.sh) unless LAMBDALET_CONTROLPLANE_KUBECONFIG names one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.kit.paths import REPO
from tests.kit.servers.kube import ClusterScript, audit_length, audit_writes
from tests.kit.servers.operator import OperatorProcess
from tests.kit.wait import wait_for

NAMESPACE = "bench-p7"


def function(name: str) -> dict[str, object]:
    return {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "runtime": "python3.12",
            "handler": "app.handler",
            "code": {"inline": {"app.py": f"def handler(event, context):\n    return '{name}'\n"}},
        },
    }


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def component_pid(name: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv0 = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if argv0.endswith(name.encode()):
                return int(entry.name)
    return None


def create_all(kubeconfig: Path, count: int) -> None:
    """Create the Functions at once: 16 concurrent clients, as a GitOps sync would."""
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(str(kubeconfig)))

    def create(i: int) -> None:
        api.create_namespaced_custom_object(
            "lambdalet.dev", "v1alpha1", NAMESPACE, "functions", function(f"fn{i}")
        )

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(create, range(count)))


def wait_all_ready(kubeconfig: Path, count: int, timeout: float) -> None:
    """Follow the Functions with one watch (polling lists would load the API server)."""
    from kubernetes import client, config, watch

    api = client.CustomObjectsApi(config.new_client_from_config(str(kubeconfig)))
    ready: set[str] = set()
    deadline = time.monotonic() + timeout
    stream = watch.Watch()
    for event in stream.stream(
        api.list_namespaced_custom_object,
        "lambdalet.dev",
        "v1alpha1",
        NAMESPACE,
        "functions",
        timeout_seconds=int(timeout),
    ):
        obj = event["object"]
        conditions = obj.get("status", {}).get("conditions", [])
        name = obj["metadata"]["name"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
            ready.add(name)
        else:
            ready.discard(name)
        if len(ready) == count or time.monotonic() > deadline:
            stream.stop()
    if len(ready) != count:
        raise TimeoutError(f"only {len(ready)} of {count} Functions became Ready")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=1000)
    args = parser.parse_args()
    count: int = args.functions

    script = ClusterScript("controlplane")
    cluster = script.up()
    workdir = Path(tempfile.mkdtemp(prefix="lambdalet-p7-"))
    operator = OperatorProcess(
        cluster.operator_kubeconfig or cluster.kubeconfig, workdir / "op.log"
    )
    try:
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        cluster.wait_established("functions.lambdalet.dev")
        cluster.kubectl("create", "namespace", NAMESPACE)
        operator.start()
        time.sleep(2)  # let the operator finish its initial (empty) listing

        started = time.monotonic()
        create_all(cluster.kubeconfig, count)
        applied = time.monotonic() - started
        wait_all_ready(cluster.kubeconfig, count, 600)
        settled = time.monotonic() - started
        deployments = cluster.get("deployments", "-n", NAMESPACE)["items"]
        if len(deployments) != count:
            raise RuntimeError(f"{len(deployments)} Deployments for {count} Functions")
        assert operator.pid is not None
        rss = peak_rss_mib(operator.pid)
        operator_cpu = cpu_seconds(operator.pid)
        apiserver = component_pid("kube-apiserver")
        apiserver_cpu = cpu_seconds(apiserver) if apiserver else float("nan")

        operator.stop()
        assert cluster.audit_log is not None
        start_line = audit_length(cluster.audit_log)
        marker = len(operator.log())
        restarted = time.monotonic()
        operator.start()
        wait_for(
            lambda: operator.settled_after(marker, [(NAMESPACE, f"fn{i}") for i in range(count)]),
            600,
            interval=0.5,
            what="the restarted operator to settle",
        )
        resettled = time.monotonic() - restarted
        writes = audit_writes(cluster.audit_log, "lambdalet-operator", since_line=start_line)
        assert operator.pid is not None
        restart_rss = peak_rss_mib(operator.pid)

        print(f"P7 functions:                          {count}")
        print(f"P7 create all, 16 clients (s):         {applied:.1f}")
        print(f"P7 apply -> all children + Ready (s):  {settled:.1f}   (target <= 60)")
        print(f"P7 operator peak RSS (MiB):            {rss:.0f}   (target <= 150)")
        print(f"P7 CPU s, operator / kube-apiserver:   {operator_cpu:.0f} / {apiserver_cpu:.0f}")
        print(f"P7 restart -> all handled (s):         {resettled:.1f}")
        print(f"P7 restart peak RSS (MiB):             {restart_rss:.0f}")
        print(f"P7 writes after restart:               {len(writes)}   (target 0)")
        for w in writes[:5]:
            print(f"    {w['verb']} {w['requestURI']}")
        return 0
    finally:
        operator.stop()
        script.down()


if __name__ == "__main__":
    sys.exit(main())
