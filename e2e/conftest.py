"""Fixtures of the e2e tier shared by its modules: Lambdalet's CRDs, operator and activator on
the node, as processes in the node's network namespace (the Helm chart's own tests install them
as pods instead)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.kit.paths import REPO
from tests.kit.ports import free_port
from tests.kit.servers.activator import ActivatorProcess
from tests.kit.servers.dispatcher import DispatcherProcess
from tests.kit.servers.kube import Cluster
from tests.kit.servers.operator import OperatorProcess

# The node's address inside its namespace (e2e/cluster/cluster.sh): pods reach processes of the
# node's namespace there, e.g. the activator's internal port for announcements.
NODE_IP = "10.200.0.2"
# Where the dispatchers' Leases live (the chart uses its release namespace).
DISPATCHER_NAMESPACE = "lambdalet-dispatchers"


@dataclass(frozen=True)
class ActivatorPorts:
    public: int
    internal: int


@pytest.fixture(scope="session")
def activator_ports() -> ActivatorPorts:
    return ActivatorPorts(free_port(), free_port())


@pytest.fixture(scope="session")
def runtime_images(node_cluster: Cluster) -> None:
    """The runtime images, imported into the node's containerd once per session (built by the
    pre-step of e2e/run-tests.sh; here only imported, which needs no network)."""
    subprocess.run(
        [str(REPO / "runtime-images" / "build.sh")], check=True, capture_output=True, timeout=600
    )


@pytest.fixture(scope="session")
def operator_on_node(
    node_cluster: Cluster,
    activator_ports: ActivatorPorts,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[OperatorProcess]:
    """The operator as a process in the node's namespace, with the CRDs installed."""
    node_cluster.install_crds()
    process = OperatorProcess(
        node_cluster.operator_kubeconfig or node_cluster.kubeconfig,
        tmp_path_factory.mktemp("operator") / "operator.log",
        # Images on the test node are imported, never pulled; namespaces named helm-* belong
        # to the operators that tests install with the chart.
        env={
            "LAMBDALET_IMAGE_PULL_POLICY": "Never",
            "LAMBDALET_NAMESPACES": "!helm-*",
            "LAMBDALET_ACTIVATOR_URL": f"http://127.0.0.1:{activator_ports.public}",
            "LAMBDALET_ANNOUNCE_URL": (f"http://{NODE_IP}:{activator_ports.internal}/v1/announce"),
            "LAMBDALET_DISPATCHER_NAMESPACE": DISPATCHER_NAMESPACE,
        },
    )
    with process.serving():
        yield process


@pytest.fixture(scope="session")
def activator_on_node(
    node_cluster: Cluster,
    operator_on_node: OperatorProcess,
    activator_ports: ActivatorPorts,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ActivatorProcess]:
    """The activator as a process in the node's namespace, reporting to ``operator_on_node``."""
    process = ActivatorProcess(
        node_cluster.kubeconfig,
        tmp_path_factory.mktemp("activator") / "activator.log",
        port=activator_ports.public,
        internal_port=activator_ports.internal,
        env={
            "LAMBDALET_AUTOSCALER_URL": operator_on_node.autoscaler_url,
            "LAMBDALET_ACTIVATOR_HOST": "0.0.0.0",
        },
    )
    with process.serving():
        yield process


@pytest.fixture(scope="session")
def dispatcher_on_node(
    node_cluster: Cluster,
    operator_on_node: OperatorProcess,
    activator_on_node: ActivatorProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DispatcherProcess]:
    """The event dispatcher as a process in the node's namespace: one replica, invoking through
    ``activator_on_node``, reporting queue depth to ``operator_on_node``'s autoscaler."""
    node_cluster.apply(
        [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DISPATCHER_NAMESPACE}}]
    )
    port = free_port()
    process = DispatcherProcess(
        node_cluster.kubeconfig,
        tmp_path_factory.mktemp("dispatcher") / "dispatcher.log",
        port=port,
        env={
            "LAMBDALET_DISPATCHER_NAME": "e2e-dispatcher",
            "LAMBDALET_DISPATCHER_NAMESPACE": DISPATCHER_NAMESPACE,
            "LAMBDALET_ACTIVATOR_URL": activator_on_node.url,
            "LAMBDALET_AUTOSCALER_URL": operator_on_node.autoscaler_url,
            "LAMBDALET_NAMESPACES": "!helm-*",
            "LAMBDALET_DISPATCHER_S3_URL": f"http://127.0.0.1:{port}",
            "LAMBDALET_DISPATCHER_WEBHOOK_KEY": "e2e-webhook-key-0123456789",
            # The tests' own MinIO: restarting it to load a new webhook target is fine here.
            "LAMBDALET_DISPATCHER_S3_ALLOW_RESTART": "true",
        },
    )
    with process.serving():
        yield process
