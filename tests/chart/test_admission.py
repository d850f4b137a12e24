"""The rendered chart against a real kube-apiserver (the control-plane tier): every object, the
test hooks included, passes the API server's validation and admission with a server-side dry
run — the Pods under Pod Security "restricted" enforced on both namespaces, the test Function
under the CRD's schema and CEL rules, the PodDisruptionBudgets and NetworkPolicies under theirs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from e2e.harness.cluster import Cluster
from tests.chart.render import CHART, KUBE_VERSION, Helm

pytestmark = pytest.mark.controlplane


@pytest.fixture
def namespaces(controlplane: Cluster) -> Iterator[tuple[str, str]]:
    """A release namespace and a Function namespace, both enforcing Pod Security restricted."""
    controlplane.kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    for crd in ("functions.lambdalet.dev", "eventsources.lambdalet.dev"):
        controlplane.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")
    suffix = uuid.uuid4().hex[:6]
    names = (f"chart-system-{suffix}", f"chart-apps-{suffix}")
    for name in names:
        controlplane.kubectl("create", "namespace", name)
        controlplane.kubectl(
            "label", "namespace", name,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/warn=restricted",
        )  # fmt: skip
    try:
        yield names
    finally:
        for name in names:
            controlplane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="defaults"),
        pytest.param(
            {
                "networkPolicy": {
                    "enabled": True,
                    "activatorFrom": [
                        {
                            "namespaceSelector": {"matchLabels": {"team": "web"}},
                            "podSelector": {
                                "matchExpressions": [{"key": "r", "operator": "Exists"}]
                            },
                        },
                        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                    ],
                },
                "dispatcher": {"replicas": 2},
            },
            id="network policies, budgets",
        ),
        pytest.param({"dispatcher": {"enabled": False}}, id="no dispatcher"),
    ],
)
def test_server_accepts_everything(
    controlplane: Cluster, helm: Helm, namespaces: tuple[str, str], values: dict[str, Any]
) -> None:
    system, apps = namespaces
    rendered = helm.run(
        "template", "lam", "-n", system, "--kube-version", KUBE_VERSION,
        values={**values, "operator": {"watchNamespaces": ["team-*", apps]}},
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    kinds = {
        (o["kind"], o["metadata"].get("namespace"))
        for o in yaml.safe_load_all(rendered.stdout)
        if o
    }
    assert ("Pod", system) in kinds
    assert ("Function", apps) in kinds

    done = controlplane.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=rendered.stdout, check=False
    )

    assert done.returncode == 0, done.stderr
    # Pod Security warns (warn=restricted) about any Pod or Pod template it would refuse.
    assert "Warning" not in done.stderr, done.stderr
    assert "pod/lam-helm-test created (server dry run)" in done.stdout
    assert "function.lambdalet.dev/lam-helm-test created (server dry run)" in done.stdout
