"""The activators that share each Function's reserved concurrency: their Leases, and this one's.

Where it sits: ``proxy`` asks ``Peers.share`` before admitting an invocation of a capped Function
(a few dictionary reads, no network); ``quota`` has the arithmetic and says why the sum of the
shares never exceeds the cap. This module is the I/O around it:

* This activator keeps a ``coordination.k8s.io/v1`` Lease ``lambdalet-activator-<pod>`` in the
  peers namespace (``LAMBDALET_PEERS_NAMESPACE``, the chart's release namespace), renewed every
  third of its duration (``LAMBDALET_PEER_LEASE_SECONDS``, 15 s, so every 5 s). Its holder is
  this process's identity, ``<pod>/<random>``, and annotation ``lambdalet.dev/acks`` lists the
  members it counts, written as soon as its load of every capped Function is within its share
  counting them (checked every ``SETTLE_POLL`` seconds while that differs from what it wrote).
* It watches the activator Leases of that namespace (``lambdalet.contracts.leases``: live while
  seen renewed within their duration, on this process's own clock).
* When its own renewals fail for two thirds of the duration (10 s), it stops admitting capped
  invocations (fenced) — before any peer can see its Lease lapse — and takes a new identity, so
  it rejoins as a newcomer once it can write again.
* On a clean stop it deletes its Lease after its last request ended: the others take its share at
  once (one watch event). The Lease of an activator that died stays until ``REPLACED_MEMORY``
  (1000 s, longer than any invocation) after it lapsed; then a live activator deletes it.
* A Lease that changes holder (a restart under the same pod name) leaves the former holder
  counted as if its Lease had lapsed then.
* With an address (``LAMBDALET_POD_IP`` and the peer key), annotation ``lambdalet.dev/address``
  tells the others where to hand invocations over their shares (``forward``, ``holders``).

When an activator dies, the survivors see its Lease lapse ``leaseDurationSeconds`` (15 s) after
the last renewal they saw, and take over its share of a Function after that Function's
``timeoutSeconds`` + 5 s more (its last invocations may still run in the pods until then): with
the defaults (timeout 3 s), about 23 s after the crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from lambdalet.activator.model import FunctionConfig
from lambdalet.activator.quota import Gone, Peer, View
from lambdalet.contracts.leases import LEASE_API_VERSION, REPLACED_MEMORY, Liveness, parse
from lambdalet.k8s import KubeClient, KubeError, NotFound
from lambdalet.k8s.watch import informer

log = logging.getLogger("lambdalet.activator")

LEASE_PREFIX = "lambdalet-activator-"
LABELS = {"app.kubernetes.io/part-of": "lambdalet", "app.kubernetes.io/component": "activator"}
LABEL_SELECTOR = ",".join(f"{key}={value}" for key, value in LABELS.items())
ACKS_ANNOTATION = "lambdalet.dev/acks"
ADDRESS_ANNOTATION = "lambdalet.dev/address"  # <ip>:<internal port>, for forwarded invocations
FIELD_MANAGER = "lambdalet-activator"
DEFAULT_LEASE_SECONDS = 15.0
SETTLE_POLL = 0.1

Loads = Callable[[], Iterable[tuple[FunctionConfig, int]]]


def lease_name(pod: str) -> str:
    return f"{LEASE_PREFIX}{pod}"


def lease_manifest(
    pod: str,
    namespace: str,
    member: str,
    acks: Iterable[str],
    duration: float,
    now: datetime,
    address: tuple[str, int] | None = None,
) -> dict[str, Any]:
    annotations = {ACKS_ANNOTATION: " ".join(sorted(acks))}
    if address is not None:
        annotations[ADDRESS_ANNOTATION] = f"{address[0]}:{address[1]}"
    return {
        "apiVersion": LEASE_API_VERSION,
        "kind": "Lease",
        "metadata": {
            "name": lease_name(pod),
            "namespace": namespace,
            "labels": dict(LABELS),
            "annotations": annotations,
        },
        "spec": {
            "holderIdentity": member,
            "leaseDurationSeconds": max(1, round(duration)),
            "renewTime": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    }


class Peers:
    """This activator's membership: renews its Lease, watches the others', answers ``share``."""

    def __init__(
        self,
        client: KubeClient,
        pod: str,
        namespace: str,
        *,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        address: tuple[str, int] | None = None,
    ) -> None:
        """``address``: this activator's internal port as peers reach it (None: no forwarded
        invocations come here)."""
        self._client = client
        self._address = address
        self._pod = pod
        self._namespace = namespace
        self._duration = lease_seconds
        self._renew = lease_seconds / 3
        self._fence_after = lease_seconds * 2 / 3
        self._loop = asyncio.get_running_loop()
        self._liveness = Liveness()
        self._member = self._new_identity()
        self._written: float | None = None  # loop time the last successful write was sent
        self._published: frozenset[str] = frozenset()
        self._changed = asyncio.Event()
        self._cached: View | None = None
        self._cached_until = 0.0
        self.synced = asyncio.Event()

    def _new_identity(self) -> str:
        return f"{self._pod}/{secrets.token_hex(4)}"

    @property
    def member(self) -> str:
        return self._member

    # -- what the proxy asks --------------------------------------------------------------------

    def view(self, now: float) -> View:
        """The peers as seen at ``now``; built again only after a Lease event, this activator's
        own write, or when a Lease lapses or this one's fence comes due (the hot path reads it)."""
        if self._cached is not None and now < self._cached_until:
            return self._cached
        peers: list[Peer] = []
        gone: list[Gone] = []
        own = lease_name(self._pod)
        for seen in self._liveness.live(now):
            if seen.lease.name != own and seen.lease.holder:
                acks = seen.lease.annotations.get(ACKS_ANNOTATION, "")
                address = _address(seen.lease.annotations.get(ADDRESS_ANNOTATION, ""))
                peers.append(Peer(seen.lease.holder, frozenset(acks.split()), address))
        for seen in self._liveness.lapsed(now):
            if seen.lease.name != own and seen.lease.holder:
                gone.append(Gone(seen.lease.holder, seen.lapses_at))
        # Former holders of a Lease (this one's too: a restart under the same pod name).
        for holder, at in self._liveness.replaced(now).items():
            if holder != self._member:
                gone.append(Gone(holder, at))
        fenced = self._written is None or now >= self._written + self._fence_after
        view = View(self._member, tuple(peers), tuple(gone), fenced)
        changes = [s.lapses_at for s in self._liveness.live(now)]
        if not fenced and self._written is not None:
            changes.append(self._written + self._fence_after)
        self._cached, self._cached_until = view, min(changes, default=math.inf)
        return view

    def current(self) -> View:
        return self.view(self._loop.time())

    def share(self, config: FunctionConfig) -> int | None:
        """This activator's share of the Function's reserved concurrency (None: no cap)."""
        if config.reserved is None:
            return None
        now = self._loop.time()
        return self.view(now).share(config, now)

    def holders(self, config: FunctionConfig) -> list[tuple[str, int]]:
        """The peers that hold a share of the Function (``quota.View.holders``)."""
        now = self._loop.time()
        return self.view(now).holders(config, now)

    # -- running --------------------------------------------------------------------------------

    async def run(self, loads: Loads) -> None:
        """Watch the Leases, renew this one, and write acks as they settle; until cancelled."""
        await asyncio.gather(
            informer(
                self._client,
                LEASE_API_VERSION,
                "Lease",
                namespace=self._namespace,
                label_selector=LABEL_SELECTOR,
                on_sync=self._synced,
                on_change=self._lease_changed,
            ),
            self._renew_loop(loads),
        )

    def _synced(self, items: list[dict[str, Any]]) -> None:
        now = self._loop.time()
        leases = [parse(item) for item in items]
        if self._written is None:
            # This pod's Lease from before a restart: what that process started may still run.
            for lease in leases:
                if lease.name == lease_name(self._pod) and lease.holder not in (None, self._member):
                    self._liveness.replace(lease.holder, now)
        self._liveness.sync(leases, now)
        self._cached = None
        self.synced.set()
        self._changed.set()

    def _lease_changed(self, kind: str, obj: dict[str, Any]) -> None:
        lease = parse(obj)
        if kind == "DELETED":
            self._liveness.remove(lease.name)
        else:
            self._liveness.observe(lease, self._loop.time())
        self._cached = None
        self._changed.set()

    async def _renew_loop(self, loads: Loads) -> None:
        await self.synced.wait()  # the first write acks every peer already there
        next_renewal = self._loop.time()
        last_ok = False
        while True:
            now = self._loop.time()
            view = self.view(now)
            acks = self._published
            if view.acks != acks and view.settled(loads(), now):
                acks = view.acks
            # Renew on time; write a settled ack at once, unless the last write failed (then
            # the retry waits for the renewal's turn).
            if now >= next_renewal or (acks != self._published and last_ok):
                if now >= next_renewal:
                    await self._collect(now)
                last_ok = await self._write(acks)
                next_renewal = self._loop.time() + (
                    self._renew if last_ok else min(1.0, self._renew)
                )
                continue
            self._changed.clear()
            # A pending ack waits for invocations to finish: look again soon.
            wait = next_renewal - now
            if view.acks != self._published:
                wait = min(wait, SETTLE_POLL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(wait, 0.0))

    async def _write(self, acks: frozenset[str]) -> bool:
        sent = self._loop.time()
        if self._written is not None and sent >= self._written + self._fence_after:
            # Fenced: peers may soon see the Lease lapse and take the share; rejoin as new.
            self._member = self._new_identity()
            self._written = None
            self._cached = None
            acks = frozenset()
            log.warning("Lease not renewed in time; rejoining as %s", self._member)
        manifest = lease_manifest(
            self._pod,
            self._namespace,
            self._member,
            acks,
            self._duration,
            datetime.now(UTC),
            self._address,
        )
        try:
            await self._client.apply(manifest, field_manager=FIELD_MANAGER)
        except KubeError as exc:
            log.warning("renewing Lease %s: %s", lease_name(self._pod), exc)
            return False
        if self._written is None:
            log.info("activator %s joined the peers in %s", self._member, self._namespace)
        self._written = sent
        self._published = acks
        self._cached = None
        return True

    async def _collect(self, now: float) -> None:
        """Delete the Leases of activators that died long ago (their pods are gone: a new pod
        has a new name), once nothing they started can still run."""
        own = lease_name(self._pod)
        for seen in self._liveness.lapsed(now):
            if seen.lease.name != own and now - seen.lapses_at > REPLACED_MEMORY:
                try:
                    await self._client.delete(
                        LEASE_API_VERSION, "Lease", self._namespace, seen.lease.name
                    )
                except NotFound:
                    pass
                except KubeError as exc:
                    log.warning("deleting the stale Lease %s: %s", seen.lease.name, exc)
                    return
                self._liveness.remove(seen.lease.name)
                self._cached = None

    async def leave(self) -> None:
        """Delete the Lease (a clean stop, after the last request): peers take the share now."""
        try:
            await self._client.delete(
                LEASE_API_VERSION, "Lease", self._namespace, lease_name(self._pod)
            )
        except NotFound:
            pass
        except KubeError as exc:
            log.warning("deleting Lease %s: %s", lease_name(self._pod), exc)


def _address(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    return (host.strip("[]"), int(port)) if host and port.isdigit() else None


class PeerCollector(Collector):
    """``lambdalet_activator_members`` (activators counted, this one included) and
    ``lambdalet_activator_joined`` (1 once every peer counts this one: shares are in force)."""

    def __init__(self, peers: Peers) -> None:
        self._peers = peers

    def collect(self) -> Iterator[Metric]:
        view = self._peers.current()
        members = GaugeMetricFamily(
            "lambdalet_activator_members",
            "Activators sharing reserved concurrency (live Leases, this one included).",
        )
        members.add_metric([], len(view.acks))
        joined = GaugeMetricFamily(
            "lambdalet_activator_joined",
            "1 when every live peer counts this activator, so it may use its shares.",
        )
        joined.add_metric([], 1 if view.joined else 0)
        yield members
        yield joined
