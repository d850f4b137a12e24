"""The chart's event dispatcher: its Deployment, Service, webhook-key Secret, ServiceAccount and
RBAC as ``helm template`` renders them, the operator's share (the dispatchers' Leases), the
values schema, and ``helm lint --strict`` over the values that switch parts on and off."""

from __future__ import annotations

import base64
import string
from pathlib import Path
from typing import Any

import pytest

from tests.chart.render import KUBE_VERSION, NAMESPACE, RELEASE, Helm, Manifests, env_of, rules_of

DISPATCHER = f"{RELEASE}-dispatcher"
SECRET_REF = {"secretKeyRef": {"name": DISPATCHER, "key": "webhook-key"}}


def container(manifests: Manifests, deployment: str) -> dict[str, Any]:
    pod = manifests.get("Deployment", deployment)["spec"]["template"]["spec"]
    (only,) = pod["containers"]
    return dict(only)


@pytest.mark.parametrize(
    ("values"),
    [
        {},
        {"dispatcher": {"enabled": False}},
        {"dispatcher": {"webhookKeySecret": "s3-key", "replicas": 3}},
        {"operator": {"watchNamespaces": ["team-*,!team-test"]}},
    ],
)
def test_lint_strict(helm: Helm, values: dict[str, Any]) -> None:
    done = helm.run("lint", "--strict", values=values)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("LAMBDALET_DISPATCHER_NAME", {"fieldRef": {"fieldPath": "metadata.name"}}),
        ("LAMBDALET_DISPATCHER_NAMESPACE", {"fieldRef": {"fieldPath": "metadata.namespace"}}),
        ("LAMBDALET_ACTIVATOR_URL", f"http://{RELEASE}-activator.{NAMESPACE}.svc"),
        ("LAMBDALET_AUTOSCALER_URL", f"http://{RELEASE}-autoscaler.{NAMESPACE}.svc:8082"),
        ("LAMBDALET_NAMESPACES", ""),
        ("LAMBDALET_DISPATCHER_PORT_NUMBER", "8080"),
        ("LAMBDALET_DISPATCHER_S3_URL", f"http://{DISPATCHER}.{NAMESPACE}.svc"),
        ("LAMBDALET_DISPATCHER_WEBHOOK_KEY", SECRET_REF),
        ("LAMBDALET_DISPATCHER_S3_ALLOW_RESTART", "false"),
    ],
)
def test_dispatcher_env(helm: Helm, name: str, expected: Any) -> None:
    assert env_of(container(helm.template(), DISPATCHER))[name] == expected


def test_dispatcher_shares_the_activators_urls_and_the_operators_namespaces(helm: Helm) -> None:
    manifests = helm.template({"operator": {"watchNamespaces": ["team-a", "team-*,!team-test"]}})
    dispatcher = env_of(container(manifests, DISPATCHER))
    activator = env_of(container(manifests, f"{RELEASE}-activator"))
    operator = env_of(container(manifests, f"{RELEASE}-operator"))

    assert dispatcher["LAMBDALET_NAMESPACES"] == "team-a team-*,!team-test"
    assert dispatcher["LAMBDALET_NAMESPACES"] == operator["LAMBDALET_NAMESPACES"]
    assert dispatcher["LAMBDALET_AUTOSCALER_URL"] == activator["LAMBDALET_AUTOSCALER_URL"]
    # The activator's Service, not activatorURL (the public base URL shown in status.url).
    public = helm.template({"activatorURL": "https://fn.example.com"})
    assert env_of(container(public, DISPATCHER))["LAMBDALET_ACTIVATOR_URL"] == (
        f"http://{RELEASE}-activator.{NAMESPACE}.svc"
    )


