"""Checking a function pod's announcement that it is ready, before the activator routes to it.

Where it sits: a new function pod's agent POSTs an announcement to every activator the moment its
runtime is initialised (runtime-images/agent/README.md, "Announcement"), some 0.35 s before the
kubelet reports the pod Ready and longer before its EndpointSlice does. The activator's HTTP front
reads the body (``Announcement.from_json``) and the bearer token, and routes to the pod only once
``verify`` has returned a ``VerifiedPod``; a DELETE of the same announcement is verified the
same way before the pod is dropped.

Why the announcement can be trusted: the token is a projected service-account token for the
audience ``lambdalet-activator`` (only the activators accept it; the API server itself does not),
bound to the pod, so the API server's TokenReview names the pod and its uid. A GET of that pod
then ties the claim to a Function (its ``lambdalet.dev/function`` label) and to the very pod object
the token was made for (a pod deleted and created again under the same name has a new uid). The
announcing connection must come from the pod's IP, unless the caller turns that off for networks
that rewrite source addresses.

Errors, each with a reason a human can act on (the caller answers with ``status``):

    AnnounceError                 status
    ├── InvalidAnnouncement       400   the body is not an announcement
    ├── AnnouncementRejected      403   the token or the pod does not vouch for it
    └── AnnouncementUnavailable   503   the API server could not be asked; the agent retries
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from lambdalet.contracts.keys import Key
from lambdalet.k8s.client import KubeClient
from lambdalet.k8s.errors import KubeError, NotFound
from lambdalet.names import LABEL_FUNCTION

# Equal to lambdalet.controller.functions.resources.deployment.ANNOUNCE_AUDIENCE (a unit test holds
# them together): the operator mounts the token, the activator accepts it.
TOKEN_AUDIENCE = "lambdalet-activator"
MAX_BODY_BYTES = 4096
MAX_INIT_ERROR_BYTES = 16 * 1024  # an init-error report: the announcement and the error document
MAX_TOKEN_BYTES = 16384
POD_NAME_CLAIM = "authentication.kubernetes.io/pod-name"
POD_UID_CLAIM = "authentication.kubernetes.io/pod-uid"
TOKEN_REVIEWS = "/apis/authentication.k8s.io/v1/tokenreviews"

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_SERVICE_ACCOUNT = re.compile(r"system:serviceaccount:([^:]+):([^:]+)")


class AnnounceError(Exception):
    status: ClassVar[int] = 500

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidAnnouncement(AnnounceError):
    status = 400


class AnnouncementRejected(AnnounceError):
    status = 403


class AnnouncementUnavailable(AnnounceError):
    status = 503


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def canonical_ip(text: str) -> IPAddress | None:
    """``text`` as an address, an IPv4-mapped IPv6 one as IPv4 (a dual-stack socket's peer of
    10.0.0.5 is ::ffff:10.0.0.5); None if it is none or has a zone."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            return None
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class Announcement:
    """What a pod says of itself; nothing of it is trusted before ``verify``."""

    namespace: str
    function: str
    pod: str
    pod_ip: str  # canonical text, e.g. "10.244.0.7" or "fd00::7"
    port: int
    concurrency: int

    @classmethod
    def from_json(cls, body: bytes) -> Announcement:
        """Parse the agent's JSON body. Keys it does not know are ignored: during an upgrade,
        newer agents announce themselves to older activators."""
        return cls.from_doc(_json_object(body, MAX_BODY_BYTES))

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Announcement:
        raw_ip = _field(doc, "podIP", str)
        ip = canonical_ip(raw_ip)
        if ip is None:
            raise InvalidAnnouncement(f"podIP {raw_ip!r:.80} is not an IPv4 or IPv6 address")
        return cls(
            namespace=_name(doc, "namespace", _LABEL, 63),
            function=_name(doc, "function", _LABEL, 63),
            pod=_name(doc, "pod", _SUBDOMAIN, 253),
            pod_ip=str(ip),
            port=_number(doc, "port", 1, 65535),
            concurrency=_number(doc, "concurrency", 1, 1000),
        )


@dataclass(frozen=True)
class InitErrorReport:
    """A pod whose init failed, with the error document its invocations would get."""

    announcement: Announcement
    error_type: str
    error: bytes  # the error document, a JSON object ({"errorMessage", "errorType", ...})

    @classmethod
    def from_json(cls, body: bytes) -> InitErrorReport:
        doc = _json_object(body, MAX_INIT_ERROR_BYTES)
        error_type = _field(doc, "errorType", str)
        if not 0 < len(error_type) <= 128:
            raise InvalidAnnouncement("errorType must be 1 to 128 characters")
        error = doc.get("error")
        if not isinstance(error, dict):
            raise InvalidAnnouncement("error is not a JSON object")
        return cls(Announcement.from_doc(doc), error_type, json.dumps(error).encode())


