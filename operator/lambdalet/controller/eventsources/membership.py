"""Which event dispatcher replicas are live, judged from their Leases on the operator's own clock.

Each dispatcher replica keeps a Lease ``lambdalet-dispatcher-<replica>`` in the dispatcher
namespace (``spec.leaseDurationSeconds: 15``) and renews its ``spec.renewTime`` every 5 s; a clean
shutdown deletes it (``lambdalet.contracts.leases`` is the protocol, ``lambdalet.dispatcher.
membership`` the writer). A replica is live while the operator has seen its Lease change within
its duration, as ``Liveness`` judges it: e.g. with a 15 s lease, a replica whose renewal the
operator saw at monotonic 100.0 is live until 115.0 and gone from then on unless another renewal
arrives.

Pure: every call takes ``now`` (seconds on the monotonic clock). The watch and the timer that feed
it are in ``lambdalet.controller.eventsources.dispatchers``.
"""

from __future__ import annotations

from collections.abc import Iterable

from lambdalet.contracts.leases import Lease, Liveness


class Membership:
    """The dispatcher Leases seen so far, and the replicas among them that are live."""

    def __init__(self) -> None:
        self._leases = Liveness()

    def observe(self, current: Lease, now: float) -> None:
        """A Lease as listed or watched (added or modified)."""
        self._leases.observe(current, now)

    def remove(self, name: str) -> None:
        """A Lease deleted: its replica is gone at once (a clean shutdown)."""
        self._leases.remove(name)

    def sync(self, leases: Iterable[Lease], now: float) -> None:
        """A complete listing (a relist is not a renewal)."""
        self._leases.sync(leases, now)

    def live(self, now: float) -> frozenset[str]:
        """The replicas whose Lease was seen changing less than its duration ago."""
        return frozenset(seen.lease.holder for seen in self._leases.live(now) if seen.lease.holder)
