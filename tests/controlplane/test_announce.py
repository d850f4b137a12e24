"""A function pod's announcement verified against a real kube-apiserver: TokenReview of a token
bound to the pod (as the kubelet projects it), then the pod object itself.

The pods are the operator's own pod template (``deployment``) in a namespace that enforces the
restricted Pod Security Standard, with the announce token volume the API server must admit. No
kubelet runs on this bed: the pods stay Pending, which is all the checks need (the objects and
their uids exist; the tokens are made as the kubelet would ask for them).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, replace
from typing import Any

import pytest

from lambdalet.activator.announce import (
    TOKEN_AUDIENCE,
    Announcement,
    AnnouncementRejected,
    ReviewCache,
    VerifiedPod,
    verify,
)
from lambdalet.activator.events import HttpRequest
from lambdalet.activator.internal import Internal
from lambdalet.activator.kube import ClusterView
from lambdalet.activator.metrics import Metrics
from lambdalet.activator.model import FunctionConfig
from lambdalet.activator.proxy import Proxy, ProxyLimits
from lambdalet.activator.upstream import Pool
from lambdalet.activator.warnings import InitErrorEvents
from lambdalet.api.function import Function
from lambdalet.contracts.invocation import InvokeRejected
from lambdalet.controller.functions.resources import deployment
from lambdalet.k8s.client import KubeClient
from lambdalet.settings import Settings
from tests.api.cases import function, named
from tests.kit.servers.kube import Cluster
from tests.kit.wait import wait_for

pytestmark = pytest.mark.controlplane

SERVICE_ACCOUNT = "fn"
POD_IP = "10.244.0.7"


@pytest.fixture
def namespace(controlplane: Cluster, cp_namespace: str) -> str:
    """A namespace that admits only restricted pods, with the pods' service account."""
    controlplane.kubectl(
        "label", "namespace", cp_namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    controlplane.kubectl("create", "serviceaccount", SERVICE_ACCOUNT, "-n", cp_namespace)
    return cp_namespace


def create_pod(cluster: Cluster, namespace: str, name: str, fn: str = "hello") -> str:
    """A pod of Function ``fn`` from the operator's template; its uid."""
    manifest = named(function(), fn)
    manifest["metadata"] |= {"namespace": namespace, "uid": f"uid-of-{fn}"}
    template = deployment(Function.model_validate(manifest), Settings())["spec"]["template"]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {**template["metadata"], "name": name},
        "spec": {**template["spec"], "serviceAccountName": SERVICE_ACCOUNT},
    }
    done = cluster.kubectl(
        "create", "-n", namespace, "-o", "json", "-f", "-", input=json.dumps(pod)
    )
    created = json.loads(done.stdout)
    assert any(v["name"] == "announce" for v in created["spec"]["volumes"])
    uid: str = created["metadata"]["uid"]
    return uid


def token(cluster: Cluster, namespace: str, pod: str | None, audience: str = TOKEN_AUDIENCE) -> str:
    """A token as the kubelet asks for a projected volume: for the pod's service account,
    bound to the pod (``pod`` None: bound to nothing)."""
    bound = ["--bound-object-kind", "Pod", "--bound-object-name", pod] if pod else []
    args = ["create", "token", SERVICE_ACCOUNT, "-n", namespace, "--audience", audience, *bound]
    return cluster.kubectl(*args).stdout.strip()


def announcement(namespace: str, pod: str, fn: str = "hello") -> Announcement:
    return Announcement(namespace, fn, pod, POD_IP, 8080, 1)


async def test_announcement_of_a_function_pod_is_verified(
    controlplane: Cluster, namespace: str, client: KubeClient
) -> None:
    uid = create_pod(controlplane, namespace, "hello-1")
    bearer = token(controlplane, namespace, "hello-1")

    verified = await verify(client, bearer, announcement(namespace, "hello-1"), POD_IP)

    assert verified == VerifiedPod((namespace, "hello"), "hello-1", uid, POD_IP, 8080, 1)
    # Behind source NAT the caller turns the peer check off.
    turned_off = await verify(
        client, bearer, announcement(namespace, "hello-1"), "10.9.9.9", check_peer=False
    )
    assert turned_off == verified


