"""The chart's side of reserved concurrency across activators (``activator.peers``/``forward``):
the activators' Leases in the release namespace and the key they hand each other invocations with.
"""

from __future__ import annotations

import base64
import string

from tests.chart.render import NAMESPACE, RELEASE, Helm, env_of

ACTIVATOR = f"{RELEASE}-activator"


def _env(helm: Helm, values: dict[str, object] | None = None) -> dict[str, object]:
    deployment = helm.template(values or {}).get("Deployment", ACTIVATOR)
    return env_of(deployment["spec"]["template"]["spec"]["containers"][0])


def test_the_activators_find_each_other_and_share_a_key(helm: Helm) -> None:
    env = _env(helm)

    assert env["LAMBDALET_PEERS_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["LAMBDALET_POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["LAMBDALET_PEER_KEY"] == {"secretKeyRef": {"name": ACTIVATOR, "key": "peer-key"}}


def test_the_peer_key_is_generated(helm: Helm) -> None:
    first = helm.template().get("Secret", ACTIVATOR)
    second = helm.template().get("Secret", ACTIVATOR)

    assert first["metadata"]["namespace"] == NAMESPACE
    assert set(first["data"]) == {"peer-key"}
    plain = base64.b64decode(first["data"]["peer-key"]).decode()
    assert len(plain) >= 32
    assert set(plain) <= set(string.ascii_letters + string.digits)
    # Random on a first install; an upgrade keeps the cluster's key (lookup).
    assert second["data"]["peer-key"] != first["data"]["peer-key"]


def test_a_peer_key_of_ones_own(helm: Helm) -> None:
    manifests = helm.template({"activator": {"peerKeySecret": "peers"}})

    assert ACTIVATOR not in manifests.names("Secret")
    assert _env(helm, {"activator": {"peerKeySecret": "peers"}})["LAMBDALET_PEER_KEY"] == {
        "secretKeyRef": {"name": "peers", "key": "peer-key"}
    }
