"""Kubernetes service links cannot reach any setting, whatever the release is called: every pod
the chart makes turns them off, and no component reads a variable a rendered Service would inject
(the README's own `helm install lambdalet …` once made the activator read its Service's
``LAMBDALET_ACTIVATOR_PORT=tcp://…`` as its port)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lambdalet.service_links import ServicePort, injected_names
from tests.chart.render import Helm, Manifests
from tests.component_settings import all_settings

# Everything that renders a Service or a pod switched on.
EVERYTHING = {
    "activator": {"public": {"enabled": True, "ingress": {"enabled": True, "host": "fn.test"}}},
    "dispatcher": {"replicas": 2},
    "networkPolicy": {"enabled": True},
    "tests": {"enabled": True},
}
RELEASES = [
    ("lambdalet", "lambdalet-system"),  # the README's
    ("lambdalet", "default"),
    ("lam", "lam-system"),
    ("x", "lambdalet-system"),
    ("lambdalet-activator", "a"),
    ("lambdalet-runtime-api", "lambdalet-system"),
    ("a-b-c-9", "team-a"),
]


def pod_specs(value: Any) -> Iterator[dict[str, Any]]:
    """Every pod spec in an object, wherever it sits (a Pod's spec, a Deployment's template, a
    CronJob's job template): each mapping with containers."""
    if isinstance(value, dict):
        if "containers" in value:
            yield value
        for item in value.values():
            yield from pod_specs(item)
    elif isinstance(value, list):
        for item in value:
            yield from pod_specs(item)


def injected(manifests: Manifests) -> set[str]:
    """What the kubelet would inject into a pod of the namespace for the rendered Services
    (headless ones included, though it leaves those out: stricter)."""
    names: set[str] = set()
    for service in (o for o in manifests if o["kind"] == "Service"):
        ports = [
            ServicePort(p["port"], p.get("name", ""), p.get("protocol", "TCP"))
            for p in service["spec"].get("ports", [])
        ]
        names |= injected_names(service["metadata"]["name"], ports)
    return names


@pytest.mark.parametrize(("release", "namespace"), RELEASES)
def test_no_setting_is_a_service_link(helm: Helm, release: str, namespace: str) -> None:
    manifests = helm.template(EVERYTHING, release=release, namespace=namespace)
    links = injected(manifests)
    assert f"{release.upper().replace('-', '_')}_ACTIVATOR_PORT" in links

    clashes = {component: sorted(names & links) for component, names in all_settings().items()}
    assert not any(clashes.values()), clashes


@pytest.mark.parametrize(("release", "namespace"), RELEASES[:1])
def test_every_pod_turns_service_links_off(helm: Helm, release: str, namespace: str) -> None:
    manifests = helm.template(EVERYTHING, release=release, namespace=namespace)
    pods = {
        f"{o['kind']}/{o['metadata']['name']}": spec
        for o in manifests
        for spec in pod_specs(o.get("spec"))
    }

    assert {
        f"Deployment/{release}-operator",
        f"Deployment/{release}-activator",
        f"Deployment/{release}-dispatcher",
        f"Pod/{release}-helm-test",
    } <= set(pods)
    assert {name: spec.get("enableServiceLinks") for name, spec in pods.items()} == {
        name: False for name in pods
    }
