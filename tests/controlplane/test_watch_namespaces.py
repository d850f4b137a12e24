"""The operator with a namespace pattern (LAMBDALET_NAMESPACES, the chart's
operator.watchNamespaces): the session operator of this tier serves every namespace but ha-* and
skip-*. It watches cluster-wide and skips the namespaces the pattern leaves out, so namespaces
coming and going by the dozen never hold its handlers up."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.controlplane.test_operator import condition, function, wait_ready
from tests.kit.servers.kube import Cluster
from tests.kit.servers.operator import OperatorProcess

pytestmark = pytest.mark.controlplane


@pytest.fixture
def skipped_namespace(controlplane: Cluster) -> Iterator[str]:
    name = f"skip-{uuid.uuid4().hex[:6]}"
    controlplane.kubectl("create", "namespace", name)
    yield name
    controlplane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_a_namespace_the_pattern_leaves_out_is_not_served(
    controlplane: Cluster, cp_namespace: str, skipped_namespace: str, operator: OperatorProcess
) -> None:
    controlplane.apply([function("left-alone")], "-n", skipped_namespace)
    controlplane.apply([function("served")], "-n", cp_namespace)

    # The operator handled the Function created after the skipped one ...
    wait_ready(controlplane, cp_namespace, "served")
    assert controlplane.get("deployment", "fn-served", "-n", cp_namespace)
    # ... and left the skipped one alone: no status, no children.
    left = controlplane.get("function", "left-alone", "-n", skipped_namespace)
    assert condition(left, "Ready") is None
    children = controlplane.get(
        "deployments,services,configmaps",
        "-n",
        skipped_namespace,
        "-l",
        "app.kubernetes.io/managed-by=lambdalet",
    )
    assert children["items"] == []


def test_namespaces_coming_and_going_do_not_hold_the_operator_up(
    controlplane: Cluster, cp_namespace: str, operator: OperatorProcess
) -> None:
    # Namespaces created and deleted at once, each with a Function, served and skipped alike:
    # some are gone before anything could list them.
    churn = [f"{prefix}churn-{uuid.uuid4().hex[:6]}" for prefix in ("", "skip-") * 10]
    for name in churn:
        controlplane.kubectl("create", "namespace", name)
        controlplane.apply([function("passing")], "-n", name)
        controlplane.kubectl("delete", "namespace", name, "--wait=false")

    controlplane.apply([function("after-the-churn")], "-n", cp_namespace)

    wait_ready(controlplane, cp_namespace, "after-the-churn", timeout=30)
