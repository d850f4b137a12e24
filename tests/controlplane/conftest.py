"""Fixtures of the control-plane tier: CRDs installed, the operator running as a process, and a
Kubernetes client of the control plane."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from lambdalet.k8s.client import KubeClient, load_connection
from tests.kit.servers.kube import Cluster
from tests.kit.servers.operator import OperatorProcess


@pytest.fixture(scope="session")
def crds(controlplane: Cluster) -> Cluster:
    controlplane.install_crds()
    return controlplane


@pytest.fixture(scope="session")
def operator(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    process = OperatorProcess(
        crds.operator_kubeconfig or crds.kubeconfig,
        tmp_path_factory.mktemp("operator") / "operator.log",
        # A pattern, as the chart's operator.watchNamespaces may give: namespaces named ha-*
        # belong to the operators the leader-election tests start, skip-* to none
        # (test_watch_namespaces.py).
        env={"LAMBDALET_NAMESPACES": "!ha-*,!skip-*"},
    )
    with process.serving():
        yield process


@pytest.fixture
async def client(controlplane: Cluster) -> AsyncIterator[KubeClient]:
    """Lambdalet's own Kubernetes client of the control plane, closed after the test."""
    kube = KubeClient(load_connection({}, str(controlplane.kubeconfig)))
    try:
        yield kube
    finally:
        await kube.aclose()
