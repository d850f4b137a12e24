"""RBAC in both modes: ``rbac.namespaced: false`` grants each component its rules in a ClusterRole;
``true`` grants the very same rules on namespaced resources in a Role in each watched namespace
and keeps only the cluster-scoped rest in ClusterRoles. The rule sets of the two modes are
compared here, not written out twice; test_admission.py has a real API server authorize them."""

from __future__ import annotations

from collections.abc import Set
from typing import Any

import pytest

from tests.chart.render import KUBE_VERSION, NAMESPACE, RELEASE, Helm, Manifests, env_of, rules_of

WATCHED = ("team-a", "team-b")
NAMESPACED: dict[str, Any] = {
    "rbac": {"namespaced": True},
    "operator": {"watchNamespaces": list(WATCHED)},
}
COMPONENTS = ("operator", "activator", "dispatcher")
# Every cluster-scoped resource the chart grants anything on, as (apiGroup, resource);
# test_admission.py checks this against the API server's own discovery.
CLUSTER_SCOPED = {
    ("", "namespaces"),
    ("apiextensions.k8s.io", "customresourcedefinitions"),
    ("authentication.k8s.io", "tokenreviews"),
}
RBAC_KINDS = ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")

Rules = Set[tuple[str, str, str]]


def cluster_scoped(rules: Rules) -> set[tuple[str, str, str]]:
    """The rules on cluster-scoped resources (a subresource goes with its resource)."""
    return {rule for rule in rules if (rule[0], rule[1].split("/")[0]) in CLUSTER_SCOPED}


def cluster_rules(manifests: Manifests, name: str) -> set[tuple[str, str, str]]:
    """A ClusterRole's rules; none when it is not rendered."""
    if name not in manifests.names("ClusterRole"):
        return set()
    return rules_of(manifests.get("ClusterRole", name))


def rbac_objects(manifests: Manifests) -> list[dict[str, Any]]:
    return [o for o in manifests if o["kind"] in RBAC_KINDS]


@pytest.mark.parametrize("component", COMPONENTS)
def test_each_watched_namespace_gets_the_namespaced_rules_of_the_cluster_mode(
    helm: Helm, component: str
) -> None:
    everywhere = cluster_rules(
        helm.template({"operator": {"watchNamespaces": list(WATCHED)}}), f"{RELEASE}-{component}"
    )
    manifests = helm.template(NAMESPACED)
    name = f"{RELEASE}-{component}-watched"
    account = f"{RELEASE}-{component}"

    for namespace in WATCHED:
        role = manifests.get("Role", name, namespace)
        assert rules_of(role) == everywhere - cluster_scoped(everywhere)
        binding = manifests.get("RoleBinding", name, namespace)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": name,
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]
    roles_in = {o["metadata"]["namespace"] for o in manifests if o["metadata"]["name"] == name}
    assert roles_in == set(WATCHED)
    # Nothing lost, nothing added: the cluster-scoped rest stays in the ClusterRole.
    assert cluster_rules(manifests, account) == cluster_scoped(everywhere)


@pytest.mark.parametrize(
    ("component", "rules"),
    [
        (
            "operator",
            {
                ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
                ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
                ("", "namespaces", "list"),
                ("", "namespaces", "watch"),
            },
        ),
        ("activator", {("authentication.k8s.io", "tokenreviews", "create")}),
        ("dispatcher", set()),
    ],
)
def test_namespaced_cluster_roles(helm: Helm, component: str, rules: Rules) -> None:
    manifests = helm.template(NAMESPACED)
    name = f"{RELEASE}-{component}"

    assert cluster_rules(manifests, name) == rules
    assert (name in manifests.names("ClusterRoleBinding")) == bool(rules)


def test_no_cluster_role_grants_a_namespaced_resource(helm: Helm) -> None:
    manifests = helm.template(NAMESPACED)

    for role in (o for o in manifests if o["kind"] == "ClusterRole"):
        assert cluster_scoped(rules_of(role)) == rules_of(role), role["metadata"]["name"]


def test_secrets_only_in_the_watched_namespaces(helm: Helm) -> None:
    manifests = helm.template(NAMESPACED)

    granting = {
        (o["kind"], o["metadata"]["name"], o["metadata"].get("namespace"))
        for o in manifests
        if o["kind"] in ("ClusterRole", "Role")
        and any(resource == "secrets" for _, resource, _ in rules_of(o))
    }
    assert granting == {
        ("Role", f"{RELEASE}-{component}-watched", namespace)
        for component in ("activator", "dispatcher")
        for namespace in WATCHED
    }


def test_components_watch_the_namespaces_they_are_granted(helm: Helm) -> None:
    manifests = helm.template(NAMESPACED)

    for component in COMPONENTS:
        deployment = manifests.get("Deployment", f"{RELEASE}-{component}")
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        assert env["LAMBDALET_NAMESPACES"] == " ".join(WATCHED), component