# (what is wrong, the token's pod and audience, the announcement's changes, the peer, reason)
REJECTED: list[tuple[str, str | None, str, dict[str, Any], str, str]] = [
    (
        "wrong-audience",
        "hello-1",
        "https://kubernetes.default.svc.cluster.local",
        {},
        POD_IP,
        "does not accept the token for audience lambdalet-activator",
    ),
    (
        "pod-of-another-function",
        "bye-1",
        TOKEN_AUDIENCE,
        {"pod": "bye-1"},
        POD_IP,
        "is not of Function hello (its label lambdalet.dev/function is 'bye')",
    ),
    (
        "pod-name-mismatch",
        "hello-1",
        TOKEN_AUDIENCE,
        {"pod": "hello-2"},
        POD_IP,
        "the token is bound to pod hello-1, the announcement names pod hello-2",
    ),
    (
        "namespace-mismatch",
        "hello-1",
        TOKEN_AUDIENCE,
        {"namespace": "elsewhere"},
        POD_IP,
        "the announcement names namespace elsewhere",
    ),
    (
        "peer-ip-mismatch",
        "hello-1",
        TOKEN_AUDIENCE,
        {},
        "10.244.3.3",
        "the announcement came from 10.244.3.3, not from the pod's IP 10.244.0.7",
    ),
    (
        "token-bound-to-no-pod",
        None,
        TOKEN_AUDIENCE,
        {},
        POD_IP,
        "the token is not bound to a pod",
    ),
]


@pytest.mark.parametrize(
    ("token_pod", "audience", "changes", "peer", "reason"),
    [r[1:] for r in REJECTED],
    ids=[r[0] for r in REJECTED],
)
async def test_announcement_that_the_api_server_does_not_vouch_for(
    controlplane: Cluster,
    namespace: str,
    client: KubeClient,
    token_pod: str | None,
    audience: str,
    changes: dict[str, Any],
    peer: str,
    reason: str,
) -> None:
    for pod, fn in [("hello-1", "hello"), ("hello-2", "hello"), ("bye-1", "bye")]:
        create_pod(controlplane, namespace, pod, fn)
    bearer = token(controlplane, namespace, token_pod, audience)
    claimed = replace(announcement(namespace, "hello-1"), **changes)

    with pytest.raises(AnnouncementRejected) as caught:
        await verify(client, bearer, claimed, peer)

    assert reason in caught.value.reason


async def test_garbage_token_is_rejected(
    controlplane: Cluster, namespace: str, client: KubeClient
) -> None:
    create_pod(controlplane, namespace, "hello-1")

    with pytest.raises(AnnouncementRejected, match="does not accept the token"):
        await verify(client, "garbage.not.a-jwt", announcement(namespace, "hello-1"), POD_IP)


async def verified_once(
    controlplane: Cluster, namespace: str, client: KubeClient
) -> tuple[str, Announcement, ReviewCache]:
    """Pod hello-1's announcement, verified once with its token: the token, the announcement and
    the cache that keeps the review."""
    create_pod(controlplane, namespace, "hello-1")
    bearer = token(controlplane, namespace, "hello-1")
    cache = ReviewCache()
    claimed = announcement(namespace, "hello-1")
    await verify(client, bearer, claimed, POD_IP, cache=cache)
    return bearer, claimed, cache


async def test_token_of_a_pod_created_again_under_its_name_is_rejected(
    controlplane: Cluster, namespace: str, client: KubeClient
) -> None:
    bearer, claimed, cache = await verified_once(controlplane, namespace, client)

    controlplane.kubectl("delete", "pod", "hello-1", "-n", namespace, "--wait=true")
    create_pod(controlplane, namespace, "hello-1")

    # The API server checks a token's pod against its informer's copy, which may not have seen
    # the new pod yet; either it refuses the token or the uid of the pod read back does.
    with pytest.raises(
        AnnouncementRejected, match=r"does not accept the token|deleted and created again"
    ):
        await verify(client, bearer, claimed, POD_IP)
    # A review still cached does not let it through either: the new pod has another uid.
    with pytest.raises(AnnouncementRejected, match="deleted and created again"):
        await verify(client, bearer, claimed, POD_IP, cache=cache)


