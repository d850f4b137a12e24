"""A pod's announcement: the body parsed strictly, and the pure checks of the token review and the
pod object. The API server's side is tested for real in tests/controlplane/test_announce.py."""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import pytest

from lambdalet.activator.announce import (
    MAX_BODY_BYTES,
    POD_NAME_CLAIM,
    POD_UID_CLAIM,
    TOKEN_AUDIENCE,
    Announcement,
    AnnouncementRejected,
    AnnouncementUnavailable,
    Identity,
    InvalidAnnouncement,
    ReviewCache,
    VerifiedPod,
    check_claims,
    check_pod,
    identity_of,
    verify,
)
from lambdalet.controller.functions.resources.deployment import (
    ANNOUNCE_AUDIENCE,
    ANNOUNCE_MOUNT_PATH,
    ANNOUNCE_TOKEN_PATH,
)
from lambdalet.k8s.client import Connection, KubeClient
from tests.kit.servers.agent import AGENT_SOURCE

BODY: dict[str, Any] = {
    "namespace": "team",
    "function": "hello",
    "pod": "fn-hello-5d8f7c9b4-x2x7q",
    "podIP": "10.244.0.7",
    "port": 8080,
    "concurrency": 2,
}
ANNOUNCEMENT = Announcement("team", "hello", "fn-hello-5d8f7c9b4-x2x7q", "10.244.0.7", 8080, 2)
UID = "6f1c2a9e-0000-4000-8000-000000000001"
IDENTITY = Identity("team", "default", "fn-hello-5d8f7c9b4-x2x7q", UID)


def body(**changes: Any) -> bytes:
    return json.dumps({**BODY, **changes}).encode()


def without(key: str) -> bytes:
    return json.dumps({k: v for k, v in BODY.items() if k != key}).encode()


# --------------------------------------------------------------------------- the body


@pytest.mark.parametrize(
    ("raw", "changes"),
    [
        (body(), {}),
        (body(podIP="fd00:10:244::7"), {"pod_ip": "fd00:10:244::7"}),
        (body(podIP="FD00:10:244:0::7"), {"pod_ip": "fd00:10:244::7"}),
        (body(podIP="::ffff:10.244.0.7"), {}),  # an IPv4-mapped address is the IPv4 one
        (body(pod="web.v2-0"), {"pod": "web.v2-0"}),  # a pod name is a DNS subdomain
        (body(port=1, concurrency=1000), {"port": 1, "concurrency": 1000}),
        (body(port=65535), {"port": 65535}),
        (body(version=2, zone="a"), {}),  # newer agents may say more
        (body(namespace="n" * 63), {"namespace": "n" * 63}),
    ],
)
def test_announcement_parses(raw: bytes, changes: dict[str, Any]) -> None:
    expected = Announcement(**{**ANNOUNCEMENT.__dict__, **changes})

    assert Announcement.from_json(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"x" * (MAX_BODY_BYTES + 1), "over 4096 bytes"),
        (body(pad="x" * MAX_BODY_BYTES), "over 4096 bytes"),
        (b"{", "not JSON"),
        (b'{"namespace": "\xff"}', "not JSON"),
        (b"[1]", "not a JSON object"),
        (b'{"port": 1, "port": 2}', "appears twice"),
        (without("namespace"), "namespace is missing"),
        (without("function"), "function is missing"),
        (without("pod"), "pod is missing"),
        (without("podIP"), "podIP is missing"),
        (without("port"), "port is missing"),
        (without("concurrency"), "concurrency is missing"),
        (body(namespace=7), "namespace is not a str"),
        (body(port="8080"), "port is not a int"),
        (body(port=8080.0), "port is not a int"),
        (body(port=True), "port is not a int"),
        (body(namespace="Team"), "not a Kubernetes name"),
        (body(namespace="n" * 64), "not a Kubernetes name"),
        (body(namespace="team.a"), "not a Kubernetes name"),
        (body(function="-hello"), "not a Kubernetes name"),
        (body(function="hello\n"), "not a Kubernetes name"),
        (body(pod="../etc"), "not a Kubernetes name"),
        (body(pod="a" * 254), "not a Kubernetes name"),
        (body(podIP="10.244.0"), "not an IPv4 or IPv6 address"),
        (body(podIP="010.244.0.7"), "not an IPv4 or IPv6 address"),
        (body(podIP="fe80::1%eth0"), "not an IPv4 or IPv6 address"),
        (body(podIP="pod.local"), "not an IPv4 or IPv6 address"),
        (body(port=0), "port 0 is not from 1 to 65535"),
        (body(port=65536), "port 65536 is not from 1 to 65535"),
        (body(concurrency=0), "concurrency 0 is not from 1 to 1000"),
        (body(concurrency=1001), "concurrency 1001 is not from 1 to 1000"),
    ],
)
def test_malformed_announcement_is_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(InvalidAnnouncement) as caught:
        Announcement.from_json(raw)

    assert reason in caught.value.reason
    assert caught.value.status == 400