def test_the_release_namespace_watched_too(helm: Helm) -> None:
    """Its Lease Roles keep their names and rules next to the watched-namespace Roles."""
    cluster = helm.template({"operator": {"watchNamespaces": [NAMESPACE]}})
    manifests = helm.template(
        {"rbac": {"namespaced": True}, "operator": {"watchNamespaces": [NAMESPACE, NAMESPACE]}}
    )

    for component in COMPONENTS:
        lease_role = f"{RELEASE}-{component}"
        assert manifests.get("Role", lease_role, NAMESPACE) == cluster.get("Role", lease_role)
        assert manifests.get("RoleBinding", lease_role, NAMESPACE) == cluster.get(
            "RoleBinding", lease_role
        )
    # A name listed twice gets its Roles once.
    for component in COMPONENTS:
        assert manifests.get("Role", f"{RELEASE}-{component}-watched", NAMESPACE)


def test_without_dispatcher(helm: Helm) -> None:
    manifests = helm.template({**NAMESPACED, "dispatcher": {"enabled": False}})

    assert not any("dispatcher" in o["metadata"]["name"] for o in rbac_objects(manifests))
    assert {o["metadata"]["name"] for o in manifests if o["kind"] == "Role"} == {
        f"{RELEASE}-operator",
        f"{RELEASE}-operator-watched",
        f"{RELEASE}-activator",
        f"{RELEASE}-activator-watched",
    }


@pytest.mark.parametrize(
    "values",
    [
        pytest.param({}, id="defaults"),
        pytest.param({"operator": {"watchNamespaces": ["team-*", "apps"]}}, id="patterns"),
        pytest.param({"dispatcher": {"enabled": False}}, id="no dispatcher"),
    ],
)
def test_cluster_mode_is_the_default(helm: Helm, values: dict[str, Any]) -> None:
    # Secret names of one's own: the chart's own keys would be random on every render.
    fixed = {
        **values,
        "dispatcher": {**values.get("dispatcher", {}), "webhookKeySecret": "k"},
        "activator": {"peerKeySecret": "p"},
    }
    default = helm.run("template", RELEASE, "-n", NAMESPACE, "--kube-version", KUBE_VERSION,
                       values=fixed)  # fmt: skip
    explicit = helm.run("template", RELEASE, "-n", NAMESPACE, "--kube-version", KUBE_VERSION,
                        values={**fixed, "rbac": {"namespaced": False}})  # fmt: skip

    assert default.returncode == 0, default.stderr
    assert explicit.stdout == default.stdout
    assert "-watched" not in default.stdout


NEEDS_A_LIST = "rbac.namespaced: true needs operator.watchNamespaces, the namespaces"
NOT_PLAIN = "rbac.namespaced: true needs plain namespace names in operator.watchNamespaces"


def not_plain(entry: str) -> str:
    return f'{NOT_PLAIN}, one Role each; "{entry}" is not one'


@pytest.mark.parametrize(
    ("watch", "tests", "complaint"),
    [
        (None, True, NEEDS_A_LIST),
        ([], True, NEEDS_A_LIST),
        (["team-*"], True, not_plain("team-*")),
        (["apps", "!kube-*"], True, not_plain("!kube-*")),
        (["a,!b"], True, not_plain("a,!b")),
        (["team-?"], True, not_plain("team-?")),
        (["Team-A"], True, not_plain("Team-A")),
        (["a" * 64], True, not_plain("a" * 64)),
        # Without helm test's Function (whose namespace is checked too), rbac.yaml says so itself.
        (["team-*"], False, not_plain("team-*")),
        (None, False, NEEDS_A_LIST),
    ],
)
def test_namespaced_needs_plain_names(
    helm: Helm, watch: list[str] | None, tests: bool, complaint: str
) -> None:
    values: dict[str, Any] = {"rbac": {"namespaced": True}, "tests": {"enabled": tests}}
    if watch is not None:
        values["operator"] = {"watchNamespaces": watch}

    done = helm.run("template", RELEASE, "--kube-version", KUBE_VERSION, values=values)

    assert done.returncode != 0
    assert complaint in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"rbac": {"namespaced": "yes"}}, "/rbac/namespaced"),
        ({"rbac": {"create": False}}, "create"),
        ({"rbac": True}, "/rbac"),
    ],
)
def test_schema_rejects(helm: Helm, values: dict[str, Any], complaint: str) -> None:
    done = helm.run("template", RELEASE, "--kube-version", KUBE_VERSION, values=values)

    assert done.returncode != 0
    assert complaint in done.stderr, done.stderr


def test_the_activator_writes_only_events_and_token_reviews(helm: Helm) -> None:
    """Warning Events (InitError) on Functions, and the reviews of announcements' tokens
    (cluster-wide); its Leases only in the release namespace."""
    rules = cluster_rules(helm.template(), f"{RELEASE}-activator")

    writes = {rule for rule in rules if rule[2] not in ("get", "list", "watch")}
    assert writes == {
        ("", "events", "create"),
        ("events.k8s.io", "events", "create"),
        ("authentication.k8s.io", "tokenreviews", "create"),
    }


def test_the_activators_keep_their_leases_in_the_release_namespace(helm: Helm) -> None:
    """They split each Function's reserved concurrency through them (``activator.peers``)."""
    manifests = helm.template()
    role = manifests.get("Role", f"{RELEASE}-activator", NAMESPACE)
    assert rules_of(role) == {
        ("coordination.k8s.io", "leases", verb)
        for verb in ("get", "list", "watch", "create", "update", "patch", "delete")
    }
