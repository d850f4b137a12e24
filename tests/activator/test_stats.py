"""The activator's reports reach the operator's real autoscaler endpoint and parse there: load,
and each cold start once, in the report after it ended."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from lambdalet.activator.stats import Reporter
from lambdalet.autoscaler.api import serve
from lambdalet.autoscaler.reports import FunctionLoad, StatsReport
from lambdalet.contracts.keys import Key
from tests.kit.ports import free_port

HELLO: Key = ("team", "hello")
OTHER: Key = ("team", "other")


@dataclass
class Recorder:
    reports: list[StatsReport] = field(default_factory=list)

    def receive_stats(self, report: StatsReport) -> int:
        self.reports.append(report)
        return len(report.functions)

    def receive_poke(self, key: Key) -> bool:
        return True


@pytest.fixture
async def endpoint() -> AsyncIterator[tuple[Recorder, str]]:
    recorder = Recorder()
    port = free_port()
    runner = await serve(recorder, "127.0.0.1", port)
    yield recorder, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_cold_start_goes_out_once_with_the_next_report(
    endpoint: tuple[Recorder, str],
) -> None:
    recorder, url = endpoint
    cold_starts: dict[Key, float] = {HELLO: 1.23456, OTHER: 0.5}
    loads = [(HELLO, 2.0, 0)]

    def taken() -> dict[Key, float]:
        out = dict(cold_starts)
        cold_starts.clear()
        return out

    reporter = Reporter(url, "activator-a", snapshot=lambda _: loads, cold_starts=taken)
    try:
        await reporter.report(1.0)
        await reporter.report(1.0)
    finally:
        await reporter.aclose()

    assert reporter.failures == 0
    first, second = recorder.reports
    assert first == StatsReport(
        "activator-a",
        (
            FunctionLoad(HELLO, 2.0, cold_start_seconds=1.235),
            FunctionLoad(OTHER, 0.0, cold_start_seconds=0.5),  # its load was not in the snapshot
        ),
    )
    assert second == StatsReport("activator-a", (FunctionLoad(HELLO, 2.0),))
