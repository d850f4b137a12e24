"""Rendezvous hashing: which dispatcher replica owns an EventSource, and how little moves when
replicas come and go."""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter

import pytest

from lambdalet.sharding import owner, weight

SOURCES = [("team-a", f"source-{i}") for i in range(600)] + [
    ("team-b", f"source-{i}") for i in range(600)
]


@pytest.mark.parametrize(
    ("namespace", "name", "replicas", "expected"),
    [
        ("team", "orders", (), None),
        ("team", "orders", ("a",), "a"),
        # Pinned: the weights are sha256("<namespace>/<name>/<replica>"), as the contract says.
        ("team", "orders", ("a", "b", "c"), "c"),
        ("team", "orders", ("c", "b", "a"), "c"),
        ("team", "billing", ("a", "b", "c"), "a"),
        ("default", "tick", ("a", "b", "c"), "c"),
        ("team", "orders", ("dispatcher-0", "dispatcher-1"), "dispatcher-0"),
        # The namespace is part of the key: the same name elsewhere is another source.
        ("prod", "orders", ("a", "b", "c"), "a"),
    ],
    ids=[
        "no-replica",
        "one-replica",
        "three",
        "order-does-not-matter",
        "another-source",
        "a-third-source",
        "pod-names",
        "same-name-other-namespace",
    ],
)
def test_owner(namespace: str, name: str, replicas: tuple[str, ...], expected: str | None) -> None:
    assert owner(namespace, name, replicas) == expected
    assert owner(namespace, name, iter(replicas)) == expected  # any iterable, once


def test_weight_is_the_sha256_of_namespace_name_replica() -> None:
    digest = hashlib.sha256(b"team/orders/dispatcher-0").digest()
    assert weight("team", "orders", "dispatcher-0") == int.from_bytes(digest, "big")


@pytest.mark.parametrize("joining", ["r5", "dispatcher-7f9c-x"])
def test_a_replica_that_joins_takes_sources_only_from_others_and_only_for_itself(
    joining: str,
) -> None:
    before = {f"r{i}" for i in range(5)}
    after = before | {joining}
    moved = [
        (ns, name) for ns, name in SOURCES if owner(ns, name, before) != owner(ns, name, after)
    ]
    assert all(owner(ns, name, after) == joining for ns, name in moved)
    # About 1/6 of the sources move: none between the old replicas.
    assert len(SOURCES) / 6 * 0.7 < len(moved) < len(SOURCES) / 6 * 1.3


@pytest.mark.parametrize("leaving", ["r0", "r3"])
def test_a_replica_that_leaves_gives_up_only_its_own_sources(leaving: str) -> None:
    before = {f"r{i}" for i in range(5)}
    after = before - {leaving}
    for ns, name in SOURCES:
        old, new = owner(ns, name, before), owner(ns, name, after)
        if old == leaving:
            assert new in after
        else:
            assert new == old


def test_membership_changes_in_any_order_end_at_the_same_owners() -> None:
    replicas = ["a", "b", "c", "d"]
    expected = {source: owner(*source, replicas) for source in SOURCES[:100]}
    for order in itertools.permutations(replicas):
        assert {source: owner(*source, order) for source in SOURCES[:100]} == expected


def test_sources_spread_over_the_replicas() -> None:
    replicas = [f"dispatcher-{i}" for i in range(4)]
    counts = Counter(owner(ns, name, replicas) for ns, name in SOURCES)
    assert set(counts) == set(replicas)
    assert all(len(SOURCES) / 4 * 0.75 < n < len(SOURCES) / 4 * 1.25 for n in counts.values())
