"""Membership: which dispatcher replicas are live, from their Leases, on a simulated monotonic
clock (the operator's own; the renewTime written by other machines is only compared with itself)."""

from __future__ import annotations

from typing import Any

import pytest

from lambdalet.contracts.leases import DISPATCHER_SELECTOR, Lease, parse
from lambdalet.controller.eventsources.membership import Membership


def body(
    replica: str | None,
    renew: str = "2024-05-01T12:00:00.000000Z",
    version: str = "1",
    duration: int | None = 15,
) -> dict[str, Any]:
    spec: dict[str, Any] = {"renewTime": renew}
    if replica is not None:
        spec["holderIdentity"] = replica
    if duration is not None:
        spec["leaseDurationSeconds"] = duration
    return {
        "metadata": {"name": f"lambdalet-dispatcher-{replica}", "resourceVersion": version},
        "spec": spec,
    }


def renewed(replica: str, n: int, duration: int = 15) -> Lease:
    """The Lease of ``replica`` after its ``n``-th renewal (new renewTime and resourceVersion)."""
    return parse(body(replica, f"2024-05-01T12:00:{n:02d}.000000Z", str(100 + n), duration))


def test_lease_fields() -> None:
    assert parse(body("d-0")) == Lease(
        name="lambdalet-dispatcher-d-0",
        holder="d-0",
        duration=15.0,
        renew_time="2024-05-01T12:00:00.000000Z",
        resource_version="1",
    )
    assert parse(body("d-0", duration=None)).duration == 15.0
    assert parse(body("d-0", duration=30)).duration == 30.0
    assert parse(body(None)).holder is None
    assert parse({"metadata": {"name": "x"}}).renew_time is None


def test_label_selector() -> None:
    assert DISPATCHER_SELECTOR == (
        "app.kubernetes.io/part-of=lambdalet,app.kubernetes.io/component=dispatcher"
    )


def test_a_lease_seen_first_counts_as_renewed_then_and_expires_after_its_duration() -> None:
    members = Membership()
    # The renewTime is an hour old by the wall clock: irrelevant, the operator just saw it.
    members.observe(parse(body("d-0", "2024-05-01T11:00:00Z")), now=100.0)
    assert members.live(100.0) == {"d-0"}
    assert members.live(114.9) == {"d-0"}
    assert members.live(115.0) == frozenset()


def test_renewals_keep_a_replica_live_and_stopping_them_lets_it_expire() -> None:
    members = Membership()
    for n, now in enumerate([100.0, 105.0, 110.0, 115.0]):
        members.observe(renewed("d-0", n), now)
    assert members.live(129.9) == {"d-0"}
    assert members.live(130.0) == frozenset()


def test_the_same_lease_seen_again_is_not_a_renewal() -> None:
    members = Membership()
    members.observe(renewed("d-0", 1), 100.0)
    members.observe(renewed("d-0", 1), 110.0)  # e.g. a relist after the watch expired
    assert members.live(115.0) == frozenset()


@pytest.mark.parametrize(
    ("renew", "version"),
    [
        ("2024-05-01T12:00:05Z", "1"),
        ("2024-05-01T12:00:00.000000Z", "2"),
        # A renewTime that went backwards (the holder's clock was reset) is still a change.
        ("2024-05-01T11:59:00Z", "2"),
    ],
    ids=["renew-time", "resource-version", "renew-time-backwards"],
)
def test_either_renew_time_or_resource_version_changing_is_a_renewal(
    renew: str, version: str
) -> None:
    members = Membership()
    members.observe(parse(body("d-0")), 100.0)
    members.observe(parse(body("d-0", renew, version)), 110.0)
    assert members.live(120.0) == {"d-0"}
    assert members.live(125.0) == frozenset()


def test_the_lease_duration_comes_from_the_lease() -> None:
    members = Membership()
    members.observe(renewed("short", 1, duration=5), 100.0)
    members.observe(renewed("long", 1, duration=60), 100.0)
    assert members.live(104.0) == {"short", "long"}
    assert members.live(105.0) == {"long"}
    assert members.live(159.0) == {"long"}


def test_a_deleted_lease_is_gone_at_once() -> None:
    members = Membership()
    members.observe(renewed("d-0", 1), 100.0)
    members.observe(renewed("d-1", 1), 100.0)
    members.remove("lambdalet-dispatcher-d-0")
    members.remove("lambdalet-dispatcher-unknown")
    assert members.live(101.0) == {"d-1"}


def test_a_lease_without_a_holder_is_not_a_replica() -> None:
    members = Membership()
    members.observe(parse(body(None)), 100.0)
    members.observe(parse(body("")), 100.0)
    assert members.live(100.0) == frozenset()


def test_sync_drops_leases_not_listed_and_keeps_the_renewal_times_of_the_rest() -> None:
    members = Membership()
    members.observe(renewed("d-0", 1), 100.0)
    members.observe(renewed("d-1", 1), 100.0)
    # The watch was down; on relisting, d-1 is gone, d-0 unchanged, d-2 new.
    members.sync([renewed("d-0", 1), renewed("d-2", 1)], 110.0)
    assert members.live(110.0) == {"d-0", "d-2"}
    assert members.live(115.0) == {"d-2"}  # d-0's last renewal was seen at 100
    assert members.live(125.0) == frozenset()
