"""The autoscaler loop with a fake clock, a dict for kopf's index and a recording scale writer.

Turns are driven by ``tick()`` in simulated time; the tests of ``run()`` (pokes waking the loop)
use a tick of an hour, so only pokes and write completions move it, and wait on events with
deadlines, never on sleeps.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from lambdalet.api.function import Function
from lambdalet.autoscaler.loop import Autoscaler
from lambdalet.autoscaler.reports import FunctionLoad, StatsReport
from lambdalet.contracts.deployments import DeploymentState
from lambdalet.contracts.keys import Key
from lambdalet.contracts.views import Views, function_views
from lambdalet.k8s import NotFound, TransientKubeError
from lambdalet.settings import Settings
from tests.api.cases import function
from tests.kit.clock import FakeClock

HELLO: Key = ("team", "hello")
OTHER: Key = ("team", "other")
T0 = 1000.0
DEADLINE = 5.0  # seconds a test waits for the loop before failing


@dataclass
class Writer:
    """Records scale writes; applies them to the index when ``follow`` (a watch with no lag)."""

    index: dict[Key, DeploymentState]
    clock: FakeClock
    follow: bool = True
    errors: list[Exception] = field(default_factory=list)
    gate: asyncio.Event | None = None  # when set, writes wait for it
    calls: list[tuple[float, str, str, int]] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)  # set by the first call
    written: asyncio.Queue[tuple[str, str, int]] = field(default_factory=asyncio.Queue)

    async def __call__(self, namespace: str, deployment: str, replicas: int) -> None:
        self.calls.append((self.clock(), namespace, deployment, replicas))
        self.started.set()
        if self.gate is not None:
            await asyncio.wait_for(self.gate.wait(), DEADLINE)
        if self.errors:
            raise self.errors.pop(0)
        key = (namespace, deployment.removeprefix("fn-"))
        if self.follow and key in self.index:
            self.index[key] = replace(self.index[key], replicas=replicas)
        self.written.put_nowait((namespace, deployment, replicas))

    def counts(self) -> list[tuple[str, int]]:
        return [(deployment, replicas) for _, _, deployment, replicas in self.calls]


def body(name: str = "hello", **scaling: Any) -> dict[str, Any]:
    manifest = function(scaling=scaling) if scaling else function()
    manifest["metadata"] |= {"name": name, "namespace": "team", "uid": f"uid-{name}"}
    manifest["metadata"]["generation"] = 1
    return manifest


def deployment(name: str = "hello", replicas: int = 0, owner: str | None = None) -> DeploymentState:
    return DeploymentState(
        name=f"fn-{name}", owner_uid=owner or f"uid-{name}", applied_hash="h", replicas=replicas
    )


@dataclass
class Bed:
    clock: FakeClock
    functions: Views[Function]
    index: dict[Key, DeploymentState]
    writer: Writer
    autoscaler: Autoscaler
    leading: list[bool]

    def report(self, *loads: tuple[Key, float], reporter: str = "activator-a") -> int:
        return self.autoscaler.receive_stats(
            StatsReport(reporter, tuple(FunctionLoad(key, value) for key, value in loads))
        )

    async def tick(self, at: float | None = None) -> None:
        if at is not None:
            self.clock.seconds = at
        await self.autoscaler.tick()
        await asyncio.wait_for(self.autoscaler.writes_done(), DEADLINE)


@pytest.fixture
def bed() -> Bed:
    clock = FakeClock(T0)
    functions = function_views()
    functions.put(body())
    functions.put(body("other"))
    index = {HELLO: deployment(), OTHER: deployment("other")}
    writer = Writer(index, clock)
    leading = [True]
    autoscaler = Autoscaler(
        settings=Settings(autoscaler_tick_seconds=3600.0),
        functions=functions,
        deployment=index.get,
        write=writer,
        clock=clock,
        leading=lambda: leading[0],
    )
    return Bed(clock, functions, index, writer, autoscaler, leading)


@pytest.fixture
async def running(bed: Bed) -> AsyncIterator[Bed]:
    """``bed`` with ``run()`` going: its first tick happens at once, later ones in an hour."""
    task = asyncio.create_task(bed.autoscaler.run())
    yield bed
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await bed.autoscaler.aclose()


async def test_idle_functions_at_zero_get_no_writes(bed: Bed) -> None:
    for second in range(120):
        await bed.tick(T0 + second)

    assert bed.writer.calls == []


async def test_stats_scale_up_and_only_changes_are_written(bed: Bed) -> None:
    assert bed.report((HELLO, 7.0), (OTHER, 0.0), (("team", "ghost"), 50.0)) == 2
    await bed.tick()
    # 7 in flight at 0.7 per pod; OTHER reported 0 and stays at 0; the ghost is nobody.
    assert bed.writer.counts() == [("fn-hello", 10)]

    bed.report((HELLO, 7.0))
    await bed.tick(T0 + 1)
    assert bed.writer.counts() == [("fn-hello", 10)]


async def test_a_report_just_before_a_second_ends_counts_as_the_last_seconds_load(
    bed: Bed,
) -> None:
    bed.clock.seconds = T0 + 0.95
    bed.report((HELLO, 7.0))
    await bed.tick(T0 + 1.05)

    # 7 in flight over the one second the report covers, not 3.5 over two.
    assert bed.writer.counts() == [("fn-hello", 10)]


@pytest.mark.parametrize(
    ("index", "functions"),
    [
        ({}, None),  # no Deployment yet
        ({HELLO: deployment(owner="uid-someone-else")}, None),  # not this Function's
        (None, {HELLO: body(minScale=3, maxScale=2)}),  # invalid spec
        (None, {}),  # deleted Function
    ],
    ids=["no-deployment", "foreign-deployment", "invalid-spec", "unknown-function"],
)
async def test_nothing_is_written_for(
    bed: Bed, index: dict[Key, DeploymentState] | None, functions: dict[Key, Any] | None
) -> None:
    if index is not None:
        bed.index.clear()
        bed.index.update(index)
    if functions is not None:
        bed.functions.remove(HELLO)
        for replacement in functions.values():
            bed.functions.put(replacement)
    bed.report((HELLO, 7.0))
    bed.autoscaler.receive_poke(HELLO)

    await bed.tick()

    assert bed.writer.calls == []


async def test_the_next_tick_does_not_repeat_a_write_the_index_has_not_shown(bed: Bed) -> None:
    bed.writer.follow = False  # the watch event is late
    bed.autoscaler.receive_poke(HELLO)
    await bed.tick()
    await bed.tick(T0 + 1)
    await bed.tick(T0 + 2)
    assert bed.writer.counts() == [("fn-hello", 1)]

    bed.index[HELLO] = deployment(replicas=1)  # the watch catches up
    await bed.tick(T0 + 3)
    assert bed.writer.counts() == [("fn-hello", 1)]


async def test_a_raised_min_scale_is_written_for_an_idle_function(bed: Bed) -> None:
    await bed.tick()
    await bed.tick(T0 + 1)

    raised = body(minScale=2)
    raised["metadata"]["generation"] = 2
    bed.functions.put(raised)
    await bed.tick(T0 + 2)

    assert bed.writer.counts() == [("fn-hello", 2)]


async def test_scale_to_zero_after_traffic_stops(bed: Bed) -> None:
    bed.functions.put(body(scaleToZeroAfterSeconds=0))
    bed.report((HELLO, 7.0))
    for second in range(15):
        await bed.tick(T0 + second + 0.5)

    # Up at once; idle once a whole panic window (6 s) has no traffic; then halving per tick.
    assert [(t - T0, replicas) for t, _, _, replicas in bed.writer.calls] == [
        (0.5, 10),
        (6.5, 5),
        (7.5, 2),
        (8.5, 1),
        (9.5, 0),
    ]


async def test_a_restarted_autoscaler_leaves_right_counts_alone(bed: Bed) -> None:
    bed.functions.put(body("other", minScale=2))
    bed.functions.put(body("byhand"))
    bed.index[OTHER] = deployment("other", replicas=2)
    bed.index[("team", "byhand")] = deployment("byhand", replicas=3)  # kubectl scale

    for second in range(0, 50, 5):
        await bed.tick(T0 + second)

    assert bed.writer.calls == []


async def test_a_count_set_by_hand_keeps_its_grace(bed: Bed) -> None:
    bed.functions.put(body(scaleToZeroAfterSeconds=30))
    await bed.tick()
    bed.index[HELLO] = deployment(replicas=3)  # kubectl scale, 10 s later

    for second in range(10, 45):
        await bed.tick(T0 + second)

    # The grace starts at the change (t=10) and runs 30 s; then halving down to zero.
    assert [(t - T0, r) for t, _, _, r in bed.writer.calls] == [(40, 1), (41, 0)]


@pytest.mark.parametrize(
    ("error", "logged"),
    [
        (TransientKubeError("scale Deployment team/fn-hello: timed out"), "retrying"),
        (NotFound("scale Deployment team/fn-hello: not found", status=404), "Deployment gone"),
    ],
    ids=["transient", "not-found"],
)
async def test_a_failed_write_is_retried_on_the_next_tick(
    bed: Bed, error: Exception, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    bed.writer.errors.append(error)
    bed.report((HELLO, 7.0))

    with caplog.at_level(logging.INFO, logger="lambdalet.autoscaler"):
        await bed.tick()
        await bed.tick(T0 + 1)

    assert bed.writer.counts() == [("fn-hello", 10), ("fn-hello", 10)]
    assert logged in caplog.text
    assert "scaled team/hello from 0 to 10: panic" in caplog.text


async def test_deleted_functions_are_forgotten(bed: Bed) -> None:
    bed.report((HELLO, 7.0))
    await bed.tick()
    assert bed.autoscaler.tracked(HELLO) is not None

    bed.functions.remove(HELLO)
    await bed.tick(T0 + 1)

    assert bed.autoscaler.tracked(HELLO) is None
    assert bed.autoscaler.receive_poke(HELLO) is False
    assert bed.report((HELLO, 7.0)) == 0


async def test_a_follower_decides_nothing_and_a_new_leader_starts_afresh(bed: Bed) -> None:
    bed.leading[0] = False
    bed.report((HELLO, 7.0))
    await bed.tick()
    assert bed.writer.calls == []
    assert bed.autoscaler.tracked(HELLO) is None

    bed.leading[0] = True
    bed.clock.seconds = T0 + 1
    bed.report((HELLO, 7.0))
    await bed.tick()
    assert bed.writer.counts() == [("fn-hello", 10)]


async def test_a_poke_wakes_the_loop_for_its_function(running: Bed) -> None:
    running.writer.follow = False
    await asyncio.sleep(0)  # let run() take its first tick (nothing to write)

    assert running.autoscaler.receive_poke(HELLO)
    assert await asyncio.wait_for(running.writer.written.get(), DEADLINE) == ("team", "fn-hello", 1)

    # A second poke while the first write is not yet in the index writes nothing; a poke for
    # another Function, taken in the same turn of the loop, shows the loop went round.
    running.autoscaler.receive_poke(HELLO)
    running.autoscaler.receive_poke(OTHER)
    assert await asyncio.wait_for(running.writer.written.get(), DEADLINE) == ("team", "fn-other", 1)
    assert running.writer.counts() == [("fn-hello", 1), ("fn-other", 1)]


async def test_a_poke_during_a_write_gets_its_turn_when_the_write_returns(running: Bed) -> None:
    await asyncio.sleep(0)
    gate = running.writer.gate = asyncio.Event()
    running.autoscaler.receive_poke(HELLO)
    await asyncio.wait_for(running.writer.started.wait(), DEADLINE)

    # Load arrives while the write of 1 hangs: no second write may start for the Function.
    running.report((HELLO, 7.0))
    running.autoscaler.receive_poke(HELLO)
    await asyncio.sleep(0)
    assert running.writer.counts() == [("fn-hello", 1)]

    gate.set()
    assert await asyncio.wait_for(running.writer.written.get(), DEADLINE) == ("team", "fn-hello", 1)
    assert await asyncio.wait_for(running.writer.written.get(), DEADLINE) == (
        "team",
        "fn-hello",
        10,
    )


async def test_a_poke_during_a_long_tick_is_taken_before_the_tick_ends(
    bed: Bed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lambdalet.autoscaler.loop.TURNS_PER_SLICE", 1)
    for i in range(5):  # idle Functions turned before HELLO's poke would be at the tick's end
        bed.functions.put(body(f"idle{i}"))
        bed.index[("team", f"idle{i}")] = deployment(f"idle{i}")
    hello = bed.functions[HELLO].body
    bed.functions.remove(HELLO)
    bed.functions.put(hello)  # last in the tick's order
    await bed.tick()  # every Function decided once, at rest from now on

    turned: list[Key] = []
    original = bed.autoscaler._turn

    def recording(key: Key) -> None:
        turned.append(key)
        if len(turned) == 1:  # while the tick's first slice runs, HELLO is poked
            bed.autoscaler.receive_poke(HELLO)
        original(key)

    monkeypatch.setattr(bed.autoscaler, "_turn", recording)
    await bed.tick(T0 + 1)

    assert turned[:3] == [OTHER, HELLO, ("team", "idle0")]
    assert bed.writer.counts() == [("fn-hello", 1)]


def test_cold_starts_in_reports_are_handed_on_for_known_functions(bed: Bed) -> None:
    heard: list[tuple[Key, float]] = []
    autoscaler = Autoscaler(
        settings=Settings(),
        functions=bed.functions,
        deployment=bed.index.get,
        write=bed.writer,
        clock=bed.clock,
        cold_start=lambda key, seconds: heard.append((key, seconds)),
    )
    report = StatsReport(
        "activator-a",
        (
            FunctionLoad(HELLO, 1.0, cold_start_seconds=1.25),
            FunctionLoad(OTHER, 2.0),  # no cold start in this second
            FunctionLoad(("team", "ghost"), 1.0, cold_start_seconds=0.5),  # unknown: ignored
        ),
    )

    assert autoscaler.receive_stats(report) == 2
    assert heard == [(HELLO, 1.25)]
