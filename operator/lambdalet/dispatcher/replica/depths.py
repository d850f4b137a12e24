"""Queue depths to the autoscaler: every ``every`` seconds the depths of this replica's running
queue sources, summed per Function, go to ``POST /v1/stats`` (the activators' report format, as
reporter ``dispatcher/<replica>``), so a Function scales on queue depth alone, from zero too."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import httpx

from lambdalet.contracts.keys import Key

log = logging.getLogger("lambdalet.dispatcher")

REPORT_TIMEOUT = httpx.Timeout(2.0)


async def report_depths(
    depths: Callable[[], Awaitable[dict[Key, int]]],
    *,
    autoscaler_url: str,
    replica: str,
    every: float,
) -> None:
    """Report until cancelled; a refused or failed report is logged and the next one follows."""
    url = f"{autoscaler_url}/v1/stats"
    reporter = f"dispatcher/{replica}"
    async with httpx.AsyncClient(timeout=REPORT_TIMEOUT) as http:
        while True:
            await asyncio.sleep(every)
            found = await depths()
            if not found:
                continue
            body = {
                "activator": reporter,
                "functions": [
                    {"namespace": ns, "name": name, "inFlight": 0.0, "queueDepth": depth}
                    for (ns, name), depth in found.items()
                ],
            }
            try:
                response = await http.post(url, json=body)
                if response.is_error:
                    log.warning("autoscaler refused a report: %s", response.text[:200])
            except httpx.HTTPError as exc:
                log.debug("reporting queue depths: %s", exc)
