"""The cold-start status writer against a client that fails: what happens to a figure whose write
did not go through (a real API server's side is tests/controlplane/test_cold_start_status.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from lambdalet.contracts.views import function_views
from lambdalet.controller.functions.coldstarts import ColdStartWriter
from lambdalet.k8s import KubeError, PermanentKubeError, TransientKubeError
from tests.api.cases import function
from tests.kit.wait import wait_for_async

KEY = ("team", "cold")


class Client:
    """Answers each ``patch_status`` with the next of ``failures`` (then success)."""

    def __init__(self, failures: list[KubeError]) -> None:
        self.failures = failures
        self.attempts = 0
        self.written: list[dict[str, Any]] = []

    async def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        self.written.append(status)


@contextlib.asynccontextmanager
async def running(client: Client) -> Any:
    views = function_views()
    body = function()
    body["metadata"] |= {"name": KEY[1], "namespace": KEY[0], "uid": "u"}
    views.put(body)
    writer = ColdStartWriter(client, views)  # type: ignore[arg-type]
    task = asyncio.create_task(writer.run())
    try:
        yield writer
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_write_that_failed_on_the_way_is_made_again() -> None:
    client = Client([TransientKubeError("timed out"), TransientKubeError("503", status=503)])
    async with running(client) as writer:
        writer.report(KEY, 0.42)
        await wait_for_async(lambda: client.written, 10, what="the figure written")
    assert client.written == [{"lastColdStartSeconds": 0.42}]
    assert client.attempts == 3


async def test_a_newer_figure_replaces_the_one_waiting_to_be_tried_again() -> None:
    client = Client([TransientKubeError("timed out")])
    async with running(client) as writer:
        writer.report(KEY, 0.42)
        await wait_for_async(lambda: client.attempts == 1, 10, what="the first attempt")
        writer.report(KEY, 2.5)  # pending before the retry of 0.42 comes due
        await wait_for_async(lambda: client.written, 10, what="a figure written")
        await asyncio.sleep(0.8)  # past the 0.5 s retry of 0.42, which must not write
    assert client.written == [{"lastColdStartSeconds": 2.5}]


@pytest.mark.parametrize("refusal", [PermanentKubeError("forbidden", status=403)])
async def test_a_write_refused_for_good_is_dropped(refusal: KubeError) -> None:
    client = Client([refusal])
    async with running(client) as writer:
        writer.report(KEY, 0.42)
        await wait_for_async(lambda: client.attempts == 1, 10, what="the attempt")
        await asyncio.sleep(0.8)  # past the first retry delay: nothing more is sent
    assert (client.attempts, client.written) == (1, [])
