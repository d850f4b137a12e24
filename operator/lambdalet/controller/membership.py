"""Which event dispatcher replicas are live, judged from their Leases on the operator's own clock.

Each dispatcher replica keeps a ``coordination.k8s.io/v1`` Lease ``lambdalet-dispatcher-<replica>``
in the dispatcher namespace (labels ``DISPATCHER_LABELS``, ``spec.holderIdentity: <replica>``,
``spec.leaseDurationSeconds: 15``) and renews its ``spec.renewTime`` every 5 s; a clean shutdown
deletes it (``lambdalet.dispatcher.membership`` is the other side of this contract).

A replica is live while the operator has seen its Lease change — a new ``renewTime`` or
``resourceVersion`` — within ``leaseDurationSeconds``, measured on the operator's monotonic clock
when it *saw* the change, as client-go's leader election does: the renewTime written by another
machine is compared only with its own previous value, never with this machine's clock, so clock
skew does not matter. A Lease seen for the first time (after an operator restart, say) counts as
renewed at that moment. E.g. with a 15 s lease, a replica whose renewal the operator saw at
monotonic 100.0 is live until 115.0 and gone from then on unless another renewal arrives.

Pure: every call takes ``now`` (seconds on the monotonic clock). The watch and the timer that feed
it are in ``lambdalet.controller.dispatchers``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

LEASE_API_VERSION = "coordination.k8s.io/v1"
LEASE_PREFIX = "lambdalet-dispatcher-"
DISPATCHER_LABELS = {
    "app.kubernetes.io/part-of": "lambdalet",
    "app.kubernetes.io/component": "dispatcher",
}
LABEL_SELECTOR = ",".join(f"{key}={value}" for key, value in DISPATCHER_LABELS.items())
DEFAULT_LEASE_SECONDS = 15.0


@dataclass(frozen=True)
class Lease:
    """The parts of a dispatcher Lease that liveness depends on."""

    name: str
    replica: str | None  # spec.holderIdentity; None or "" holds nothing
    duration: float  # spec.leaseDurationSeconds
    renew_time: str | None
    resource_version: str | None


def lease(body: Mapping[str, Any]) -> Lease:
    meta, spec = body.get("metadata", {}), body.get("spec") or {}
    duration = spec.get("leaseDurationSeconds")
    return Lease(
        name=str(meta.get("name", "")),
        replica=spec.get("holderIdentity") or None,
        duration=float(duration) if duration else DEFAULT_LEASE_SECONDS,
        renew_time=spec.get("renewTime"),
        resource_version=meta.get("resourceVersion"),
    )


@dataclass(frozen=True)
class _Seen:
    lease: Lease
    renewed_at: float  # when the operator saw it change


class Membership:
    """The dispatcher Leases seen so far and when each last changed."""

    def __init__(self) -> None:
        self._seen: dict[str, _Seen] = {}

    def observe(self, current: Lease, now: float) -> None:
        """A Lease as listed or watched (added or modified)."""
        before = self._seen.get(current.name)
        if (
            before is not None
            and before.lease.renew_time == current.renew_time
            and before.lease.resource_version == current.resource_version
        ):
            now = before.renewed_at  # not renewed
        self._seen[current.name] = _Seen(current, now)

    def remove(self, name: str) -> None:
        """A Lease deleted: its replica is gone at once (a clean shutdown)."""
        self._seen.pop(name, None)

    def sync(self, leases: Iterable[Lease], now: float) -> None:
        """A complete listing: Leases not in it were deleted while the watch was down; the rest
        keep the time they were last seen changing (a relist is not a renewal)."""
        listed = list(leases)
        names = {item.name for item in listed}
        for name in list(self._seen):
            if name not in names:
                del self._seen[name]
        for item in listed:
            self.observe(item, now)

    def live(self, now: float) -> frozenset[str]:
        """The replicas whose Lease was seen changing less than its duration ago."""
        return frozenset(
            seen.lease.replica
            for seen in self._seen.values()
            if seen.lease.replica and now < seen.renewed_at + seen.lease.duration
        )
