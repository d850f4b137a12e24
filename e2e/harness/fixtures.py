"""pytest fixtures for the real-cluster tiers (registered from the root conftest.py).

- ``controlplane``: kube-apiserver + etcd + kube-controller-manager on loopback, started once per
  session (or reused from ``LAMBDALET_CONTROLPLANE_KUBECONFIG``). For operator tests.
- ``node_cluster``: the real single-node cluster. Reused when ``KUBECONFIG`` names a live one,
  otherwise brought up once per session by e2e/cluster/cluster.sh and torn down at the end
  (``LAMBDALET_KEEP_CLUSTER=1`` keeps it). The e2e tier must run inside the node's network
  namespace — ``e2e/cluster/cluster.sh exec -- pytest -m e2e`` — because pod and service addresses
  exist only there. With ``LAMBDALET_E2E_KIND=1`` and a Docker engine, pytest-kind provides the
  cluster instead.
- ``cp_namespace`` / ``node_namespace``: a fresh namespace per test, deleted afterwards.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from .cluster import Cluster, ClusterScript, in_node_netns


def _reachable(kubeconfig: str) -> bool:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "get", "--raw", "/readyz"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    return done.returncode == 0


@pytest.fixture(scope="session")
def controlplane() -> Iterator[Cluster]:
    named = os.environ.get("LAMBDALET_CONTROLPLANE_KUBECONFIG")
    if named:
        yield Cluster(kubeconfig=Path(named))
        return
    yield from _brought_up(ClusterScript("controlplane"))


@pytest.fixture(scope="session")
def node_cluster() -> Iterator[Cluster]:
    if os.environ.get("LAMBDALET_E2E_KIND"):
        yield from _kind_cluster()
        return
    if not in_node_netns():
        pytest.fail(
            "the e2e tier runs inside the node's network namespace: "
            "e2e/cluster/cluster.sh exec -- .venv/bin/pytest -m e2e",
            pytrace=False,
        )
    named = os.environ.get("KUBECONFIG")
    script = ClusterScript("node")
    if named and Path(named).exists() and _reachable(named):
        try:
            running = script.current()
        except RuntimeError:  # a cluster cluster.sh did not start
            running = Cluster(kubeconfig=Path(named))
        yield running
        return
    yield from _brought_up(script)


def _brought_up(script: ClusterScript) -> Iterator[Cluster]:
    """Bring a bed up for the session and down afterwards (unless LAMBDALET_KEEP_CLUSTER)."""
    cluster = script.up()
    try:
        yield cluster
    finally:
        if not os.environ.get("LAMBDALET_KEEP_CLUSTER"):
            script.down()


def _kind_cluster() -> Iterator[Cluster]:
    from pytest_kind import KindCluster  # type: ignore[import-untyped]

    kind = KindCluster("lambdalet-e2e")
    kind.create()
    try:
        yield Cluster(kubeconfig=Path(kind.kubeconfig_path))
    finally:
        if not os.environ.get("LAMBDALET_KEEP_CLUSTER"):
            kind.delete()


def _namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    cluster.kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def cp_namespace(controlplane: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _namespace(controlplane, request)


@pytest.fixture
def node_namespace(node_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from _namespace(node_cluster, request)
