"""Leader election: of several operator replicas, one works; the others wait to take over.

A ``coordination.k8s.io/v1`` Lease (``lambdalet-operator`` in the namespace
``LAMBDALET_LEADER_ELECTION_NAMESPACE`` names)
names the leader in ``spec.holderIdentity``; the leader renews ``spec.renewTime`` every
``renew`` seconds. Every write carries the resourceVersion it read (a conditional update), so of
two replicas taking the Lease at once one gets a 409 Conflict and goes on waiting.

As in client-go, a follower judges the holder by what it *observes*: the Lease is free when its
holder is empty, or when the follower has seen the same resourceVersion for ``duration`` seconds
of its own monotonic clock (a holder on a machine with a skewed clock is never cut short).

The leader runs the operator only while it holds the Lease. When it cannot renew for
``renew_deadline`` seconds (a partition, the API server away) or finds another holder, it stops
the operator at once and the process exits with status 1, so a new pod starts as a follower
(controller-runtime does the same): two operators never work side by side, which is what makes a
failover free of duplicate writes. A clean shutdown empties ``holderIdentity``, and a follower
takes over within one retry rather than after ``duration``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from typing import Any

from lambdalet.k8s import Conflict, KubeClient, KubeError, NotFound
from lambdalet.k8s.client import MERGE, resource_path

log = logging.getLogger("lambdalet.leader")

LEASE_NAME = "lambdalet-operator"
API_VERSION = "coordination.k8s.io/v1"
# On the leader's own pod: the autoscaler Service selects it, so the activators' pokes and
# reports reach the replica that runs the autoscaler (a follower serves no autoscaler port).
LEADER_LABEL = "lambdalet.dev/operator-role"


async def label_pod(client: KubeClient, namespace: str, pod: str, *, leading: bool) -> None:
    """Set (``leading``) or remove this replica's leader label on its own pod. Removed first
    thing at every start: a container restarted after losing the lead keeps its pod's labels."""
    labels = {LEADER_LABEL: "leader" if leading else None}
    try:
        await client.request(
            "PATCH",
            resource_path("v1", "Pod", namespace, pod),
            what=f"label pod {namespace}/{pod}",
            json={"metadata": {"labels": labels}},
            content_type=MERGE,
        )
    except NotFound:
        log.info("no pod %s/%s to label (not running in a pod of that name)", namespace, pod)
    except KubeError as exc:
        log.warning("labelling pod %s/%s: %s", namespace, pod, exc)


@dataclass(frozen=True)
class Timing:
    duration: float = 15.0  # a holder not seen renewing for this long is gone
    renew: float = 5.0  # the leader renews this often
    renew_deadline: float = 10.0  # the leader gives up when no renewal succeeded for this long
    retry: float = 2.0  # a follower looks again this often


@dataclass
class Observed:
    """The Lease as this replica last saw it change."""

    version: str
    holder: str
    since: float  # monotonic time it was first seen with this version


def free(lease: dict[str, Any] | None, me: str, observed: Observed | None, now: float,
         duration: float) -> bool:  # fmt: skip
    """Whether ``me`` may take the Lease now (pure)."""
    if lease is None:
        return True
    holder = (lease.get("spec") or {}).get("holderIdentity") or ""
    if holder in ("", me):
        return True
    version = lease["metadata"]["resourceVersion"]
    if observed is None or observed.version != version:
        return False  # changed since we last looked: its holder is alive
    return now - observed.since >= duration


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(eq=False)
class LeaderElector:
    client: KubeClient
    namespace: str
    identity: str
    _: KW_ONLY
    timing: Timing = Timing()
    clock: Callable[[], float] = time.monotonic
    _path: str = field(init=False)
    _observed: Observed | None = field(init=False, default=None)
    _lease: dict[str, Any] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._path = resource_path(API_VERSION, "Lease", self.namespace, LEASE_NAME)

    async def acquire(self) -> None:
        """Wait until this replica holds the Lease."""
        logged = False
        while True:
            try:
                if await self._try_acquire():
                    log.info("%s leads (Lease %s/%s)", self.identity, self.namespace, LEASE_NAME)
                    return
            except KubeError as exc:
                log.warning("leader election: %s", exc)
            if not logged:
                holder = ((self._lease or {}).get("spec") or {}).get("holderIdentity")
                log.info("%s waits: %s leads", self.identity, holder)
                logged = True
            await asyncio.sleep(self.timing.retry)

    async def hold(self) -> None:
        """Renew until leadership is lost; returns then (the caller stops working)."""
        last_renewed = self.clock()
        while True:
            await asyncio.sleep(self.timing.renew)
            try:
                if not await self._renew():
                    log.error("%s lost the Lease to another replica", self.identity)
                    return
                last_renewed = self.clock()
            except KubeError as exc:
                log.warning("renewing the Lease: %s", exc)
                if self.clock() - last_renewed >= self.timing.renew_deadline:
                    log.error(
                        "%s could not renew the Lease for %.0f s; stepping down",
                        self.identity,
                        self.timing.renew_deadline,
                    )
                    return

    async def release(self) -> None:
        """Give the Lease up (clean shutdown): a follower takes it at its next look."""
        try:
            lease = await self._get()
            if lease is None or lease["spec"].get("holderIdentity") != self.identity:
                return
            lease["spec"]["holderIdentity"] = ""
            lease["spec"]["renewTime"] = _stamp()
            await self.client.request("PUT", self._path, what="release Lease", json=lease)
        except KubeError as exc:
            log.warning("releasing the Lease: %s", exc)

    async def _get(self) -> dict[str, Any] | None:
        try:
            lease = await self.client.request("GET", self._path, what="get Lease")
        except NotFound:
            return None
        now = self.clock()
        version = lease["metadata"]["resourceVersion"]
        holder = (lease.get("spec") or {}).get("holderIdentity") or ""
        if self._observed is None or self._observed.version != version:
            self._observed = Observed(version, holder, now)
        self._lease = lease
        return lease

    async def _try_acquire(self) -> bool:
        lease = await self._get()
        if not free(lease, self.identity, self._observed, self.clock(), self.timing.duration):
            return False
        stamp = _stamp()
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.timing.duration),
            "acquireTime": stamp,
            "renewTime": stamp,
        }
        try:
            if lease is None:
                await self.client.request(
                    "POST",
                    resource_path(API_VERSION, "Lease", self.namespace),
                    what="create Lease",
                    json={
                        "apiVersion": API_VERSION,
                        "kind": "Lease",
                        "metadata": {"name": LEASE_NAME, "namespace": self.namespace},
                        "spec": {**spec, "leaseTransitions": 0},
                    },
                )
            else:
                previous = lease.get("spec") or {}
                transitions = int(previous.get("leaseTransitions") or 0)
                if previous.get("holderIdentity") != self.identity:
                    transitions += 1
                lease["spec"] = {**previous, **spec, "leaseTransitions": transitions}
                await self.client.request("PUT", self._path, what="take Lease", json=lease)
        except Conflict:  # another replica was quicker
            return False
        return True

    async def _renew(self) -> bool:
        lease = await self._get()
        if lease is None or lease["spec"].get("holderIdentity") != self.identity:
            return False
        lease["spec"]["renewTime"] = _stamp()
        try:
            await self.client.request("PUT", self._path, what="renew Lease", json=lease)
        except Conflict:
            return False
        return True
