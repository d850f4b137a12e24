"""Lease liveness judged on the observer's own clock (``lambdalet.contracts.leases``)."""

from __future__ import annotations

from lambdalet.contracts.leases import REPLACED_MEMORY, Lease, Liveness, parse


def lease(name: str, renew: str, version: str, holder: str = "x", duration: float = 15) -> Lease:
    return Lease(name, holder, duration, renew, version)


def test_a_renewal_seen_keeps_the_holder_live_for_the_duration() -> None:
    seen = Liveness()
    seen.observe(lease("l", "t1", "1"), now=100.0)
    assert [s.lease.name for s in seen.live(114.9)] == ["l"]
    assert seen.live(115.0) == []
    assert [(s.lease.name, s.lapses_at) for s in seen.lapsed(115.0)] == [("l", 115.0)]

    seen.observe(lease("l", "t1", "1"), now=110.0)  # the same object again: not a renewal
    assert seen.live(115.0) == []
    seen.observe(lease("l", "t2", "2"), now=116.0)  # renewed: live again
    assert [s.lease.name for s in seen.live(130.0)] == ["l"]


def test_a_listing_drops_deleted_leases_and_is_not_a_renewal() -> None:
    seen = Liveness()
    seen.observe(lease("a", "t1", "1"), now=0.0)
    seen.observe(lease("b", "t1", "1"), now=0.0)
    seen.sync([lease("a", "t1", "1")], now=10.0)
    assert [s.lease.name for s in seen.live(14.0)] == ["a"]
    assert seen.live(15.0) == []


def test_a_lease_without_holder_is_nobody() -> None:
    seen = Liveness()
    seen.observe(lease("a", "t1", "1", holder=""), now=0.0)
    assert seen.live(1.0) == []
    assert seen.lapsed(100.0) == []


def test_parse_reads_holder_duration_and_annotations() -> None:
    body = {
        "metadata": {"name": "n", "resourceVersion": "7", "annotations": {"k": "v"}},
        "spec": {"holderIdentity": "pod/1", "leaseDurationSeconds": 4, "renewTime": "t"},
    }
    assert parse(body) == Lease("n", "pod/1", 4.0, "t", "7", {"k": "v"})
    assert parse({"metadata": {"name": "m"}}).duration == 15.0


def test_a_new_holder_leaves_the_former_one_replaced_from_then_or_its_lapse() -> None:
    seen = Liveness()
    seen.observe(lease("l", "t1", "1", holder="pod/old"), now=100.0)
    seen.observe(lease("l", "t2", "2", holder="pod/new"), now=105.0)  # restarted, in time
    assert seen.replaced(105.0) == {"pod/old": 105.0}
    seen.observe(lease("l", "t3", "3", holder="pod/newer"), now=200.0)  # after its lapse (120)
    assert seen.replaced(200.0) == {"pod/old": 105.0, "pod/new": 120.0}
    assert [s.lease.holder for s in seen.live(200.0)] == ["pod/newer"]


def test_replaced_holders_are_forgotten_after_any_invocation_could_run() -> None:
    seen = Liveness()
    seen.replace("pod/old", 10.0)
    assert seen.replaced(10.0 + REPLACED_MEMORY) == {"pod/old": 10.0}
    assert seen.replaced(10.0 + REPLACED_MEMORY + 1) == {}
