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
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e.harness.cluster import REPO, Cluster, ClusterScript, audit_length, audit_writes
from e2e.harness.operator import OperatorProcess
from e2e.harness.wait import wait_for

NAMESPACE = "bench-p7"
HANDLED = re.compile(r"\[bench-p7/(fn\d+)\] Handler 'on_function' succeeded")


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


def ready_count(cluster: Cluster) -> int:
    functions = cluster.get("functions", "-n", NAMESPACE)["items"]
    deployments = {
        d["metadata"]["name"] for d in cluster.get("deployments", "-n", NAMESPACE)["items"]
    }
    ready = 0
    for f in functions:
        conditions = {c["type"]: c["status"] for c in f.get("status", {}).get("conditions", [])}
        if conditions.get("Ready") == "True" and f"fn-{f['metadata']['name']}" in deployments:
            ready += 1
    return ready


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
        cluster.kubectl("wait", "--for=condition=Established", "crd/functions.lambdalet.dev")
        cluster.kubectl("create", "namespace", NAMESPACE)
        operator.start()
        time.sleep(2)  # let the operator finish its initial (empty) listing

        stream = "\n---\n".join(json.dumps(function(f"fn{i}")) for i in range(count))
        started = time.monotonic()
        cluster.kubectl("create", "-f", "-", input=stream, timeout=600)
        applied = time.monotonic() - started
        wait_for(lambda: ready_count(cluster) == count, 600, interval=1, what="all Ready")
        settled = time.monotonic() - started
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
            lambda: len(set(HANDLED.findall(operator.log()[marker:]))) == count,
            600,
            interval=0.5,
            what="the restarted operator to handle every Function",
        )
        resettled = time.monotonic() - restarted
        time.sleep(3)  # and whatever it would do right after
        writes = audit_writes(cluster.audit_log, "lambdalet-operator", since_line=start_line)
        assert operator.pid is not None
        restart_rss = peak_rss_mib(operator.pid)

        print(f"P7 functions:                          {count}")
        print(f"P7 kubectl create of all (s):          {applied:.1f}")
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