async def test_token_of_a_deleted_pod_is_rejected_even_when_cached(
    controlplane: Cluster, namespace: str, client: KubeClient
) -> None:
    bearer, claimed, cache = await verified_once(controlplane, namespace, client)

    controlplane.kubectl("delete", "pod", "hello-1", "-n", namespace, "--wait=true")

    with pytest.raises(AnnouncementRejected, match=f"pod {namespace}/hello-1 does not exist"):
        await verify(client, bearer, claimed, POD_IP, cache=cache)


def init_error_request(namespace: str, pod: str, bearer: str) -> HttpRequest:
    body = {
        **asdict(announcement(namespace, pod)),
        "errorType": "Runtime.ImportModuleError",
        "error": {"errorType": "Runtime.ImportModuleError", "errorMessage": "No module named 'x'"},
    }
    body["podIP"] = body.pop("pod_ip")
    return HttpRequest(
        method="POST",
        path="/v1/init-error",
        query="",
        headers=(("Authorization", f"Bearer {bearer}"),),
        body=json.dumps(body).encode(),
        source_ip=POD_IP,
    )


async def test_an_init_error_report_is_verified_like_an_announcement(
    crds: Cluster, namespace: str, client: KubeClient
) -> None:
    controlplane = crds
    create_pod(controlplane, namespace, "hello-1")
    create_pod(controlplane, namespace, "bye-1", fn="bye")
    controlplane.apply([named(function(), "hello")], "-n", namespace)
    uid = controlplane.get("function", "hello", "-n", namespace)["metadata"]["uid"]
    proxy = Proxy(Pool(), poke=lambda key: None, metrics=Metrics(), limits=ProxyLimits())
    proxy.set_config(FunctionConfig(namespace=namespace, name="hello", uid=uid))
    # Two activators of one release: each gets every report.
    events = [InitErrorEvents(client), InitErrorEvents(client)]
    internals = [
        Internal(client, proxy, Metrics(), ClusterView(client, proxy), init_errors=e)
        for e in events
    ]
    internal = internals[0]
    try:
        # A token of another Function's pod is refused: nothing is recorded.
        stranger = token(controlplane, namespace, "bye-1")
        refused = await internal.handle(init_error_request(namespace, "bye-1", stranger))
        assert refused.status == 403
        soon = asyncio.get_running_loop().time() + 0.2
        with pytest.raises(InvokeRejected) as held:  # held until its deadline, as before
            await proxy.invoke((namespace, "hello"), b"{}", request_id="r0", deadline=soon)
        assert held.value.status == 504

        reported = await internal.handle(
            init_error_request(namespace, "hello-1", token(controlplane, namespace, "hello-1"))
        )
        assert reported.status == 204, reported.body
        result = await proxy.invoke((namespace, "hello"), b"{}", request_id="r1")
        assert (result.status, result.function_error) == (502, "Unhandled")
        assert json.loads(result.body)["errorMessage"] == "No module named 'x'"

        # The report reached both activators: one Warning Event on the Function between them,
        # which `kubectl describe fn` shows.
        again = await internals[1].handle(
            init_error_request(namespace, "hello-1", token(controlplane, namespace, "hello-1"))
        )
        assert again.status == 204
        for e in events:
            await e.flush()

        def posted() -> list[dict[str, Any]]:
            found = controlplane.get(
                "events", "-n", namespace, "--field-selector", "reason=InitError"
            )
            return list(found["items"])

        (event,) = wait_for(posted, 30, what="the InitError Event")
        assert event["type"] == "Warning"
        assert event["involvedObject"]["kind"] == "Function"
        assert event["involvedObject"]["uid"] == uid
        assert event["message"] == "pod hello-1: Runtime.ImportModuleError: No module named 'x'"
        assert event["source"]["component"] == "lambdalet-activator"
        described = controlplane.kubectl("describe", "function", "hello", "-n", namespace).stdout
        assert "InitError" in described
    finally:
        proxy.close()
        for e in events:
            await e.aclose()
