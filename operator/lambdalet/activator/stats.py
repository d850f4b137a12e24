"""What the activator tells the autoscaler: a poke on every cold start, load once a second.

Both go to the operator's autoscaler endpoint (``lambdalet.autoscaler.api``):

    POST /v1/poke   {"namespace", "name"}                       at once, for a held request
                                                                with no instance to go to
    POST /v1/stats  {"activator", "functions": [{"namespace", "name", "inFlight", "queueDepth"}]}
                                                                every second, for each Function
                                                                with load in that second
                                                                (queueDepth: its asynchronous
                                                                events waiting, when Redis is
                                                                configured)

A poke is fire-and-forget (the autoscaler's answer changes nothing here) but bounded: at most
``MAX_POKES_IN_FLIGHT`` at once, and the proxy pokes a Function at most once a second. A lost
report costs the autoscaler one second of zero, which cannot scale anything down on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import httpx

from lambdalet.activator.model import FunctionKey

log = logging.getLogger("lambdalet.activator")

REPORT_SECONDS = 1.0
MAX_POKES_IN_FLIGHT = 64
TIMEOUT = httpx.Timeout(2.0)

Snapshot = Callable[[float], list[tuple[FunctionKey, float, int]]]
QueueDepth = Callable[[FunctionKey], Awaitable[int]]


class Reporter:
    def __init__(
        self,
        autoscaler_url: str,
        activator: str,
        *,
        snapshot: Snapshot,
        queue_depth: QueueDepth | None = None,
    ) -> None:
        self._url = autoscaler_url.rstrip("/")
        self._activator = activator
        self._snapshot = snapshot
        self._queue_depth = queue_depth
        self._http = httpx.AsyncClient(timeout=TIMEOUT)
        self._pokes: set[asyncio.Task[None]] = set()
        self.failures = 0  # reports and pokes the autoscaler did not take (for tests and logs)

    def poke(self, key: FunctionKey) -> None:
        if len(self._pokes) >= MAX_POKES_IN_FLIGHT:
            return
        task = asyncio.get_running_loop().create_task(self._send_poke(key))
        self._pokes.add(task)
        task.add_done_callback(self._pokes.discard)

    async def _send_poke(self, key: FunctionKey) -> None:
        await self._post("/v1/poke", {"namespace": key[0], "name": key[1]})

    async def run(self) -> None:
        """Report every second until cancelled."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            await asyncio.sleep(REPORT_SECONDS)
            now = loop.time()
            await self.report(now - last)
            last = now

    async def report(self, period: float) -> None:
        functions = []
        for (namespace, name), load, _held in self._snapshot(period):
            entry: dict[str, object] = {
                "namespace": namespace,
                "name": name,
                "inFlight": round(load, 3),
            }
            if self._queue_depth is not None:
                try:
                    entry["queueDepth"] = await self._queue_depth((namespace, name))
                except Exception as exc:  # a queue that cannot be read reports no depth
                    log.debug("queue depth of %s/%s: %s", namespace, name, exc)
            functions.append(entry)
        if functions:
            await self._post("/v1/stats", {"activator": self._activator, "functions": functions})

    async def _post(self, path: str, body: dict[str, object]) -> None:
        try:
            response = await self._http.post(self._url + path, json=body)
        except httpx.HTTPError as exc:
            self._failed(path, f"{exc.__class__.__name__}: {exc}")
            return
        if response.is_error:
            self._failed(path, f"HTTP {response.status_code}: {response.text[:200]}")

    def _failed(self, path: str, why: str) -> None:
        self.failures += 1
        log.warning("autoscaler %s%s: %s", self._url, path, why)

    async def aclose(self) -> None:
        for task in list(self._pokes):
            task.cancel()
        await asyncio.gather(*self._pokes, return_exceptions=True)
        await self._http.aclose()
