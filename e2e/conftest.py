"""Fixtures of the e2e tier shared by its modules: Lambdalet's CRDs and operator on the node."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.harness.cluster import REPO, Cluster
from e2e.harness.operator import OperatorProcess


@pytest.fixture(scope="session")
def operator_on_node(
    node_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    """The operator as a process in the node's namespace, with the CRDs installed."""
    node_cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    node_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/functions.lambdalet.dev", "--timeout=30s"
    )
    process = OperatorProcess(
        node_cluster.operator_kubeconfig or node_cluster.kubeconfig,
        tmp_path_factory.mktemp("operator") / "operator.log",
        # Images on the test node are imported, never pulled; namespaces named helm-* belong
        # to the operators that tests install with the chart.
        env={"LAMBDALET_IMAGE_PULL_POLICY": "Never", "LAMBDALET_NAMESPACES": "!helm-*"},
    )
    process.start()
    try:
        yield process
    finally:
        process.stop()
