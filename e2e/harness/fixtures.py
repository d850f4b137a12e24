"""pytest fixtures of the single-node cluster (registered from the root conftest.py; the
control plane's are in ``tests.kit.servers.controlplane``).

- ``node_cluster``: the real single-node cluster. Reused when ``KUBECONFIG`` names a live one,
  otherwise brought up once per session by e2e/cluster/cluster.sh and torn down at the end
  (``LAMBDALET_KEEP_CLUSTER=1`` keeps it). The e2e tier must run inside the node's network
  namespace — ``e2e/cluster/cluster.sh exec -- pytest -m e2e`` — because pod and service addresses
  exist only there. With ``LAMBDALET_E2E_KIND=1`` and a Docker engine, pytest-kind provides the
  cluster instead.
- ``node_namespace``: a fresh namespace per test, deleted afterwards.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kit.servers.kube import (
    Cluster,
    ClusterScript,
    brought_up,
    fresh_namespace,
    namespace_for,
)

from .cluster import in_node_netns


def _reachable(kubeconfig: str) -> bool:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", kubeconfig, "get", "--raw", "/readyz"],
        capture_output=True,
        timeout=20,
        check=False,
    )
    return done.returncode == 0


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
    yield from brought_up(script)


def _kind_cluster() -> Iterator[Cluster]:
    from pytest_kind import KindCluster  # type: ignore[import-untyped]

    kind = KindCluster("lambdalet-e2e")
    kind.create()
    try:
        yield Cluster(kubeconfig=Path(kind.kubeconfig_path))
    finally:
        if not os.environ.get("LAMBDALET_KEEP_CLUSTER"):
            kind.delete()


@pytest.fixture
def node_namespace(node_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from fresh_namespace(node_cluster, namespace_for(request.node.name))
