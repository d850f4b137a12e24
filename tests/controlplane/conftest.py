"""Fixtures of the control-plane tier: CRDs installed and the operator running as a process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from e2e.harness.cluster import REPO, Cluster
from e2e.harness.operator import OperatorProcess


@pytest.fixture(scope="session")
def crds(controlplane: Cluster) -> Cluster:
    controlplane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    controlplane.wait_established("functions.lambdalet.dev", "eventsources.lambdalet.dev")
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
    process.start()
    try:
        yield process
    finally:
        process.stop()
