"""A real Kubernetes control plane on loopback for the control-plane tier (a pytest plugin: the
root conftest.py registers it for the whole suite).

``controlplane`` is etcd, kube-apiserver and kube-controller-manager, started once per session by
e2e/cluster/cluster.sh's ``controlplane`` profile (or reused from
``LAMBDALET_CONTROLPLANE_KUBECONFIG``), and stopped at the end (``LAMBDALET_KEEP_CLUSTER=1``
keeps it). ``cp_namespace`` gives each test a fresh namespace there, deleted afterwards.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.kit.ports import free_port_pair
from tests.kit.servers.kube import (
    Cluster,
    ClusterScript,
    brought_up,
    fresh_namespace,
    namespace_for,
)


@pytest.fixture(scope="session")
def controlplane() -> Iterator[Cluster]:
    named = os.environ.get("LAMBDALET_CONTROLPLANE_KUBECONFIG")
    if named:
        yield Cluster(kubeconfig=Path(named))
        return
    yield from brought_up(ClusterScript("controlplane", extra_env=_own_controlplane()))


def _own_controlplane() -> dict[str, str]:
    """A state directory and ports of this session's own (unless the environment names them), so
    two test sessions on one machine never share, or tear down, each other's control plane. The
    directory is a temporary one, outside the single-node bed's /var/lib/lambdalet-e2e, whose
    lifecycle test takes whatever runs from there for the bed's own."""
    if os.environ.get("LAMBDALET_CLUSTER_STATE"):
        return {}
    return {
        "LAMBDALET_CLUSTER_STATE": tempfile.mkdtemp(prefix="lambdalet-controlplane-"),
        "LAMBDALET_CP_API_PORT": str(free_port_pair()),
        "LAMBDALET_CP_ETCD_PORT": str(free_port_pair()),
    }


@pytest.fixture
def cp_namespace(controlplane: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    yield from fresh_namespace(controlplane, namespace_for(request.node.name))
