"""The chart's NetworkPolicies (networkPolicy.enabled): ingress to the activator, the operator's
autoscaler and the dispatcher, on the container ports the pods really listen on, from the peers
that really call them; egress untouched."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.render import KUBE_VERSION, NAMESPACE, RELEASE, Helm, Manifests

ACTIVATOR, OPERATOR, DISPATCHER = (
    f"{RELEASE}-{c}" for c in ("activator", "operator", "dispatcher")
)
ON = {"networkPolicy": {"enabled": True}}
EVERY_NAMESPACE: list[dict[str, Any]] = [{"namespaceSelector": {}}]
OWN_PODS = {
    "podSelector": {
        "matchLabels": {
            "app.kubernetes.io/name": "lambdalet",
            "app.kubernetes.io/instance": RELEASE,
        }
    }
}


def pod_labels(manifests: Manifests, deployment: str) -> dict[str, str]:
    return dict(manifests.get("Deployment", deployment)["spec"]["template"]["metadata"]["labels"])


def container_ports(manifests: Manifests, deployment: str) -> dict[str, int]:
    (container,) = manifests.get("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return {p["name"]: p["containerPort"] for p in container["ports"]}


def ingress(manifests: Manifests, name: str) -> list[tuple[int, Any]]:
    """(port, from) of each rule; from None: anywhere."""
    rules = manifests.get("NetworkPolicy", name)["spec"]["ingress"]
    out = []
    for rule in rules:
        (port,) = rule["ports"]
        assert port["protocol"] == "TCP"
        out.append((port["port"], rule.get("from")))
    return out


def selects(peer: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a same-namespace podSelector peer picks pods with ``labels``."""
    assert set(peer) == {"podSelector"}
    return bool(peer["podSelector"]["matchLabels"].items() <= labels.items())


def test_off_by_default(helm: Helm) -> None:
    assert helm.template().names("NetworkPolicy") == set()


def test_policies_select_their_pods(helm: Helm) -> None:
    manifests = helm.template(ON)

    assert manifests.names("NetworkPolicy") == {ACTIVATOR, OPERATOR, DISPATCHER}
    for name in (ACTIVATOR, OPERATOR, DISPATCHER):
        policy = manifests.get("NetworkPolicy", name)
        selector = policy["spec"]["podSelector"]["matchLabels"]
        assert policy["apiVersion"] == "networking.k8s.io/v1"
        assert policy["metadata"]["namespace"] == NAMESPACE
        # Ingress only: egress (to function pods, brokers, the API server) is not restricted.
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        assert selector == manifests.get("Deployment", name)["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels(manifests, name).items()


def test_activator_takes_invocations_from_anywhere_and_announcements_from_every_namespace(
    helm: Helm,
) -> None:
    manifests = helm.template(ON)
    ports = container_ports(manifests, ACTIVATOR)

    assert ingress(manifests, ACTIVATOR) == [
        (ports["http"], None),
        (ports["internal"], EVERY_NAMESPACE),
    ]
    assert ports == {"http": 8080, "internal": 8081}
    # The ports function pods announce to and the activator Service forwards to.
    peers = manifests.get("Service", f"{ACTIVATOR}-peers")["spec"]["ports"]
    assert peers == [{"name": "internal", "port": 8081, "targetPort": "internal"}]
    service = manifests.get("Service", ACTIVATOR)["spec"]["ports"]
    assert service == [{"name": "http", "port": 80, "targetPort": "http"}]


def test_activator_from_chosen_peers_and_the_releases_own_pods(helm: Helm) -> None:
    chosen = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}},
        {
            "namespaceSelector": {"matchLabels": {"team": "a"}},
            "podSelector": {"matchExpressions": [{"key": "role", "operator": "Exists"}]},
        },
        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
    ]
    manifests = helm.template({"networkPolicy": {"enabled": True, "activatorFrom": chosen}})

    ((http, peers), internal) = ingress(manifests, ACTIVATOR)
    assert http == 8080
    assert peers == [*chosen, OWN_PODS]
    assert internal == (8081, EVERY_NAMESPACE)
    # The dispatcher invokes through the activator, and so does `helm test`'s pod.
    assert selects(OWN_PODS, pod_labels(manifests, DISPATCHER))
    hook = manifests.get("Pod", f"{RELEASE}-helm-test")
    assert selects(OWN_PODS, hook["metadata"]["labels"])


def test_autoscaler_only_from_activators_and_dispatchers(helm: Helm) -> None:
    manifests = helm.template(ON)
    ((port, peers),) = ingress(manifests, OPERATOR)

    assert port == container_ports(manifests, OPERATOR)["autoscaler"] == 8082
    assert len(peers) == 2
    (activator, dispatcher) = peers
    assert selects(activator, pod_labels(manifests, ACTIVATOR))
    assert not selects(activator, pod_labels(manifests, DISPATCHER))
    assert selects(dispatcher, pod_labels(manifests, DISPATCHER))
    assert not selects(dispatcher, pod_labels(manifests, OPERATOR))
    # Nothing else: not the operator's health port (the kubelet's probes come from the node,
    # which NetworkPolicy always lets through).
    assert container_ports(manifests, OPERATOR) == {"health": 8080, "autoscaler": 8082}
    autoscaler = manifests.get("Service", f"{RELEASE}-autoscaler")["spec"]["ports"]
    assert autoscaler == [{"name": "autoscaler", "port": 8082, "targetPort": "autoscaler"}]


def test_dispatcher_takes_s3_notifications_from_anywhere(helm: Helm) -> None:
    manifests = helm.template(ON)

    assert ingress(manifests, DISPATCHER) == [
        (container_ports(manifests, DISPATCHER)["http"], None)
    ]


def test_without_dispatcher(helm: Helm) -> None:
    manifests = helm.template({**ON, "dispatcher": {"enabled": False}})

    assert manifests.names("NetworkPolicy") == {ACTIVATOR, OPERATOR}
    ((_, peers),) = ingress(manifests, OPERATOR)
    assert [p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in peers] == [
        "activator"
    ]


@pytest.mark.parametrize(
    "values",
    [
        ON,
        {"networkPolicy": {"enabled": True, "activatorFrom": [{"podSelector": {}}]}},
        {**ON, "dispatcher": {"enabled": False}},
    ],
)
def test_lint_strict(helm: Helm, values: dict[str, Any]) -> None:
    done = helm.run("lint", "--strict", values=values)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"networkPolicy": {"enabled": "yes"}}, "/networkPolicy/enabled"),
        ({"networkPolicy": {"egress": []}}, "egress"),
        ({"networkPolicy": {"activatorFrom": "everyone"}}, "/networkPolicy/activatorFrom"),
        ({"networkPolicy": {"activatorFrom": [{}]}}, "/networkPolicy/activatorFrom/0"),
        (
            {"networkPolicy": {"activatorFrom": [{"podSelector": {"app": "x"}}]}},
            "/networkPolicy/activatorFrom/0/podSelector",
        ),
        (
            {"networkPolicy": {"activatorFrom": [{"ipBlock": {"except": ["10.0.0.0/8"]}}]}},
            "/networkPolicy/activatorFrom/0/ipBlock",
        ),
    ],
)
def test_schema_rejects(helm: Helm, values: dict[str, Any], complaint: str) -> None:
    done = helm.run("template", RELEASE, "--kube-version", KUBE_VERSION, values=values)

    assert done.returncode != 0
    assert complaint in done.stderr, done.stderr
