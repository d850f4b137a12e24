"""The autoscaler's HTTP endpoint: activators report load and poke here (aiohttp, in the operator).

Where it sits: every activator pod POSTs ``/v1/stats`` about once a second and ``/v1/poke`` when
a request finds its Function without a ready pod; the operator serves both on
``LAMBDALET_AUTOSCALER_PORT_NUMBER`` and hands the parsed bodies
(``lambdalet.autoscaler.reports``) to the loop (``lambdalet.autoscaler.loop``). Handlers do no
I/O beyond reading the body: recording a report or a poke is a few dict operations, and a poke's
scale write runs in the loop.

    POST /v1/poke    202  (also for a Function the operator does not know: nothing to do)
    POST /v1/stats   204
    GET  /healthz    200
    400 {"error": "..."} for a malformed body, 413 for one too large, 408 for one too slow.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from aiohttp import web

from lambdalet.autoscaler.reports import (
    MAX_BODY_BYTES,
    ReportError,
    ReportTooLarge,
    StatsReport,
    parse_poke,
    parse_stats,
)
from lambdalet.contracts.keys import Key

log = logging.getLogger("lambdalet.autoscaler")

T = TypeVar("T")

# A reporter sends a few kilobytes over a cluster network: a body that takes longer than this
# is a stuck or hostile client, and must not hold a connection forever.
READ_TIMEOUT_SECONDS = 5.0
SHUTDOWN_TIMEOUT_SECONDS = 2.0


class Receiver(Protocol):
    """What the endpoint feeds (``lambdalet.autoscaler.loop.Autoscaler``)."""

    def receive_stats(self, report: StatsReport) -> int: ...

    def receive_poke(self, key: Key) -> bool: ...


class _BadBody(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def application(receiver: Receiver) -> web.Application:
    async def healthz(request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok")

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_post("/v1/poke", _report(parse_poke, receiver.receive_poke, 202))
    app.router.add_post("/v1/stats", _report(parse_stats, receiver.receive_stats, 204))
    app.router.add_get("/healthz", healthz)
    return app


def _report(
    parse: Callable[[Any], T], receive: Callable[[T], object], status: int
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler that parses a body with ``parse``, hands it to ``receive`` and answers
    ``status``; a body it cannot take gets its error (400, 408, 413)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            parsed = parse(await _json(request))
        except _BadBody as exc:
            return _error(exc.status, exc.reason)
        except ReportTooLarge as exc:
            return _error(413, str(exc))
        except ReportError as exc:
            return _error(400, str(exc))
        receive(parsed)
        return web.Response(status=status)

    return handle


async def serve(receiver: Receiver, host: str, port: int) -> web.AppRunner:
    """Listen on ``host:port`` (all interfaces when ``host`` is empty); OSError if it cannot.

    The caller stops the server with ``runner.cleanup()``.
    """
    runner = web.AppRunner(
        application(receiver), access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_SECONDS
    )
    await runner.setup()
    try:
        await web.TCPSite(runner, host or None, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("autoscaler endpoint listening on %s:%d", host or "*", port)
    return runner


async def _json(request: web.Request) -> Any:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise _BadBody(413, f"body of {request.content_length} bytes; at most {MAX_BODY_BYTES}")
    try:
        raw = await asyncio.wait_for(request.read(), READ_TIMEOUT_SECONDS)
    except web.HTTPRequestEntityTooLarge as exc:
        raise _BadBody(413, f"body larger than {MAX_BODY_BYTES} bytes") from exc
    except TimeoutError as exc:
        raise _BadBody(408, f"body not received within {READ_TIMEOUT_SECONDS:.0f} s") from exc
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise _BadBody(400, f"body is not JSON: {exc}"[:200]) from exc


def _error(status: int, reason: str) -> web.Response:
    return web.json_response({"error": reason}, status=status)
