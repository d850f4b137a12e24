"""The test bed's own figures, the baseline that cold-start numbers are compared against.

    .venv/bin/python benchmarks/bed.py [--cold] [--pods 20]

Prints: (with --cold) the binary build time from empty Go caches; the cached bring-up time,
start -> node Ready and start -> CoreDNS ready; and pod create -> Ready for a cached image,
p50/p99 over N pods, measured from inside the node's network namespace with a watch.
Needs the machine to itself (no node cluster up).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from e2e.harness.cluster import build_image
from tests.kit.paths import REPO
from tests.kit.servers.kube import SCRIPT

BUILD = REPO / "e2e" / "cluster" / "build.sh"
ECHO = REPO / "e2e" / "images" / "http-echo"
IMAGE = "localhost/e2e-http-echo:1"


def cold_build() -> float:
    with tempfile.TemporaryDirectory(prefix="lambdalet-cold-") as scratch:
        env = {
            **os.environ,
            "LAMBDALET_CACHE": scratch,
            "GOMODCACHE": f"{scratch}/gomod",
            "GOCACHE": f"{scratch}/gocache",
        }
        started = time.monotonic()
        subprocess.run([str(BUILD)], env=env, check=True, capture_output=True)
        elapsed = time.monotonic() - started
        subprocess.run(["chmod", "-R", "u+w", scratch], check=False)  # Go's read-only mod cache
    return elapsed


def bring_up() -> tuple[float, float]:
    """Seconds from `cluster.sh up` to node Ready, and to the whole bed ready (CoreDNS up)."""
    subprocess.run([str(BUILD)], check=True, capture_output=True)
    started = time.monotonic()
    node_ready = None
    process = subprocess.Popen([str(SCRIPT), "up"], stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    for line in process.stderr:
        if node_ready is None and "CoreDNS" in line:  # printed right after the node is Ready
            node_ready = time.monotonic() - started
    if process.wait() != 0:
        raise RuntimeError("cluster.sh up failed")
    return node_ready or float("nan"), time.monotonic() - started


def pod_readiness(count: int) -> list[float]:
    """Runs inside the node namespace: create pods one by one, time create -> Ready by watch."""
    from kubernetes import client, config, watch

    config.load_kube_config()
    core = client.CoreV1Api()
    namespace = "bench-bed"
    core.create_namespace({"metadata": {"name": namespace}})
    timings = []
    try:
        for i in range(count):
            name = f"echo-{i}"
            pod = {
                "metadata": {"name": name, "labels": {"bench": "bed"}},
                "spec": {
                    "containers": [
                        {
                            "name": "echo",
                            "image": IMAGE,
                            "imagePullPolicy": "Never",
                            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                        }
                    ]
                },
            }
            stream = watch.Watch()
            started = time.monotonic()
            core.create_namespaced_pod(namespace, pod)
            for event in stream.stream(
                core.list_namespaced_pod,
                namespace,
                field_selector=f"metadata.name={name}",
                timeout_seconds=60,
            ):
                conditions = event["object"].status.conditions or []
                if any(c.type == "Ready" and c.status == "True" for c in conditions):
                    timings.append(time.monotonic() - started)
                    stream.stop()
            core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    finally:
        core.delete_namespace(namespace)
    return timings


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="also time a build from empty caches")
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        print(json.dumps(pod_readiness(args.pods)))
        return 0

    if args.cold:
        print(f"bed cold binary build (s):        {cold_build():.0f}")
    node_ready, all_ready = bring_up()
    try:
        build_image(ECHO, ECHO / "Containerfile", IMAGE)
        done = subprocess.run(
            [
                str(SCRIPT),
                "exec",
                "--",
                sys.executable,
                __file__,
                "--inside",
                "--pods",
                str(args.pods),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        timings = json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        subprocess.run([str(SCRIPT), "down"], check=False, capture_output=True)
    print(f"bed bring-up, start -> node Ready (s): {node_ready:.1f}")
    print(f"bed bring-up, start -> CoreDNS up (s): {all_ready:.1f}")
    print(
        f"pod create -> Ready, {len(timings)} pods (s): p50 {statistics.median(timings):.2f}"
        f"  p99 {percentile(timings, 0.99):.2f}  max {max(timings):.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