def _json_object(body: bytes, limit: int) -> dict[str, Any]:
    if len(body) > limit:
        raise InvalidAnnouncement(f"the body is over {limit} bytes")
    try:
        doc = json.loads(body, object_pairs_hook=_unique_keys)
    except ValueError as exc:  # UnicodeDecodeError is one
        raise InvalidAnnouncement(f"the body is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidAnnouncement("the body is not a JSON object")
    return doc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc = dict(pairs)
    if len(doc) != len(pairs):
        raise ValueError("a key appears twice")
    return doc


T = TypeVar("T")


def _field(doc: Mapping[str, Any], key: str, kind: type[T]) -> T:
    value = doc.get(key)
    # bool is an int to Python, never to the agent.
    if not isinstance(value, kind) or isinstance(value, bool):
        what = "missing" if value is None else f"not a {kind.__name__}: {value!r:.80}"
        raise InvalidAnnouncement(f"{key} is {what}")
    return value


def _name(doc: Mapping[str, Any], key: str, pattern: re.Pattern[str], limit: int) -> str:
    value = _field(doc, key, str)
    if len(value) > limit or not pattern.fullmatch(value):
        raise InvalidAnnouncement(f"{key} {value!r:.80} is not a Kubernetes name")
    return value


def _number(doc: Mapping[str, Any], key: str, low: int, high: int) -> int:
    value = _field(doc, key, int)
    if not low <= value <= high:
        raise InvalidAnnouncement(f"{key} {value} is not from {low} to {high}")
    return value


@dataclass(frozen=True)
class Identity:
    """Whom the API server says a token belongs to: a service account, on behalf of one pod."""

    namespace: str
    service_account: str
    pod: str
    pod_uid: str


@dataclass(frozen=True)
class VerifiedPod:
    """A pod of a Function that may take invocations now, at ``ip``:``port``."""

    key: Key
    pod: str
    uid: str
    ip: str
    port: int
    concurrency: int


def identity_of(review: Mapping[str, Any]) -> Identity:
    """The identity in a TokenReview's ``status``, if the token is a pod-bound service-account
    token for the activators' audience."""
    if review.get("authenticated") is not True:
        error = str(review.get("error") or "no reason given")
        raise AnnouncementRejected(
            f"the API server does not accept the token for audience {TOKEN_AUDIENCE}: {error:.300}"
        )
    if TOKEN_AUDIENCE not in (review.get("audiences") or []):
        raise AnnouncementRejected(f"the token is not for audience {TOKEN_AUDIENCE}")
    user = review.get("user") or {}
    username = str(user.get("username", ""))
    account = _SERVICE_ACCOUNT.fullmatch(username)
    if account is None:
        raise AnnouncementRejected(f"the token is {username!r:.100}'s, not a service account's")
    extra = user.get("extra") or {}
    claims = [extra.get(POD_NAME_CLAIM), extra.get(POD_UID_CLAIM)]
    match claims:
        case [[str(pod)], [str(uid)]]:
            return Identity(account[1], account[2], pod, uid)
    raise AnnouncementRejected(
        "the token is not bound to a pod: mount it as a projected serviceAccountToken "
        f"volume with audience {TOKEN_AUDIENCE}"
    )


def check_claims(identity: Identity, announcement: Announcement) -> None:
    """The token must speak for the pod the announcement names."""
    if identity.namespace != announcement.namespace:
        raise AnnouncementRejected(
            f"the token is of namespace {identity.namespace}, "
            f"the announcement names namespace {announcement.namespace}"
        )
    if identity.pod != announcement.pod:
        raise AnnouncementRejected(
            f"the token is bound to pod {identity.pod}, "
            f"the announcement names pod {announcement.pod}"
        )


def check_pod(
    pod: Mapping[str, Any],
    identity: Identity,
    announcement: Announcement,
    peer_ip: str | None,
    *,
    leaving: bool = False,
) -> VerifiedPod:
    """The pod object must be the one the token was made for, of the announced Function, at the
    announced address; ``peer_ip`` is where the announcement came from (None: not checked).
    A pod being deleted may only withdraw (``leaving``), not announce itself."""
    meta, spec, status = pod.get("metadata") or {}, pod.get("spec") or {}, pod.get("status") or {}
    where = f"pod {announcement.namespace}/{announcement.pod}"
    if meta.get("uid") != identity.pod_uid:
        raise AnnouncementRejected(
            f"{where} is not the pod the token was made for (it was deleted and created again)"
        )
    if meta.get("deletionTimestamp") and not leaving:
        raise AnnouncementRejected(f"{where} is being deleted")
    label = (meta.get("labels") or {}).get(LABEL_FUNCTION)
    if label != announcement.function:
        raise AnnouncementRejected(
            f"{where} is not of Function {announcement.function} "
            f"(its label {LABEL_FUNCTION} is {label!r:.80})"
        )
    ports = {
        port.get("containerPort")
        for container in spec.get("containers") or []
        for port in container.get("ports") or []
    }
    if announcement.port not in ports:
        raise AnnouncementRejected(f"{where} declares no container port {announcement.port}")
    announced = canonical_ip(announcement.pod_ip)
    # The kubelet reports the IP later than the pod announces itself; when it has, they agree.
    known = {canonical_ip(str(a.get("ip", ""))) for a in status.get("podIPs") or []}
    known |= {canonical_ip(str(status["podIP"]))} if status.get("podIP") else set()
    if known and announced not in known:
        raise AnnouncementRejected(
            f"{where} has IP {', '.join(sorted(str(a) for a in known))}, "
            f"the announcement says {announcement.pod_ip}"
        )
    if peer_ip is not None and canonical_ip(peer_ip) != announced:
        raise AnnouncementRejected(
            f"the announcement came from {peer_ip:.60}, not from the pod's IP "
            f"{announcement.pod_ip} (behind source NAT, turn the peer check off)"
        )
    return VerifiedPod(
        key=(announcement.namespace, announcement.function),
        pod=announcement.pod,
        uid=identity.pod_uid,
        ip=announcement.pod_ip,
        port=announcement.port,
        concurrency=announcement.concurrency,
    )


class ReviewCache:
    """Identities of tokens the API server accepted lately, by the token's SHA-256, so a pod's
    withdrawal (and a repeated announcement) costs no second TokenReview.

    A minute at most: a TokenReview carries no expiry, and the token may be revoked. Caching is
    safe because the pod is always read again: a token of a deleted pod fails on its uid. At most
    ``size`` entries; the oldest goes first.
    """

    def __init__(self, ttl: float = 60.0, size: int = 1024) -> None:
        self._ttl = ttl
        self._size = size
        self._entries: OrderedDict[str, tuple[float, Identity]] = OrderedDict()

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def get(self, token: str, now: float) -> Identity | None:
        entry = self._entries.get(self._key(token))
        if entry is None or entry[0] <= now:
            return None
        return entry[1]

    def put(self, token: str, identity: Identity, now: float) -> None:
        key = self._key(token)
        self._entries.pop(key, None)
        self._entries[key] = (now + self._ttl, identity)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)


