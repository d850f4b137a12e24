"""The chart's PodDisruptionBudgets: two activators by default, one of them kept through node
drains; a budget for the dispatcher only when it has more than one replica (a budget of
minAvailable 1 over a single pod would block every drain)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.chart.render import KUBE_VERSION, NAMESPACE, RELEASE, Helm, Manifests, env_of

ACTIVATOR = f"{RELEASE}-activator"
DISPATCHER = f"{RELEASE}-dispatcher"


def budgets(manifests: Manifests) -> set[str]:
    """The activator's and the dispatcher's budgets (the operator's: test_operator_ha.py)."""
    return manifests.names("PodDisruptionBudget") - {f"{RELEASE}-operator"}


def pod_labels(manifests: Manifests, deployment: str) -> dict[str, str]:
    return dict(manifests.get("Deployment", deployment)["spec"]["template"]["metadata"]["labels"])


def test_two_activators_and_a_budget_by_default(helm: Helm) -> None:
    manifests = helm.template()

    assert manifests.get("Deployment", ACTIVATOR)["spec"]["replicas"] == 2
    assert manifests.get("Deployment", DISPATCHER)["spec"]["replicas"] == 1
    assert budgets(manifests) == {ACTIVATOR}


@pytest.mark.parametrize(
    ("deployment", "values"),
    [
        (ACTIVATOR, {}),
        (DISPATCHER, {"dispatcher": {"replicas": 3}}),
    ],
)
def test_budget_keeps_one_pod_of_its_deployment(
    helm: Helm, deployment: str, values: dict[str, Any]
) -> None:
    manifests = helm.template(values)
    budget = manifests.get("PodDisruptionBudget", deployment)
    labels = pod_labels(manifests, deployment)
    selector = budget["spec"]["selector"]["matchLabels"]

    assert budget["apiVersion"] == "policy/v1"
    assert budget["metadata"]["namespace"] == NAMESPACE
    assert budget["spec"] == {"minAvailable": 1, "selector": {"matchLabels": selector}}
    assert selector.items() <= labels.items()
    # Its own Deployment's pods only: the selector is the Deployment's.
    assert selector == manifests.get("Deployment", deployment)["spec"]["selector"]["matchLabels"]
    assert (
        budget["metadata"]["labels"]["app.kubernetes.io/component"]
        == (labels["app.kubernetes.io/component"])
    )


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"activator": {"replicas": 1}}, set()),
        ({"activator": {"replicas": 0}}, set()),
        ({"activator": {"replicas": 3, "pdb": {"enabled": False}}}, set()),
        ({"dispatcher": {"replicas": 2}}, {ACTIVATOR, DISPATCHER}),
        ({"dispatcher": {"replicas": 2, "pdb": {"enabled": False}}}, {ACTIVATOR}),
        ({"dispatcher": {"replicas": 2, "enabled": False}}, {ACTIVATOR}),
        (
            {"activator": {"replicas": 1}, "dispatcher": {"replicas": 2}},
            {DISPATCHER},
        ),
    ],
)
def test_budgets_only_above_one_replica(
    helm: Helm, values: dict[str, Any], expected: set[str]
) -> None:
    assert budgets(helm.template(values)) == expected


@pytest.mark.parametrize(
    "values",
    [
        {"activator": {"replicas": 1}},
        {"dispatcher": {"replicas": 4}},
        {"activator": {"pdb": {"enabled": False}}, "dispatcher": {"pdb": {"enabled": False}}},
    ],
)
def test_lint_strict(helm: Helm, values: dict[str, Any]) -> None:
    done = helm.run("lint", "--strict", values=values)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"activator": {"pdb": {"enabled": "yes"}}}, "/activator/pdb/enabled"),
        ({"activator": {"pdb": {"minAvailable": 2}}}, "minAvailable"),
        ({"dispatcher": {"pdb": True}}, "/dispatcher/pdb"),
    ],
)
def test_schema_rejects(helm: Helm, values: dict[str, Any], complaint: str) -> None:
    done = helm.run("template", RELEASE, "--kube-version", KUBE_VERSION, values=values)

    assert done.returncode != 0
    assert complaint in done.stderr, done.stderr


def activator_pod(manifests: Manifests) -> dict[str, Any]:
    return dict(manifests.get("Deployment", ACTIVATOR)["spec"]["template"]["spec"])


@pytest.mark.parametrize(
    ("values", "grace", "drain", "shutdown"),
    [
        ({}, 90, "5", "80"),
        ({"drainSeconds": 2.5, "terminationGracePeriodSeconds": 30}, 30, "2.5", "22.5"),
        ({"drainSeconds": 0, "terminationGracePeriodSeconds": 10}, 10, "0", "5"),
    ],
)
def test_activator_stops_within_its_grace_period(
    helm: Helm, values: dict[str, Any], grace: int, drain: str, shutdown: str
) -> None:
    pod = activator_pod(helm.template({"activator": values}))
    env = env_of(pod["containers"][0])

    assert pod["terminationGracePeriodSeconds"] == grace
    assert env["LAMBDALET_DRAIN_SECONDS"] == drain
    # The requests in progress get what is left of the grace period, less 5 s for the exit.
    assert env["LAMBDALET_SHUTDOWN_TIMEOUT_SECONDS"] == shutdown


def test_a_drain_longer_than_the_grace_period_is_refused(helm: Helm) -> None:
    done = helm.run(
        "template", RELEASE, "-n", NAMESPACE, "--kube-version", KUBE_VERSION,
        values={"activator": {"drainSeconds": 60, "terminationGracePeriodSeconds": 60}},
    )  # fmt: skip

    assert done.returncode != 0
    assert "activator.terminationGracePeriodSeconds (60) must exceed activator.drainSeconds" in (
        done.stderr
    )
