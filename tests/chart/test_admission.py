"""The rendered chart against a real kube-apiserver (the control-plane tier): every object, the
test hooks included, passes the API server's validation and admission with a server-side dry
run — the Pods under Pod Security "restricted" enforced on both namespaces, the test Function
under the CRD's schema and CEL rules, the PodDisruptionBudgets and NetworkPolicies under theirs;
and the namespaced RBAC (``rbac.namespaced``) created for real, for the server's RBAC authorizer
to say what each component may do where (``kubectl auth can-i``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.chart.render import CHART, KUBE_VERSION, Helm
from tests.kit.servers.kube import Cluster

pytestmark = pytest.mark.controlplane


@pytest.fixture
def namespaces(controlplane: Cluster) -> Iterator[tuple[str, str, str]]:
    """A release namespace and two Function namespaces, all enforcing Pod Security restricted."""
    controlplane.kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
    controlplane.wait_established("functions.lambdalet.dev", "eventsources.lambdalet.dev")
    suffix = uuid.uuid4().hex[:6]
    names = (f"chart-system-{suffix}", f"chart-apps-{suffix}", f"chart-team-{suffix}")
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
    controlplane: Cluster, helm: Helm, namespaces: tuple[str, str, str], values: dict[str, Any]
) -> None:
    system, apps, _ = namespaces
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


def test_server_accepts_namespaced_rbac(
    controlplane: Cluster, helm: Helm, namespaces: tuple[str, str, str]
) -> None:
    system, apps, team = namespaces
    rendered = helm.run(
        "template", "lam", "-n", system, "--kube-version", KUBE_VERSION,
        values={"rbac": {"namespaced": True}, "operator": {"watchNamespaces": [apps, team]}},
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr

    done = controlplane.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=rendered.stdout, check=False
    )

    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    for component in ("operator", "activator", "dispatcher"):
        for kind in ("role", "rolebinding"):
            # kubectl names neither namespace in its output: the count is one per namespace.
            created = f"{kind}.rbac.authorization.k8s.io/lam-{component}-watched created"
            assert done.stdout.count(created) == 2, done.stdout
    assert "pod/lam-helm-test created (server dry run)" in done.stdout
    assert "function.lambdalet.dev/lam-helm-test created (server dry run)" in done.stdout


def api_resources(controlplane: Cluster, *, namespaced: bool) -> set[str]:
    """The server's resources, named as ``kubectl api-resources -o name`` names them."""
    done = controlplane.kubectl(
        "api-resources", f"--namespaced={str(namespaced).lower()}", "-o", "name"
    )
    return set(done.stdout.split())


def can_i(controlplane: Cluster, account: str, verb: str, resource: str, *where: str) -> bool:
    done = controlplane.kubectl(
        "auth", "can-i", verb, resource, *where, f"--as={account}", check=False
    )
    return done.stdout.strip() == "yes"


def test_namespaced_rbac_authorizes_only_the_watched_namespaces(
    controlplane: Cluster, helm: Helm, namespaces: tuple[str, str, str]
) -> None:
    system, apps, team = namespaces
    # A release name of its own: its ClusterRoles are created for real, next to other tests'.
    release = f"rbac-{uuid.uuid4().hex[:6]}"
    rendered = helm.run(
        "template", release, "-n", system, "--kube-version", KUBE_VERSION,
        values={"rbac": {"namespaced": True}, "operator": {"watchNamespaces": [apps, team]}},
    )  # fmt: skip
    assert rendered.returncode == 0, rendered.stderr
    rbac = [
        o
        for o in yaml.safe_load_all(rendered.stdout)
        if o and o["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
    ]
    # Every ClusterRole is about cluster-scoped resources only, every Role about namespaced ones:
    # by the server's own discovery.
    scoped = {
        "ClusterRole": api_resources(controlplane, namespaced=False),
        "Role": api_resources(controlplane, namespaced=True),
    }
    for role in (o for o in rbac if o["kind"] in scoped):
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    name = resource.split("/")[0] + (f".{group}" if group else "")
                    assert name in scoped[role["kind"]], (role["metadata"]["name"], name)

    controlplane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    try:
        account = f"system:serviceaccount:{system}:{release}"
        everywhere = ("--all-namespaces",)
        leases = "leases.coordination.k8s.io"
        status = "--subresource=status"
        elsewhere = ("-n", "default")
        rows = [
            # (component, verb, resource, where, allowed)
            ("operator", "list", "functions.lambdalet.dev", ("-n", apps), True),
            ("operator", "patch", "functions.lambdalet.dev", ("-n", team, status), True),
            ("operator", "create", "deployments.apps", ("-n", team), True),
            ("operator", "patch", "deployments.apps", ("-n", apps, "--subresource=scale"), True),
            ("operator", "create", "events", ("-n", apps), True),
            ("operator", "list", "functions.lambdalet.dev", everywhere, False),
            ("operator", "create", "deployments.apps", elsewhere, False),
            ("operator", "get", "secrets", ("-n", apps), False),
            ("operator", "watch", "namespaces", (), True),
            ("operator", "list", "customresourcedefinitions.apiextensions.k8s.io", (), True),
            ("operator", "update", f"{leases}/lambdalet-operator", ("-n", system), True),
            ("operator", "update", f"{leases}/another", ("-n", system), False),
            ("activator", "get", "secrets", ("-n", apps), True),
            ("activator", "get", "pods", ("-n", team), True),
            ("activator", "watch", "endpointslices.discovery.k8s.io", ("-n", team), True),
            ("activator", "get", "secrets", ("-n", system), False),
            ("activator", "get", "secrets", elsewhere, False),
            ("activator", "list", "functions.lambdalet.dev", everywhere, False),
            ("activator", "create", "tokenreviews.authentication.k8s.io", (), True),
            ("activator", "watch", leases, ("-n", system), True),
            ("activator", "patch", leases, ("-n", system), True),
            ("activator", "create", leases, elsewhere, False),
            ("dispatcher", "get", "secrets", ("-n", team), True),
            ("dispatcher", "patch", "eventsources.lambdalet.dev", ("-n", apps, status), True),
            ("dispatcher", "get", "secrets", elsewhere, False),
            ("dispatcher", "list", "eventsources.lambdalet.dev", everywhere, False),
            ("dispatcher", "create", leases, ("-n", system), True),
        ]  # fmt: skip
        answers = [
            (component, verb, resource, where, can_i(
                controlplane, f"{account}-{component}", verb, resource, *where
            ))
            for component, verb, resource, where, _ in rows
        ]  # fmt: skip
        assert answers == rows
    finally:
        controlplane.kubectl(
            "delete", "clusterrole,clusterrolebinding",
            "-l", f"app.kubernetes.io/instance={release}", check=False,
        )  # fmt: skip
