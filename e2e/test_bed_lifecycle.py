"""Bring-up and teardown of the single-node bed leave the machine as they found it.

Runs in the root network namespace with no node cluster up (the test command runs it before the
e2e tier): it brings the node up and down twice and compares what it can see of the machine.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from e2e.harness.cluster import in_node_netns
from tests.kit.servers.kube import ClusterScript

pytestmark = pytest.mark.lifecycle

STATE_ROOT = "/var/lib/lambdalet-e2e"
COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
    "containerd",
    "containerd-shim",
    "coredns",
    "pause",
)
IN_PODS = ("containerd-shim", "coredns", "pause")


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout


def _processes() -> set[str]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        exe = os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else ""
        line = b" ".join(argv).decode(errors="replace").strip()
        # The bed's own components name its state directory; what runs in pods does not.
        if exe.startswith(COMPONENTS) and (STATE_ROOT in line or exe.startswith(IN_PODS)):
            found.add(line)
    return found


def snapshot() -> dict[str, object]:
    """Everything of the machine's that the bed touches, in comparable form."""
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    return {
        "processes": _processes(),
        "mounts": sorted(m.split(" ")[4] for m in mounts if STATE_ROOT in m or "/run/netns" in m),
        "netns": _run("ip", "netns", "list"),
        "links": _run("ip", "-br", "link"),
        "routes": _run("ip", "route", "show", "table", "all"),
        "cgroups": sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods")),
        "state": sorted(os.listdir(STATE_ROOT)) if os.path.isdir(STATE_ROOT) else [],
    }


def test_up_and_down_twice_leaves_nothing_behind() -> None:
    if in_node_netns():
        pytest.fail("run the lifecycle test from the root network namespace", pytrace=False)
    script = ClusterScript("node")
    if script.run("status").returncode == 0:
        pytest.fail("a node cluster is already up; the lifecycle test needs the machine to itself")

    before = snapshot()
    for _ in range(2):
        script.up()
        during = snapshot()
        assert any("kubelet" in p for p in during["processes"])  # type: ignore[attr-defined]
        assert "lambdalet-node" in str(during["netns"])
        assert "blackhole 10.244.0.0/16" in str(during["routes"])
        nodes = script.run("exec", "--", "kubectl", "get", "nodes", "--no-headers")
        assert " Ready " in nodes.stdout, nodes.stderr
        # A client left in the root namespace cannot reach the node: the blackhole route answers.
        probe = subprocess.run(
            ["ip", "route", "get", "10.200.0.2"], capture_output=True, text=True, check=False
        )
        assert probe.returncode != 0 or "blackhole" in probe.stdout
        script.down()
        assert snapshot() == before
