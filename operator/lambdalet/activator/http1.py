"""The activator's front door: a lean HTTP/1.1 server on asyncio + httptools.

Every invocation crosses this server, so it does no more than HTTP needs: httptools parses, one
``asyncio.Protocol`` per connection collects a request (bounded: header bytes, body bytes, and a
deadline for each), hands the whole request to the application as an ``HttpRequest`` and writes
the ``HttpResponse`` back with a ``Content-Length``, keeping the connection alive when the client
allows. Requests pipelined on one connection are answered in order, a bounded number at a time.
Framework servers spend 4-5x the CPU per request on the same work (see benchmarks/activator.py).

Errors the client caused are answered here, with API Gateway's ``{"message": ...}`` bodies:
400 for what does not parse, 413 for a body over the limit (before reading it when
``Content-Length`` says so), 408 when the headers or the body do not arrive in time, 431 for
oversized headers.

A graceful stop goes through ``Connections``, shared by the servers of one process: ``drain()``
makes every later response close its connection (``connection: close``), so clients open new
ones, which the Service no longer routes here. An idle kept-alive connection is left open
meanwhile: closing it could cross a request the client is sending on it, which would then get no
answer at all, while its next request gets one, and the close. ``close_idle()``, once the
listeners are closed, closes those that stayed idle; ``wait_idle()`` returns once no request is
being answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import cast

import httptools

from lambdalet.activator.events import HttpRequest, HttpResponse, error_response

log = logging.getLogger("lambdalet.activator")

Application = Callable[[HttpRequest], Awaitable[HttpResponse]]

# Lambda's synchronous payload limit: an event (the body, once shaped) over 6 MB is refused.
MAX_BODY_BYTES = 6 * 1024 * 1024
MAX_PIPELINED = 16


@dataclass(frozen=True)
class ServerLimits:
    max_body_bytes: int = MAX_BODY_BYTES
    max_header_bytes: int = 64 * 1024  # request line and headers together
    header_timeout: float = 10.0  # from the first byte of a request to the end of its headers
    body_timeout: float = 60.0  # from the end of the headers to the end of the body
    idle_timeout: float = 75.0  # a kept-alive connection with no request in progress


_REASONS = {status.value: status.phrase.encode() for status in HTTPStatus}


def encode_response(response: HttpResponse, *, keep_alive: bool) -> bytes:
    """The bytes of ``response``: status line, its headers, Content-Length, body."""
    status = response.status
    lines = [b"HTTP/1.1 %d %s" % (status, _REASONS.get(status, b"Unknown"))]
    for name, value in response.headers:
        lines.append(f"{name}: {value}".encode("latin-1", "replace"))
    lines.append(b"content-length: %d" % len(response.body))
    if not keep_alive:
        lines.append(b"connection: close")
    lines.append(b"")
    lines.append(b"")
    return b"\r\n".join(lines) + response.body


class Connections:
    """The open connections of a process's servers, for a graceful stop."""

    def __init__(self) -> None:
        self._open: set[HttpProtocol] = set()
        self._idle: asyncio.Event | None = None  # set by settled() for wait_idle()
        self.draining = False

    def add(self, connection: HttpProtocol) -> None:
        self._open.add(connection)  # while draining too: it gets one answer, then closes

    def discard(self, connection: HttpProtocol) -> None:
        self._open.discard(connection)

    def __len__(self) -> int:
        return len(self._open)

    def busy(self) -> int:
        """Connections with a request being received or answered."""
        return sum(1 for connection in self._open if connection.in_request)

    def drain(self) -> None:
        """From now on, close each connection after its next response."""
        self.draining = True

    def close_idle(self) -> None:
        """Close the connections that have no request in progress."""
        for connection in list(self._open):
            connection.close_when_idle()

    async def wait_idle(self) -> None:
        """Return once no connection has a request in progress (bound it with a timeout)."""
        while self.busy():
            self._idle = asyncio.Event()
            await self._idle.wait()

    def settled(self) -> None:
        """A connection finished a request or closed."""
        if self._idle is not None and not self.busy():
            self._idle.set()