def test_dispatcher_pod(helm: Helm) -> None:
    manifests = helm.template()
    deployment = manifests.get("Deployment", DISPATCHER)
    pod = deployment["spec"]["template"]["spec"]
    activator_pod = manifests.get("Deployment", f"{RELEASE}-activator")["spec"]["template"]["spec"]
    dispatcher = container(manifests, DISPATCHER)

    assert deployment["spec"]["replicas"] == 1
    assert pod["serviceAccountName"] == DISPATCHER
    assert pod["terminationGracePeriodSeconds"] == 30
    assert pod["securityContext"] == activator_pod["securityContext"]
    assert dispatcher["securityContext"] == activator_pod["containers"][0]["securityContext"]
    assert dispatcher["securityContext"]["readOnlyRootFilesystem"] is True
    # The operator's image and command, another subcommand.
    assert dispatcher["image"] == container(manifests, f"{RELEASE}-operator")["image"]
    assert dispatcher["args"] == ["dispatcher"]
    assert dispatcher["ports"] == [{"name": "http", "containerPort": 8080}]
    assert dispatcher["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert dispatcher["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert dispatcher["resources"] == {
        "requests": {"cpu": "100m", "memory": "64Mi"},
        "limits": {"memory": "256Mi"},
    }
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_dispatcher_values(helm: Helm) -> None:
    manifests = helm.template(
        {
            "dispatcher": {
                "replicas": 3,
                "image": {
                    "repository": "ghcr.io/acme/lambdalet",
                    "tag": "9.9",
                    "pullPolicy": "Always",
                },
                "resources": {"requests": {"cpu": "1"}},
                "s3": {"allowRestart": True, "queueDir": "/data/.lambdalet"},
            }
        }
    )
    deployment = manifests.get("Deployment", DISPATCHER)
    dispatcher = container(manifests, DISPATCHER)
    env = env_of(dispatcher)
    assert env["LAMBDALET_DISPATCHER_S3_ALLOW_RESTART"] == "true"
    assert env["LAMBDALET_DISPATCHER_S3_QUEUE_DIR"] == "/data/.lambdalet"
    assert "LAMBDALET_DISPATCHER_S3_QUEUE_DIR" not in env_of(container(helm.template(), DISPATCHER))

    assert deployment["spec"]["replicas"] == 3
    assert dispatcher["image"] == "ghcr.io/acme/lambdalet:9.9"
    assert dispatcher["imagePullPolicy"] == "Always"
    assert dispatcher["resources"]["requests"]["cpu"] == "1"


def test_service_receives_s3_notifications_on_port_80(helm: Helm) -> None:
    manifests = helm.template()
    service = manifests.get("Service", DISPATCHER)
    pod_labels = manifests.get("Deployment", DISPATCHER)["spec"]["template"]["metadata"]["labels"]

    assert service["metadata"]["namespace"] == NAMESPACE
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http"}]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    # Not the activator's pods as well.
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "dispatcher"


def test_webhook_key_secret_is_generated(helm: Helm) -> None:
    first = helm.template().get("Secret", DISPATCHER)
    second = helm.template().get("Secret", DISPATCHER)

    assert first["metadata"]["namespace"] == NAMESPACE
    assert set(first["data"]) == {"webhook-key"}
    key = first["data"]["webhook-key"]
    plain = base64.b64decode(key).decode()
    assert len(plain) >= 32
    assert set(plain) <= set(string.ascii_letters + string.digits)
    # Random on a first install (helm template has no cluster to look the existing one up in;
    # upgrades keep the cluster's key through lookup).
    assert second["data"]["webhook-key"] != key


def test_webhook_key_secret_of_ones_own(helm: Helm) -> None:
    manifests = helm.template({"dispatcher": {"webhookKeySecret": "s3-key"}})

    assert DISPATCHER not in manifests.names("Secret")
    assert env_of(container(manifests, DISPATCHER))["LAMBDALET_DISPATCHER_WEBHOOK_KEY"] == {
        "secretKeyRef": {"name": "s3-key", "key": "webhook-key"}
    }


def test_dispatcher_rbac(helm: Helm) -> None:
    manifests = helm.template()
    account = manifests.get("ServiceAccount", DISPATCHER)
    subject = {"kind": "ServiceAccount", "name": DISPATCHER, "namespace": NAMESPACE}

    assert account["metadata"]["namespace"] == NAMESPACE
    assert rules_of(manifests.get("ClusterRole", DISPATCHER)) == {
        ("lambdalet.dev", "eventsources", "get"),
        ("lambdalet.dev", "eventsources", "list"),
        ("lambdalet.dev", "eventsources", "watch"),
        ("lambdalet.dev", "functions", "get"),
        ("lambdalet.dev", "functions", "list"),
        ("lambdalet.dev", "functions", "watch"),
        ("lambdalet.dev", "eventsources/status", "get"),
        ("lambdalet.dev", "eventsources/status", "patch"),
        ("", "secrets", "get"),
        ("", "events", "create"),
        ("", "events", "patch"),
        ("events.k8s.io", "events", "create"),
        ("events.k8s.io", "events", "patch"),
    }
    role = manifests.get("Role", DISPATCHER)
    assert role["metadata"]["namespace"] == NAMESPACE
    assert rules_of(role) == {
        ("coordination.k8s.io", "leases", verb)
        for verb in ("get", "create", "update", "patch", "delete")
    }
    for kind, role_kind in (("ClusterRoleBinding", "ClusterRole"), ("RoleBinding", "Role")):
        binding = manifests.get(kind, DISPATCHER)
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": role_kind,
            "name": DISPATCHER,
        }
        assert binding["subjects"] == [subject]


