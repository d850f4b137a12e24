"""A dispatcher replica's Lease: how the operator knows which replicas are alive.

Each replica keeps a ``coordination.k8s.io/v1`` Lease ``lambdalet-dispatcher-<replica>`` in its
namespace, renewed every ``RENEW_SECONDS``; the operator treats a replica whose Lease it has not
seen renewed for ``leaseDurationSeconds`` as gone and moves its EventSources to the others
(rendezvous hashing, ``lambdalet.sharding``). A clean shutdown deletes the Lease, so the
EventSources move at once rather than after the Lease runs out.

The Lease is written with server-side apply (field manager ``lambdalet-dispatcher``), which
creates it when missing: a Lease deleted by hand comes back with the next renewal.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from lambdalet.contracts.leases import (
    DEFAULT_LEASE_SECONDS,
    DISPATCHER_LABELS,
    DISPATCHER_LEASE_PREFIX,
    LEASE_API_VERSION,
)
from lambdalet.k8s import KubeClient, KubeError, NotFound

log = logging.getLogger("lambdalet.dispatcher")

LEASE_DURATION_SECONDS = int(DEFAULT_LEASE_SECONDS)
RENEW_SECONDS = 5.0
FIELD_MANAGER = "lambdalet-dispatcher"


def lease_name(replica: str) -> str:
    return f"{DISPATCHER_LEASE_PREFIX}{replica}"


def lease_manifest(replica: str, namespace: str, now: datetime) -> dict[str, object]:
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "apiVersion": LEASE_API_VERSION,
        "kind": "Lease",
        "metadata": {
            "name": lease_name(replica),
            "namespace": namespace,
            "labels": dict(DISPATCHER_LABELS),
        },
        "spec": {
            "holderIdentity": replica,
            "leaseDurationSeconds": LEASE_DURATION_SECONDS,
            "renewTime": stamp,
        },
    }


class Membership:
    """Renews this replica's Lease until ``run`` is cancelled; ``leave`` deletes it."""

    def __init__(
        self, client: KubeClient, replica: str, namespace: str, *, renew: float = RENEW_SECONDS
    ) -> None:
        self._client = client
        self._replica = replica
        self._namespace = namespace
        self._renew = renew
        self.joined = asyncio.Event()  # set once the Lease was written

    async def run(self) -> None:
        while True:
            try:
                await self._client.apply(
                    lease_manifest(self._replica, self._namespace, datetime.now(UTC)),
                    field_manager=FIELD_MANAGER,
                )
                self.joined.set()
            except KubeError as exc:
                log.warning("renewing the Lease of dispatcher %s: %s", self._replica, exc)
            await asyncio.sleep(self._renew)

    async def leave(self) -> None:
        try:
            await self._client.delete(
                LEASE_API_VERSION, "Lease", self._namespace, lease_name(self._replica)
            )
        except NotFound:
            pass
        except KubeError as exc:
            log.warning("deleting the Lease of dispatcher %s: %s", self._replica, exc)
