"""What queues an EventSource: its own events, its Function coming or going, and dispatcher
membership changes that move it (rendezvous owner), on a simulated monotonic clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from lambdalet import sharding
from lambdalet.contracts.leases import parse
from lambdalet.controller.eventsources import reconciler as eventsources
from lambdalet.controller.eventsources.reconciler import EventSourceState
from lambdalet.k8s import Connection, KubeClient
from lambdalet.settings import Settings
from tests.kit.clock import FakeClock


@pytest.fixture
async def state() -> AsyncIterator[EventSourceState]:
    # The client is never used here: nothing below talks to the API server.
    client = KubeClient(Connection(server="https://127.0.0.1:9"))
    try:
        yield EventSourceState(settings=Settings(), client=client, clock=FakeClock(1000.0))
    finally:
        await client.aclose()


def source(name: str, function: str = "worker") -> dict[str, Any]:
    return {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": "EventSource",
        "metadata": {"name": name, "namespace": "team"},
        "spec": {"function": {"name": function}},
    }


async def drain(state: EventSourceState) -> set[tuple[str, str]]:
    taken = set()
    while len(state.queue):
        key, _ = await state.queue.get()
        state.queue.done(key)
        taken.add(key)
    return taken


def join(state: EventSourceState, replica: str, renewal: int = 0) -> None:
    body = {
        "metadata": {"name": f"lambdalet-dispatcher-{replica}", "resourceVersion": str(renewal)},
        "spec": {"holderIdentity": replica, "leaseDurationSeconds": 15, "renewTime": str(renewal)},
    }
    state.membership.observe(parse(body), state.clock())


async def test_an_event_queues_the_source_and_indexes_its_function(
    state: EventSourceState,
) -> None:
    eventsources.track(state, ("team", "a"), source("a"))
    eventsources.track(state, ("team", "b"), source("b", function="other"))
    assert await drain(state) == {("team", "a"), ("team", "b")}

    eventsources.function_changed(state, ("team", "worker"))
    assert await drain(state) == {("team", "a")}
    eventsources.function_changed(state, ("elsewhere", "worker"))
    assert await drain(state) == set()


async def test_a_source_that_names_another_function_moves_in_the_index(
    state: EventSourceState,
) -> None:
    eventsources.track(state, ("team", "a"), source("a"))
    eventsources.track(state, ("team", "a"), source("a", function="other"))
    await drain(state)
    assert state.dependants == {("team", "other"): {("team", "a")}}

    eventsources.function_changed(state, ("team", "worker"))
    assert await drain(state) == set()
    eventsources.function_changed(state, ("team", "other"))
    assert await drain(state) == {("team", "a")}


async def test_a_deleted_source_is_forgotten(state: EventSourceState) -> None:
    eventsources.track(state, ("team", "a"), source("a"))
    eventsources.forget(state, ("team", "a"))
    assert state.sources == {}
    assert state.dependants == {}
    eventsources.function_changed(state, ("team", "worker"))
    assert await drain(state) <= {("team", "a")}  # at most the entry queued before the delete


async def test_membership_changes_queue_exactly_the_sources_that_move(
    state: EventSourceState,
) -> None:
    keys = [("team", f"s{i}") for i in range(60)]
    for namespace, name in keys:
        eventsources.track(state, (namespace, name), source(name))
    await drain(state)
    clock = state.clock
    assert isinstance(clock, FakeClock)

    # The first replica: every source goes from no owner to it.
    join(state, "d-0")
    eventsources.reassign(state)
    assert state.live == {"d-0"}
    assert await drain(state) == set(keys)

    # A second one takes only the sources it wins.
    clock.advance(1)
    join(state, "d-1")
    eventsources.reassign(state)
    to_d1 = {k for k in keys if sharding.owner(*k, ["d-0", "d-1"]) == "d-1"}
    assert 0 < len(to_d1) < len(keys)
    assert await drain(state) == to_d1

    # Nothing changes while both renew.
    for renewal in range(1, 4):
        clock.advance(5)
        join(state, "d-0", renewal)
        join(state, "d-1", renewal)
        eventsources.reassign(state)
        assert await drain(state) == set()

    # d-1 stops renewing: after 15 s on the operator's clock its sources go back to d-0.
    for renewal in (4, 5):
        clock.advance(5)
        join(state, "d-0", renewal)
        eventsources.reassign(state)
        assert await drain(state) == set()
    clock.advance(4)  # 14 s since d-1's last renewal was seen
    eventsources.reassign(state)
    assert await drain(state) == set()
    clock.advance(1)
    eventsources.reassign(state)
    assert state.live == {"d-0"}
    assert await drain(state) == to_d1

    # A clean shutdown deletes the Lease: gone at once, every source is left without an owner.
    state.membership.remove("lambdalet-dispatcher-d-0")
    eventsources.reassign(state)
    assert state.live == frozenset()
    assert await drain(state) == set(keys)