def test_operator_reads_the_dispatchers_leases(helm: Helm) -> None:
    manifests = helm.template()
    operator = f"{RELEASE}-operator"

    assert env_of(container(manifests, operator))["LAMBDALET_DISPATCHER_NAMESPACE"] == NAMESPACE
    role = manifests.get("Role", operator)
    assert role["metadata"]["namespace"] == NAMESPACE
    # Reads every Lease of the namespace (the dispatchers'); creates and renews only its own.
    assert rules_of(role) == {
        ("coordination.k8s.io", "leases", verb)
        for verb in ("get", "list", "watch", "create", "update")
    } | {("", "pods", "patch")}  # the leader labels its own pod
    update = [rule for rule in role["rules"] if "update" in rule["verbs"]]
    assert [rule.get("resourceNames") for rule in update] == [["lambdalet-operator"]]
    binding = manifests.get("RoleBinding", operator)
    assert binding["roleRef"]["name"] == operator
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": operator, "namespace": NAMESPACE}
    ]
    cluster_rules = rules_of(manifests.get("ClusterRole", operator))
    assert {
        ("lambdalet.dev", "eventsources", "get"),
        ("lambdalet.dev", "eventsources", "list"),
        ("lambdalet.dev", "eventsources", "watch"),
        ("lambdalet.dev", "eventsources/status", "get"),
        ("lambdalet.dev", "eventsources/status", "patch"),
        ("", "events", "create"),
    } <= cluster_rules
    # Still no Secrets for the operator.
    assert not {rule for rule in cluster_rules if rule[1] == "secrets"}


def test_disabled_renders_no_dispatcher(helm: Helm) -> None:
    manifests = helm.template({"dispatcher": {"enabled": False}})

    dispatcher_objects = [
        f"{o['kind']} {o['metadata']['name']}"
        for o in manifests
        if o["metadata"]["name"] == DISPATCHER
        or o["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "dispatcher"
    ]
    assert dispatcher_objects == []
    assert f"{RELEASE}-operator" in manifests.names("Deployment")
    assert f"{RELEASE}-activator" in manifests.names("Deployment")


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"dispatcher": {"replicas": "two"}}, "/dispatcher/replicas"),
        ({"dispatcher": {"replicas": -1}}, "/dispatcher/replicas"),
        ({"dispatcher": {"enabled": "yes"}}, "/dispatcher/enabled"),
        ({"dispatcher": {"webhookKeySecret": "Not_A_Name"}}, "/dispatcher/webhookKeySecret"),
        ({"dispatcher": {"image": {"pullPolicy": "Sometimes"}}}, "/dispatcher/image/pullPolicy"),
        ({"dispatcher": {"resources": "lots"}}, "/dispatcher/resources"),
        ({"dispatcher": {"extraEnv": []}}, "extraEnv"),
        ({"dispatcher": {"s3": {"queueDir": "relative"}}}, "/dispatcher/s3/queueDir"),
        ({"dispatcher": {"s3": {"allowRestart": "yes"}}}, "/dispatcher/s3/allowRestart"),
    ],
)
def test_schema_rejects(helm: Helm, values: dict[str, Any], complaint: str) -> None:
    done = helm.run("template", RELEASE, "--kube-version", KUBE_VERSION, values=values)

    assert done.returncode != 0
    assert complaint in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("values", "secret"),
    [({}, DISPATCHER), ({"dispatcher": {"webhookKeySecret": "s3-key"}}, "s3-key")],
)
def test_notes_name_the_s3_receiver(
    helm: Helm, tmp_path: Path, values: dict[str, Any], secret: str
) -> None:
    notes = helm.notes(values, tmp=tmp_path)

    assert f"http://{DISPATCHER}.{NAMESPACE}.svc/s3/<namespace>/<eventsource>" in notes
    assert f"Secret {secret} (key webhook-key)" in notes


def test_notes_without_dispatcher(helm: Helm, tmp_path: Path) -> None:
    assert "dispatcher" not in helm.notes({"dispatcher": {"enabled": False}}, tmp=tmp_path)