# --------------------------------------------------------------------------- the token review


def review(**changes: Any) -> dict[str, Any]:
    """A TokenReview status as kube-apiserver 1.33 answers for a pod-bound token."""
    status: dict[str, Any] = {
        "authenticated": True,
        "audiences": [TOKEN_AUDIENCE],
        "user": {
            "username": "system:serviceaccount:team:default",
            "uid": "3d0e5c7a-sa",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:team"],
            "extra": {
                "authentication.kubernetes.io/credential-id": ["JTI=8b1e"],
                "authentication.kubernetes.io/pod-name": [IDENTITY.pod],
                "authentication.kubernetes.io/pod-uid": [UID],
            },
        },
    }
    return status | changes


def extra(claims: dict[str, Any]) -> dict[str, Any]:
    status = review()
    status["user"]["extra"] = claims
    return status


def test_identity_of_a_pod_bound_token() -> None:
    assert identity_of(review()) == IDENTITY


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (
            {"authenticated": False, "error": "token audiences are invalid"},
            "does not accept the token for audience lambdalet-activator: token audiences",
        ),
        ({}, "does not accept the token"),
        (review(audiences=["https://kubernetes.default.svc"]), "not for audience"),
        (review(audiences=None), "not for audience"),
        (review(user={"username": "alice"}), "'alice''s, not a service account's"),
        (review(user={"username": "system:serviceaccount:team"}), "not a service account's"),
        (extra({}), "not bound to a pod"),
        (extra({POD_NAME_CLAIM: ["p"]}), "not bound to a pod"),
        (extra({POD_NAME_CLAIM: ["p", "q"], POD_UID_CLAIM: [UID]}), "not bound to a pod"),
        (extra({POD_NAME_CLAIM: "p", POD_UID_CLAIM: UID}), "not bound to a pod"),
    ],
)
def test_token_review_that_does_not_vouch_for_a_pod(status: dict[str, Any], reason: str) -> None:
    with pytest.raises(AnnouncementRejected) as caught:
        identity_of(status)

    assert reason in caught.value.reason
    assert caught.value.status == 403


@pytest.mark.parametrize(
    ("identity", "reason"),
    [
        (
            Identity("other", "default", IDENTITY.pod, UID),
            "the token is of namespace other, the announcement names namespace team",
        ),
        (
            Identity("team", "default", "fn-bye-1", UID),
            "the token is bound to pod fn-bye-1, the announcement names pod fn-hello-",
        ),
    ],
    ids=["namespace", "pod"],
)
def test_token_must_speak_for_the_announced_pod(identity: Identity, reason: str) -> None:
    check_claims(IDENTITY, ANNOUNCEMENT)
    with pytest.raises(AnnouncementRejected, match=reason):
        check_claims(identity, ANNOUNCEMENT)


# --------------------------------------------------------------------------- the pod object


def pod(**changes: Any) -> dict[str, Any]:
    """The pod object as the API server returns it, still Pending (no IP reported yet)."""
    manifest: dict[str, Any] = {
        "metadata": {
            "name": IDENTITY.pod,
            "namespace": "team",
            "uid": UID,
            "labels": {"lambdalet.dev/function": "hello"},
        },
        "spec": {"containers": [{"name": "function", "ports": [{"containerPort": 8080}]}]},
        "status": {"phase": "Pending"},
    }
    for path, value in changes.items():
        section, key = path.split("__")
        manifest[section][key] = value
    return manifest


VERIFIED = VerifiedPod(("team", "hello"), IDENTITY.pod, UID, "10.244.0.7", 8080, 2)


@pytest.mark.parametrize(
    ("manifest", "peer"),
    [
        (pod(), "10.244.0.7"),
        (pod(), "::ffff:10.244.0.7"),  # the activator's dual-stack socket
        (pod(), None),  # the peer check turned off
        (pod(status__podIP="10.244.0.7"), "10.244.0.7"),
        (pod(status__podIPs=[{"ip": "fd00::7"}, {"ip": "10.244.0.7"}]), "10.244.0.7"),
        (pod(metadata__labels={"lambdalet.dev/function": "hello", "x": "y"}), "10.244.0.7"),
    ],
    ids=["pending", "mapped-peer", "no-peer-check", "ip-reported", "dual-stack", "more-labels"],
)
def test_pod_vouches_for_the_announcement(manifest: dict[str, Any], peer: str | None) -> None:
    assert check_pod(manifest, IDENTITY, ANNOUNCEMENT, peer) == VERIFIED


