"""What the activator tells the autoscaler: a poke on every cold start, load once a second.

Both go to the operator's autoscaler endpoint (``lambdalet.autoscaler.api``):

    POST /v1/poke   {"namespace", "name"}                       at once, for a held request
                                                                with no instance to go to
    POST /v1/stats  {"activator", "functions": [{"namespace", "name", "inFlight", "queueDepth",
                                                 "coldStartSeconds"}]}
                                                                every second, for each Function
                                                                with load in that second
                                                                (queueDepth: its asynchronous
                                                                events waiting, when Redis is
                                                                configured; coldStartSeconds:
                                                                the cold start that ended in
                                                                that second, if one did)

A cold start is reported once, in the report after it ended; the operator writes it to the
Function's ``status.lastColdStartSeconds``. A report that does not arrive loses that figure
(the next cold start brings a new one), never a scaling decision.

A poke is fire-and-forget (the autoscaler's answer changes nothing here) but bounded: at most
``MAX_POKES_IN_FLIGHT`` at once, and the proxy pokes a Function at most once a second. A lost
report costs the autoscaler one second of zero, which cannot scale anything down on its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping

import httpx

from lambdalet.contracts.keys import Key

log = logging.getLogger("lambdalet.activator")

REPORT_SECONDS = 1.0
MAX_POKES_IN_FLIGHT = 64
TIMEOUT = httpx.Timeout(2.0)

Snapshot = Callable[[float], list[tuple[Key, float, int]]]
QueueDepth = Callable[[Key], Awaitable[int]]
ColdStarts = Callable[[], Mapping[Key, float]]


class Reporter:
    def __init__(
        self,
        autoscaler_url: str,
        activator: str,
        *,
        snapshot: Snapshot,
        queue_depth: QueueDepth | None = None,
        cold_starts: ColdStarts | None = None,
    ) -> None:
        self._cold_starts = cold_starts
        self._url = autoscaler_url.rstrip("/")
        self._activator = activator
        self._snapshot = snapshot
        self._queue_depth = queue_depth
        self._http = httpx.AsyncClient(timeout=TIMEOUT)
        self._pokes: set[asyncio.Task[None]] = set()
        self.failures = 0  # reports and pokes the autoscaler did not take (for tests and logs)

    def poke(self, key: Key) -> None:
        if len(self._pokes) >= MAX_POKES_IN_FLIGHT:
            return
        task = asyncio.get_running_loop().create_task(self._send_poke(key))
        self._pokes.add(task)
        task.add_done_callback(self._pokes.discard)

    async def _send_poke(self, key: Key) -> None:
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
        loads = self._snapshot(period)
        cold_starts = dict(self._cold_starts()) if self._cold_starts is not None else {}
        # A cold start implies load in its period; should one come alone, it is sent with none.
        loaded = {key for key, _, _ in loads}
        loads = [*loads, *((key, 0.0, 0) for key in cold_starts if key not in loaded)]
        for (namespace, name), load, _held in loads:
            entry: dict[str, object] = {
                "namespace": namespace,
                "name": name,
                "inFlight": round(load, 3),
            }
            cold_start = cold_starts.get((namespace, name))
            if cold_start is not None:
                entry["coldStartSeconds"] = round(cold_start, 3)
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