class HttpProtocol(asyncio.Protocol):
    """One client connection."""

    def __init__(
        self,
        app: Application,
        limits: ServerLimits,
        loop: asyncio.AbstractEventLoop,
        connections: Connections | None = None,
    ) -> None:
        self._app = app
        self._limits = limits
        self._loop = loop
        self._connections = connections
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._peer = ""
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None
        self._timeout_message: str | None = None
        self._pending: deque[tuple[HttpRequest, bool]] = deque()
        self._busy = False
        self._closing = False
        self._in_message = False  # between the first byte of a request and its last
        self._reset()

    def _reset(self) -> None:
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._header_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._rejected = False

    # -- connection ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if peer else ""
        self._arm(self._limits.idle_timeout, None)
        if self._connections is not None:
            self._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._stop_timer()
        self._pending.clear()
        if self._connections is not None:
            self._connections.discard(self)
            self._connections.settled()

    @property
    def in_request(self) -> bool:
        """A request is being received or answered."""
        return not self._closing and (self._busy or self._in_message)

    def close_when_idle(self) -> None:
        """Close now if no request is in progress; else after the response to it."""
        if not self.in_request:
            self._close()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(HTTPStatus.BAD_REQUEST, "Protocol upgrades are not supported")
        except httptools.HttpParserError as exc:
            if not self._rejected:
                self._fail(HTTPStatus.BAD_REQUEST, f"Malformed HTTP request: {exc}")

    # -- parser callbacks ---------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._in_message = True
        self._reset()
        self._arm(self._limits.header_timeout, "Request headers took too long")

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))
        self._count_header_bytes(len(name) + len(value) + 4)

    def on_headers_complete(self) -> None:
        if self._rejected:
            return
        length = self._content_length()
        if length is not None and length > self._limits.max_body_bytes:
            self._fail(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self._too_large())
            return
        if self._expects_continue() and self._transport is not None:
            self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self._arm(self._limits.body_timeout, "Request body took too long")

    def on_body(self, body: bytes) -> None:
        if self._rejected:
            return
        self._body_bytes += len(body)
        if self._body_bytes > self._limits.max_body_bytes:
            self._fail(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, self._too_large())
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self._rejected:
            return
        self._disarm()
        url = httptools.parse_url(self._url)
        request = HttpRequest(
            method=self._parser.get_method().decode("ascii"),
            path=url.path.decode("latin-1") if url.path else "/",
            query=url.query.decode("latin-1") if url.query else "",
            headers=tuple(self._headers),
            body=b"".join(self._body),
            source_ip=self._peer,
            protocol=f"HTTP/{self._parser.get_http_version()}",
        )
        self._pending.append((request, self._parser.should_keep_alive()))
        if len(self._pending) >= MAX_PIPELINED and self._transport is not None:
            self._transport.pause_reading()
        if not self._busy:
            self._busy = True
            self._loop.create_task(self._serve())

    # -- serving ------------------------------------------------------------------------------

    async def _serve(self) -> None:
        while self._pending and not self._closing:
            request, keep_alive = self._pending.popleft()
            try:
                response = await self._app(request)
            except Exception:
                log.exception("unexpected error serving %s %s", request.method, request.path)
                response = error_response(500, "Internal Server Error")
            if self._closing or self._transport is None:
                return
            if self._connections is not None and self._connections.draining and not self._pending:
                keep_alive = False  # requests pipelined behind this one are answered first
            self._transport.write(encode_response(response, keep_alive=keep_alive))
            if not keep_alive:
                self._close()
                return
            if len(self._pending) < MAX_PIPELINED:
                self._transport.resume_reading()
        self._busy = False
        if not self._closing:
            self._arm(self._limits.idle_timeout, None)
        if self._connections is not None:
            self._connections.settled()

    # -- helpers ------------------------------------------------------------------------------

    def _count_header_bytes(self, n: int) -> None:
        self._header_bytes += n
        if self._header_bytes > self._limits.max_header_bytes and not self._rejected:
            self._fail(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"Request headers exceed {self._limits.max_header_bytes} bytes",
            )

    def _content_length(self) -> int | None:
        for name, value in self._headers:
            if name.lower() == "content-length":
                with contextlib.suppress(ValueError):
                    return int(value)
        return None

    def _expects_continue(self) -> bool:
        return any(
            name.lower() == "expect" and value.lower() == "100-continue"
            for name, value in self._headers
        )

    def _too_large(self) -> str:
        return f"Request body exceeds {self._limits.max_body_bytes} bytes"

    # One deadline per connection, moved as the request advances (idle -> headers -> body ->
    # idle), and one timer that chases it: moving a deadline later costs no timer at all, so a
    # kept-alive request re-arms nothing; the timer, when it fires early, re-schedules itself.

    def _arm(self, seconds: float, timeout_message: str | None) -> None:
        self._deadline = self._loop.time() + seconds
        self._timeout_message = timeout_message
        if self._timer is None or self._timer.when() > self._deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(self._deadline, self._timed_out)

    def _disarm(self) -> None:
        self._deadline = None

    def _stop_timer(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None or self._closing:
            return
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._timed_out)
            return
        message = self._timeout_message
        self._deadline = None
        if message is None or self._busy:  # an idle keep-alive connection: just close
            if not self._busy:
                self._close()
            return
        self._fail(HTTPStatus.REQUEST_TIMEOUT, message)

    def _fail(self, status: HTTPStatus, message: str) -> None:
        """Answer an error the client caused, after any responses still owed, and close."""
        self._rejected = True
        self._disarm()
        if self._transport is None or self._closing:
            return
        if self._busy:
            # Earlier requests are still being answered; this connection cannot be trusted to
            # frame the next one, so close once they are done.
            self._pending.clear()
            self._closing = True
            self._transport.close()
            return
        self._transport.write(
            encode_response(error_response(status.value, message), keep_alive=False)
        )
        self._close()

    def _close(self) -> None:
        self._closing = True
        self._stop_timer()
        if self._transport is not None:
            self._transport.close()


async def serve(
    app: Application,
    host: str,
    port: int,
    *,
    limits: ServerLimits | None = None,
    backlog: int = 1024,
    connections: Connections | None = None,
) -> asyncio.Server:
    """Start serving ``app`` on ``host:port`` (port 0 picks a free one); returns the server.
    Its connections join ``connections``, when given, for a graceful stop."""
    loop = asyncio.get_running_loop()
    chosen = limits or ServerLimits()
    return await loop.create_server(
        lambda: HttpProtocol(app, chosen, loop, connections),
        host,
        port,
        backlog=backlog,
        reuse_address=True,
    )