@pytest.mark.parametrize(
    ("manifest", "peer", "reason"),
    [
        (
            pod(metadata__uid="another-uid"),
            "10.244.0.7",
            "not the pod the token was made for (it was deleted and created again)",
        ),
        (pod(metadata__deletionTimestamp="2024-05-01T00:00:00Z"), "10.244.0.7", "being deleted"),
        (
            pod(metadata__labels={"lambdalet.dev/function": "bye"}),
            "10.244.0.7",
            "is not of Function hello (its label lambdalet.dev/function is 'bye')",
        ),
        (pod(metadata__labels={}), "10.244.0.7", "its label lambdalet.dev/function is None"),
        (
            pod(spec__containers=[{"name": "function"}]),
            "10.244.0.7",
            "declares no container port 8080",
        ),
        (
            pod(status__podIP="10.244.0.9"),
            "10.244.0.7",
            "has IP 10.244.0.9, the announcement says 10.244.0.7",
        ),
        (
            pod(),
            "10.244.0.8",
            "came from 10.244.0.8, not from the pod's IP 10.244.0.7 (behind source NAT",
        ),
        (pod(), "not-an-address", "came from not-an-address"),
    ],
)
def test_pod_that_does_not_vouch_for_the_announcement(
    manifest: dict[str, Any], peer: str, reason: str
) -> None:
    with pytest.raises(AnnouncementRejected) as caught:
        check_pod(manifest, IDENTITY, ANNOUNCEMENT, peer)

    assert reason in caught.value.reason


def test_a_pod_being_deleted_may_withdraw_but_not_announce() -> None:
    stopping = pod(metadata__deletionTimestamp="2024-05-01T00:00:00Z")

    assert check_pod(stopping, IDENTITY, ANNOUNCEMENT, "10.244.0.7", leaving=True) == VERIFIED
    with pytest.raises(AnnouncementRejected, match="being deleted"):
        check_pod(stopping, IDENTITY, ANNOUNCEMENT, "10.244.0.7")


# --------------------------------------------------------------------------- the review cache


def test_review_cache_keeps_an_identity_for_a_minute_by_the_tokens_hash() -> None:
    cache = ReviewCache()
    cache.put("token-a", IDENTITY, now=100.0)

    assert cache.get("token-a", now=159.9) == IDENTITY
    assert cache.get("token-a", now=160.0) is None
    assert cache.get("token-b", now=100.0) is None
    assert "token-a" not in repr(cache.__dict__)  # only the hash is kept


def test_review_cache_is_bounded_and_drops_the_oldest() -> None:
    cache = ReviewCache(size=2)
    for i, token in enumerate(["a", "b", "a", "c"]):  # "a" again: now newer than "b"
        cache.put(token, IDENTITY, now=float(i))

    assert [cache.get(t, now=3.0) is not None for t in ["a", "b", "c"]] == [True, False, True]


# --------------------------------------------------------------------------- verify's shell


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_api_server_out_of_reach_is_a_transient_error() -> None:
    client = KubeClient(Connection(server=f"http://127.0.0.1:{closed_port()}"))
    try:
        with pytest.raises(AnnouncementUnavailable, match="cannot review the token") as caught:
            await verify(client, "token", ANNOUNCEMENT, "10.244.0.7")
        assert caught.value.status == 503

        # A token under review lately is not sent again: the pod is read at once.
        cache = ReviewCache()
        cache.put("token", IDENTITY, now=0.0)
        with pytest.raises(AnnouncementUnavailable, match="cannot read the pod"):
            await verify(client, "token", ANNOUNCEMENT, "10.244.0.7", cache=cache, now=1.0)
    finally:
        await client.aclose()


@pytest.mark.parametrize("token", ["", "x" * 16385])
async def test_no_usable_token_is_rejected_without_asking(token: str) -> None:
    client = KubeClient(Connection(server=f"http://127.0.0.1:{closed_port()}"))
    try:
        with pytest.raises(AnnouncementRejected, match="no usable bearer token"):
            await verify(client, token, ANNOUNCEMENT, "10.244.0.7")
    finally:
        await client.aclose()


# --------------------------------------------------------------------------- one contract


def test_operator_agent_and_activator_agree_on_the_token() -> None:
    agent = (AGENT_SOURCE / "announce.go").read_text()
    [agent_default] = re.findall(r'defaultAnnounceTokenFile\s*=\s*"([^"]+)"', agent)

    assert ANNOUNCE_AUDIENCE == TOKEN_AUDIENCE
    assert f"{ANNOUNCE_MOUNT_PATH}/{ANNOUNCE_TOKEN_PATH}" == agent_default
