"""The split of reserved concurrency among activators (``quota``): pure arithmetic, no clock."""

from __future__ import annotations

import itertools

import pytest

from lambdalet.activator.model import FunctionConfig
from lambdalet.activator.quota import LINGER_MARGIN, Gone, Peer, View, share

KEY = ("team", "hello")
MEMBERS = ("a/1", "b/2", "c/3", "d/4", "e/5")


def config(reserved: int | None, timeout: float = 3.0, name: str = "hello") -> FunctionConfig:
    return FunctionConfig(namespace="team", name=name, reserved=reserved, timeout_seconds=timeout)


@pytest.mark.parametrize(
    ("reserved", "members", "shares"),
    [
        (10, 1, [10]),
        (10, 2, [5, 5]),
        (5, 2, [2, 3]),  # 5 // 2 = 2 each, the spare unit to one of them
        (5, 3, [1, 2, 2]),
        (1, 2, [0, 1]),  # smaller than the number of activators: one holds it all
        (2, 5, [0, 0, 0, 1, 1]),
        (0, 3, [0, 0, 0]),
        (7, 4, [1, 2, 2, 2]),
    ],
)
def test_a_cap_is_split_whole(reserved: int, members: int, shares: list[int]) -> None:
    group = MEMBERS[:members]
    got = sorted(share(reserved, KEY, group, me) for me in group)
    assert got == shares
    assert sum(got) == reserved


def test_not_a_member_has_no_share() -> None:
    assert share(5, KEY, MEMBERS[:2], "z/9") == 0


def test_spare_units_of_different_functions_spread_over_the_activators() -> None:
    group = MEMBERS[:2]
    holders = {
        next(me for me in group if share(1, (f"ns{i}", "fn"), group, me) == 1) for i in range(40)
    }
    assert holders == set(group)


@pytest.mark.parametrize("reserved", range(13))
def test_no_share_grows_when_a_member_joins(reserved: int) -> None:
    """Why a member that counts more peers than another never admits more than it would with
    the other's view: the sum over mixed views stays within the cap."""
    for key in [KEY, ("x", "y"), ("other", "fn")]:
        for size in range(1, len(MEMBERS)):
            for group in itertools.combinations(MEMBERS, size):
                for newcomer in set(MEMBERS) - set(group):
                    larger = (*group, newcomer)
                    for me in group:
                        assert share(reserved, key, larger, me) <= share(reserved, key, group, me)


# -- views: joining, fencing, lingering, settling -------------------------------------------------


def test_alone_an_activator_has_the_whole_cap() -> None:
    view = View("a/1")
    assert view.joined
    assert view.share(config(5), now=0.0) == 5
    assert view.share(config(None), now=0.0) is None


@pytest.mark.parametrize(
    ("acks_of_b", "joined", "a_share"),
    [
        ({"b/2"}, False, 0),  # b has not counted a yet: a admits nothing under a cap
        ({"a/1", "b/2"}, True, None),  # b counts a and is within its share: a takes its part
        ({"a/0", "b/2"}, False, 0),  # b acked a's earlier self (a restart): not this one
    ],
)
def test_a_newcomer_admits_once_every_peer_counts_it(
    acks_of_b: set[str], joined: bool, a_share: int | None
) -> None:
    view = View("a/1", peers=(Peer("b/2", frozenset(acks_of_b)),))
    assert view.joined is joined
    expected = share(5, KEY, ("a/1", "b/2"), "a/1") if a_share is None else a_share
    assert view.share(config(5), now=0.0) == expected
    assert view.share(config(None), now=0.0) is None  # no cap, nothing to wait for


def test_a_fenced_activator_admits_nothing_under_a_cap() -> None:
    view = View("a/1", fenced=True)
    assert view.share(config(5), now=0.0) == 0
    assert view.counted_share(config(5), now=0.0) == 5


@pytest.mark.parametrize(
    ("now", "counted"),
    [
        (100.0, {"a/1", "b/2"}),  # b's Lease just lapsed: its invocations may still run
        (100.0 + 3.0 + LINGER_MARGIN - 0.01, {"a/1", "b/2"}),
        (100.0 + 3.0 + LINGER_MARGIN, {"a/1"}),  # after the Function's timeout: a takes all
    ],
)
def test_a_crashed_peer_is_counted_until_its_invocations_must_have_ended(
    now: float, counted: set[str]
) -> None:
    view = View("a/1", gone=(Gone("b/2", lapsed_at=100.0),))
    assert view.members(3.0, now) == counted
    assert view.share(config(5, timeout=3.0), now) == share(5, KEY, counted, "a/1")


def test_a_longer_timeout_keeps_the_crashed_peer_counted_longer() -> None:
    view = View("a/1", gone=(Gone("b/2", lapsed_at=100.0),))
    now = 100.0 + 3.0 + LINGER_MARGIN
    assert view.share(config(5, timeout=3.0), now) == 5
    assert view.share(config(5, timeout=60.0), now) == share(5, KEY, ("a/1", "b/2"), "a/1")


@pytest.mark.parametrize(
    ("loads", "settled"),
    [
        ([], True),
        ([(config(None), 50)], True),  # no cap: any load
        ([(config(4), 2)], True),  # reserved 4 over {a, b}: 2 each
        ([(config(4), 3)], False),  # above its share counting b: b must wait
        ([(config(4), 2), (config(1, name="one"), 1)], None),  # depends on who holds the unit
    ],
)
def test_settled_means_within_every_share_counting_the_peers(
    loads: list[tuple[FunctionConfig, int]], settled: bool | None
) -> None:
    view = View("a/1", peers=(Peer("b/2", frozenset()),))
    if settled is None:
        settled = share(1, ("team", "one"), ("a/1", "b/2"), "a/1") == 1
    assert view.settled(loads, now=0.0) is settled
    assert view.acks == {"a/1", "b/2"}


def test_holders_are_the_peers_with_a_share_and_an_address() -> None:
    peers = (
        Peer("b/2", frozenset(), ("10.0.0.2", 8081)),
        Peer("c/3", frozenset(), ("10.0.0.3", 8081)),
        Peer("d/4", frozenset()),  # no address: takes no forwarded invocations
    )
    view = View("a/1", peers=peers, gone=(Gone("e/5", lapsed_at=0.0),))
    members = ("a/1", "b/2", "c/3", "d/4", "e/5")
    for reserved in range(8):
        expected = {
            ("10.0.0." + m[-1], 8081)
            for m in ("b/2", "c/3")
            if share(reserved, KEY, members, m) > 0
        }
        got = view.holders(config(reserved), now=1.0)  # e/5 lingers: counted, never asked
        assert set(got) == expected
        assert len(got) == len(expected)
    assert view.holders(config(None), now=1.0) == []