async def verify(
    client: KubeClient,
    token: str,
    announcement: Announcement,
    peer_ip: str,
    *,
    check_peer: bool = True,
    cache: ReviewCache | None = None,
    now: float | None = None,
    leaving: bool = False,
) -> VerifiedPod:
    """Verify ``announcement``, made with bearer ``token`` over a connection from ``peer_ip``.

    Two API calls, each bounded by the client's request timeout: a TokenReview (skipped when
    ``cache`` knows the token) and a quorum GET of the pod (a watch cache could miss a pod
    created a moment ago).
    """
    if not token or len(token) > MAX_TOKEN_BYTES:
        raise AnnouncementRejected("the announcement carries no usable bearer token")
    now = time.monotonic() if now is None else now
    identity = cache.get(token, now) if cache is not None else None
    if identity is None:
        identity = identity_of(await _review(client, token))
        if cache is not None:
            cache.put(token, identity, now)
    check_claims(identity, announcement)
    namespace, name = announcement.namespace, announcement.pod
    try:
        pod = await client.request(
            "GET", f"/api/v1/namespaces/{namespace}/pods/{name}", what=f"get pod {namespace}/{name}"
        )
    except NotFound as exc:
        raise AnnouncementRejected(f"pod {namespace}/{name} does not exist") from exc
    except KubeError as exc:
        raise AnnouncementUnavailable(f"cannot read the pod: {exc.message}") from exc
    return check_pod(pod, identity, announcement, peer_ip if check_peer else None, leaving=leaving)


async def _review(client: KubeClient, token: str) -> Mapping[str, Any]:
    review = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": [TOKEN_AUDIENCE]},
    }
    try:
        answer = await client.request(
            "POST", TOKEN_REVIEWS, what="review the announcement's token", json=review
        )
    except KubeError as exc:
        # Also a 403: the activator's own RBAC lacks tokenreviews/create, which is no fault of
        # the pod's, and which a fixed installation mends.
        raise AnnouncementUnavailable(f"cannot review the token: {exc.message}") from exc
    status = answer.get("status")
    return status if isinstance(status, dict) else {}
