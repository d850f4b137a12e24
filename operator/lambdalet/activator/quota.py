"""Each activator's share of a Function's reserved concurrency, so that the cap holds function-wide.

Where it sits: ``proxy`` asks ``peers`` for the share before admitting an invocation of a Function
with ``spec.concurrency.reserved``; ``peers`` keeps the view of the other activators (their
Leases) and calls the pure functions here with an explicit ``now``.

The split. The members counted for a Function are this activator, the peers whose Leases are live,
and the peers whose Leases lapsed less than the Function's ``timeoutSeconds`` + ``LINGER_MARGIN``
ago (invocations a crashed activator started run on in the pods until their timeout, so its share
stays taken until they must have ended). A cap of R over n members gives each ``R // n``, and the
first ``R % n`` members in the Function's own rendezvous order (a hash of the Function and the
member) one more, so the spare units of different Functions land on different activators.
E.g. reserved 5 over {a, b}: 3 and 2; over {a, b, c}: 2, 2, 1; reserved 1 over {a, b}: 1 and 0.

Why the sum never exceeds R, even while views differ:

* A share never grows when a member is added (``R // n`` falls, or stays and ``R % n`` falls by
  the same amount while a member's rank moves back by at most one), so an activator that counts
  more members than another admits no more than it would with the other's view.
* A newcomer admits nothing under a cap until it has *joined*: every live peer has written, in its
  own Lease, that it counts the newcomer (``acks``) — which it writes only once its load of every
  capped Function is within its share counting the newcomer (``settled``). The older members take
  the smaller shares as soon as they see the newcomer (they just admit less); their invocations
  above the new share finish before the newcomer's share opens.
* A member leaves by deleting its Lease after its last invocation ended (a clean stop), or its
  Lease lapses. A member that cannot renew its Lease stops admitting (``fenced``) before any peer
  can see it lapse, and rejoins as a new member (a new identity), so nobody trusts acks written
  about its earlier self.

The cost of safety is under-admission during a change: a newcomer answers 429 for capped
Functions until it has joined (usually one watch event; at most the longest invocation above an
older member's new share), and the share of a crashed activator is taken over only after its Lease
lapses plus the Function's timeout. A Function whose cap is smaller than the number of activators
gets a share of 0 on some of them; those (and any activator whose share is in use) hand the
request to a peer that holds a share (``forward``, ``View.holders``) before answering 429.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import cached_property, lru_cache

from lambdalet.activator.model import FunctionConfig
from lambdalet.contracts.keys import Key

# Over a crashed member's Lease lapse and the Function's timeout: the agent's own margin to stop a
# timed-out runtime, and clocks of two machines that tick at slightly different rates.
LINGER_MARGIN = 5.0


def share(reserved: int, key: Key, members: Collection[str], me: str) -> int:
    """``me``'s part of ``reserved`` split over ``members`` (see the module docstring)."""
    if me not in members or reserved <= 0:
        return 0
    base, extra = divmod(reserved, len(members))
    if extra == 0:
        return base
    return base + (1 if _ranked(key, frozenset(members)).index(me) < extra else 0)


@lru_cache(maxsize=4096)
def _ranked(key: Key, members: frozenset[str]) -> tuple[str, ...]:
    """The members in the Function's rendezvous order (highest hash first)."""

    def weight(member: str) -> bytes:
        return hashlib.sha256(f"{key[0]}/{key[1]}/{member}".encode()).digest()

    return tuple(sorted(members, key=weight, reverse=True))


@dataclass(frozen=True)
class Peer:
    """Another activator whose Lease is live."""

    member: str  # its identity (the Lease's holder)
    acks: frozenset[str]  # the members it counts and is within its shares with
    address: tuple[str, int] | None = None  # its internal port, for forwarded invocations


@dataclass(frozen=True)
class Gone:
    """Another activator whose Lease lapsed (not deleted) at ``lapsed_at``."""

    member: str
    lapsed_at: float


@dataclass(frozen=True)
class View:
    """What this activator (``me``) knows of the others at one moment."""

    me: str
    peers: tuple[Peer, ...] = ()
    gone: tuple[Gone, ...] = ()
    fenced: bool = False  # its own Lease could not be renewed in time

    @cached_property
    def joined(self) -> bool:
        """Every live peer counts this activator: it may use its share."""
        return not self.fenced and all(self.me in peer.acks for peer in self.peers)

    @cached_property
    def acks(self) -> frozenset[str]:
        """The members this activator counts (written to its Lease once ``settled``)."""
        return frozenset((self.me, *(peer.member for peer in self.peers)))

    def members(self, timeout: float, now: float) -> frozenset[str]:
        """The members counted for a Function with ``timeout`` seconds."""
        if not self.gone:
            return self.acks
        lingering = (g.member for g in self.gone if now < g.lapsed_at + timeout + LINGER_MARGIN)
        return self.acks.union(lingering)

    def counted_share(self, config: FunctionConfig, now: float) -> int | None:
        """The share over the members counted, joined or not; None without a cap."""
        if config.reserved is None:
            return None
        return share(
            config.reserved, config.key, self.members(config.timeout_seconds, now), self.me
        )

    def share(self, config: FunctionConfig, now: float) -> int | None:
        """How many invocations of the Function this activator may have in flight and held."""
        counted = self.counted_share(config, now)
        if counted is None or self.joined:
            return counted
        return 0

    def holders(self, config: FunctionConfig, now: float) -> list[tuple[str, int]]:
        """The internal addresses of the peers holding a share of the Function by this view,
        highest rank first: where an invocation over this activator's share may go instead."""
        if not config.reserved:
            return []
        members = self.members(config.timeout_seconds, now)
        addresses = {peer.member: peer.address for peer in self.peers if peer.address}
        return [
            addresses[member]
            for member in _ranked(config.key, members)
            if member in addresses and share(config.reserved, config.key, members, member) > 0
        ]

    def settled(self, loads: Iterable[tuple[FunctionConfig, int]], now: float) -> bool:
        """Every capped Function's load (in flight + held) is within its counted share."""
        for config, load in loads:
            counted = self.counted_share(config, now)
            if counted is not None and load > counted:
                return False
        return True
