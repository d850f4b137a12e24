"""The operator in the chart: two replicas, one leader (Lease lambdalet-operator), a rolling
update that starts the new pod as a follower, and a disruption budget."""

from __future__ import annotations

from tests.chart.render import NAMESPACE, RELEASE, Helm, env_of
from tests.chart.test_dispatcher import container

OPERATOR = f"{RELEASE}-operator"


def test_two_replicas_elect_a_leader(helm: Helm) -> None:
    manifests = helm.template()
    deployment = manifests.get("Deployment", OPERATOR)
    env = env_of(container(manifests, OPERATOR))

    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    assert env["LAMBDALET_LEADER_ELECTION_NAMESPACE"] == NAMESPACE
    assert env["LAMBDALET_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    budget = manifests.get("PodDisruptionBudget", OPERATOR)
    assert budget["spec"]["minAvailable"] == 1
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_a_single_replica_has_no_budget(helm: Helm) -> None:
    manifests = helm.template({"operator": {"replicas": 1}})
    assert manifests.get("Deployment", OPERATOR)["spec"]["replicas"] == 1
    assert OPERATOR not in manifests.names("PodDisruptionBudget")
