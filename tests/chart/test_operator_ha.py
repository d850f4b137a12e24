"""The operator in the chart: two replicas, one leader (Lease lambdalet-operator), a rolling
update that starts the new pod as a follower, and the autoscaler Service selecting the leader's
pod alone (the leader labels it; a follower serves no autoscaler port)."""

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
    service = manifests.get("Service", f"{RELEASE}-autoscaler")
    assert service["spec"]["selector"]["lambdalet.dev/operator-role"] == "leader"
    assert service["spec"]["selector"].items() - {("lambdalet.dev/operator-role", "leader")} <= (
        deployment["spec"]["template"]["metadata"]["labels"].items()
    )
