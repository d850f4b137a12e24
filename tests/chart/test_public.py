"""The activator's public entry point in the chart: off by default; when on, a second port that
serves only http.exposure: public Functions, its own Service, an optional Ingress, and a
NetworkPolicy rule for it."""

from __future__ import annotations

from tests.chart.render import RELEASE, Helm, env_of
from tests.chart.test_dispatcher import container

ACTIVATOR = f"{RELEASE}-activator"
PUBLIC = f"{RELEASE}-activator-public"


def test_off_by_default(helm: Helm) -> None:
    manifests = helm.template()
    activator = container(manifests, ACTIVATOR)
    assert "LAMBDALET_ACTIVATOR_PUBLIC_PORT_NUMBER" not in env_of(activator)
    assert "public" not in {port["name"] for port in activator["ports"]}
    assert PUBLIC not in manifests.names("Service")
    assert PUBLIC not in manifests.names("Ingress")


def test_public_port_service_and_ingress(helm: Helm) -> None:
    manifests = helm.template(
        {
            "activator": {
                "public": {
                    "enabled": True,
                    "serviceType": "LoadBalancer",
                    "ingress": {
                        "enabled": True,
                        "className": "nginx",
                        "host": "fn.example.com",
                        "tlsSecret": "fn-tls",
                    },
                }
            },
            "networkPolicy": {"enabled": True},
        }
    )
    activator = container(manifests, ACTIVATOR)
    assert env_of(activator)["LAMBDALET_ACTIVATOR_PUBLIC_PORT_NUMBER"] == "8090"
    assert {"name": "public", "containerPort": 8090} in activator["ports"]
    service = manifests.get("Service", PUBLIC)
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "public"}]
    assert service["spec"]["selector"] == manifests.get("Service", ACTIVATOR)["spec"]["selector"]
    ingress = manifests.get("Ingress", PUBLIC)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "fn.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"]["name"] == PUBLIC  # never the inner one
    assert ingress["spec"]["tls"] == [{"hosts": ["fn.example.com"], "secretName": "fn-tls"}]
    policy = manifests.get("NetworkPolicy", ACTIVATOR)
    assert {"ports": [{"protocol": "TCP", "port": 8090}]} in policy["spec"]["ingress"]


def test_an_ingress_needs_a_host(helm: Helm) -> None:
    done = helm.run(
        "template",
        RELEASE,
        "--kube-version",
        "1.33.0",
        values={"activator": {"public": {"enabled": True, "ingress": {"enabled": True}}}},
    )
    assert done.returncode != 0
    assert "activator.public.ingress.host" in done.stderr
