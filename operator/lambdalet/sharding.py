"""Which event dispatcher replica runs an EventSource: rendezvous (highest-random-weight) hashing.

Every (EventSource, replica) pair gets a weight, the sha256 of ``<namespace>/<name>/<replica>`` read
as a 256-bit integer; the source's owner is the live replica with the largest weight. The operator
computes it (``lambdalet.controller.eventsources.reconciler``) and writes it to the EventSource's
``status.assignedReplica``; the replica named there runs the source.

Why rendezvous hashing: the owner depends only on the source and the set of live replicas, with
no table to store or agree on, and membership changes move as little as possible. A replica that
joins takes exactly the sources where its weight beats the old owner's (about 1/N of them) and
no source moves between two old replicas; a replica that leaves gives up exactly its own sources,
each to the replica with the next-largest weight for it. E.g. with replicas a, b, c a source
weighted a < c < b belongs to b; if b goes, it moves to c, and sources owned by a or c stay put.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def weight(namespace: str, name: str, replica: str) -> int:
    """The weight of ``replica`` for the EventSource ``namespace/name``."""
    digest = hashlib.sha256(f"{namespace}/{name}/{replica}".encode()).digest()
    return int.from_bytes(digest, "big")


def owner(namespace: str, name: str, replicas: Iterable[str]) -> str | None:
    """The replica among ``replicas`` (the live ones) that runs ``namespace/name``; None when
    there is none. Equal weights (a sha256 collision) go to the smaller name, so every caller
    agrees whatever the order of ``replicas``."""
    best: tuple[int, str] | None = None
    for replica in replicas:
        candidate = (weight(namespace, name, replica), replica)
        if (
            best is None
            or candidate[0] > best[0]
            or (candidate[0] == best[0] and replica < best[1])
        ):
            best = candidate
    return best[1] if best is not None else None
