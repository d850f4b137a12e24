"""The Lease protocol: replicas that each keep a ``coordination.k8s.io/v1`` Lease, and their
liveness judged on the watcher's own clock.

Two components keep one Lease per replica: each event dispatcher replica keeps
``lambdalet-dispatcher-<replica>`` (labels ``DISPATCHER_LABELS``, ``spec.holderIdentity:
<replica>``), which the operator watches to assign EventSources
(``lambdalet.dispatcher.replica.membership`` writes it,
``lambdalet.controller.eventsources.membership`` reads it); each activator keeps one its peers watch
to share reserved concurrency (``lambdalet.activator.peers``). A clean shutdown deletes the Lease.

A replica renews its own Lease every few seconds; another process
watching those Leases treats it as live while it has *seen* the Lease change (a new
``renewTime`` or ``resourceVersion``) within ``leaseDurationSeconds``, measured on its own
monotonic clock when it saw the change, as client-go's leader election does. The renewTime
written by another machine is compared only with its own previous value, so clock skew does not
matter. A Lease seen for the first time counts as renewed at that moment (conservative: a Lease
left behind by a crashed replica is live for one more duration). E.g. with a 15 s lease, a
renewal seen at monotonic 100.0 is live until 115.0 and has lapsed from then on, unless another
renewal arrives.

A Lease whose holder changes (the replica restarted under the same name, or took a new identity)
keeps the former holder in ``replaced`` from when it was replaced, or from its lapse if that came
first: what the former holder started may still be running.

Pure: every call takes ``now`` (seconds on the monotonic clock); the watch that feeds it belongs to
the component that watches.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

LEASE_API_VERSION = "coordination.k8s.io/v1"
DEFAULT_LEASE_SECONDS = 15.0
DISPATCHER_LEASE_PREFIX = "lambdalet-dispatcher-"
DISPATCHER_LABELS = {
    "app.kubernetes.io/part-of": "lambdalet",
    "app.kubernetes.io/component": "dispatcher",
}
DISPATCHER_SELECTOR = ",".join(f"{key}={value}" for key, value in DISPATCHER_LABELS.items())
# How long a replaced holder is remembered (longer than any invocation: Lambda's 900 s timeout).
REPLACED_MEMORY = 1000.0


@dataclass(frozen=True)
class Lease:
    """The parts of a Lease that liveness depends on, and its annotations."""

    name: str
    holder: str | None  # spec.holderIdentity; None or "" holds nothing
    duration: float  # spec.leaseDurationSeconds
    renew_time: str | None
    resource_version: str | None
    annotations: Mapping[str, str] = field(default_factory=dict)


def parse(body: Mapping[str, Any]) -> Lease:
    meta, spec = body.get("metadata", {}), body.get("spec") or {}
    duration = spec.get("leaseDurationSeconds")
    return Lease(
        name=str(meta.get("name", "")),
        holder=spec.get("holderIdentity") or None,
        duration=float(duration) if duration else DEFAULT_LEASE_SECONDS,
        renew_time=spec.get("renewTime"),
        resource_version=meta.get("resourceVersion"),
        annotations=dict(meta.get("annotations") or {}),
    )


@dataclass(frozen=True)
class Seen:
    lease: Lease
    renewed_at: float  # when this process saw it change

    @property
    def lapses_at(self) -> float:
        return self.renewed_at + self.lease.duration


class Liveness:
    """The Leases seen so far and when each last changed."""

    def __init__(self) -> None:
        self._seen: dict[str, Seen] = {}
        self._replaced: dict[str, float] = {}  # former holder -> when it was replaced

    def observe(self, current: Lease, now: float) -> None:
        """A Lease as listed or watched (added or modified)."""
        before = self._seen.get(current.name)
        if before is not None and before.lease.holder and before.lease.holder != current.holder:
            self.replace(before.lease.holder, min(now, before.lapses_at))
        if (
            before is not None
            and before.lease.renew_time == current.renew_time
            and before.lease.resource_version == current.resource_version
        ):
            now = before.renewed_at  # not renewed
        self._seen[current.name] = Seen(current, now)

    def remove(self, name: str) -> None:
        """A Lease deleted: its holder is gone at once (a clean shutdown)."""
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

    def replace(self, holder: str, at: float) -> None:
        """``holder`` held a Lease until ``at`` (the later of two reports counts)."""
        self._replaced[holder] = max(at, self._replaced.get(holder, at))

    def replaced(self, now: float) -> dict[str, float]:
        """Former holders replaced less than ``REPLACED_MEMORY`` ago, and when."""
        for holder, at in list(self._replaced.items()):
            if now - at > REPLACED_MEMORY:
                del self._replaced[holder]
        return dict(self._replaced)

    def live(self, now: float) -> list[Seen]:
        """The Leases with a holder, seen changing less than their duration ago."""
        return [s for s in self._seen.values() if s.lease.holder and now < s.lapses_at]

    def lapsed(self, now: float) -> list[Seen]:
        """The Leases with a holder whose duration ran out without a renewal seen."""
        return [s for s in self._seen.values() if s.lease.holder and now >= s.lapses_at]
