"""Keep-alive HTTP/1.1 connections from the activator to function pods, on asyncio + httptools.

The activator sends every invocation as one ``POST`` to a pod's agent (runtime-images/agent: the
invoke API on port 8080) and reads one response. Connections are pooled per pod address and
reused, so a warm invocation costs a write and a read on an open socket, no handshake.

Two failures are told apart, because only one is safe to retry on another pod:

    UpstreamError
    ├── ConnectFailed      no connection could be made: nothing ran, retry elsewhere
    │   └── StaleConnection  a reused idle connection was closed by the pod before it answered
    │                      a byte (the agent closes only idle connections, when it stops):
    │                      nothing ran, dial again
    └── ExchangeFailed     the connection broke or timed out after the request was sent:
                           the function may have run, so the caller answers 502/504
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import httptools

INVOKE_PATH = b"/2015-03-31/functions/function/invocations"
CONNECT_TIMEOUT = 2.0
MAX_IDLE_PER_POD = 64
MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # the agent answers at most 6 MB plus an error document

Address = tuple[str, int]


class UpstreamError(Exception):
    pass


class ConnectFailed(UpstreamError):
    pass


class StaleConnection(ConnectFailed):
    """A kept-alive connection the pod had closed: the pod may be fine, dial it afresh."""


class ExchangeFailed(UpstreamError):
    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: dict[str, str]  # lower-cased names; the agent sends each at most once
    body: bytes


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0
        self.reusable = False
        self.reused = False  # taken from the idle pool for this exchange
        self._answered = False  # a byte of the current response has arrived

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            if self.reused and not self._answered:
                error: UpstreamError = StaleConnection(f"idle connection closed by the pod: {exc}")
            else:
                error = ExchangeFailed(f"connection closed by the pod: {exc}")
            self._waiter.set_exception(error)

    def data_received(self, data: bytes) -> None:
        self._answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._abort(ExchangeFailed(f"malformed response from the pod: {exc}"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > MAX_RESPONSE_BYTES:
            self._abort(ExchangeFailed(f"response from the pod exceeds {MAX_RESPONSE_BYTES} bytes"))
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        self.reusable = self._parser.should_keep_alive()
        response = UpstreamResponse(
            self._parser.get_status_code(), self._headers, b"".join(self._body)
        )
        self._headers, self._body, self._size = {}, [], 0
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def send(
        self, data: bytes, loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[UpstreamResponse]:
        assert self.transport is not None
        self.reusable = False
        self._answered = False
        self._waiter = loop.create_future()
        self.transport.write(data)
        return self._waiter

    def _abort(self, exc: UpstreamError) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def encode_request(
    address: Address, body: bytes, headers: Iterable[tuple[str, str]], path: bytes = INVOKE_PATH
) -> bytes:
    lines = [
        b"POST %s HTTP/1.1" % path,
        f"host: {address[0]}:{address[1]}".encode(),
        b"content-type: application/json",
        b"content-length: %d" % len(body),
    ]
    lines.extend(f"{name}: {value}".encode("latin-1", "replace") for name, value in headers)
    lines.append(b"")
    lines.append(b"")
    return b"\r\n".join(lines) + body


class Pool:
    """Idle keep-alive connections per pod address, bounded; the one place that dials pods."""

    def __init__(self, *, connect_timeout: float = CONNECT_TIMEOUT) -> None:
        self._idle: dict[Address, list[_Connection]] = {}
        self._connect_timeout = connect_timeout
        # asyncio.get_running_loop() costs a getpid() system call on every call (Python 3.11).
        self._loop: asyncio.AbstractEventLoop | None = None

    async def post(
        self,
        address: Address,
        body: bytes,
        headers: Iterable[tuple[str, str]] = (),
        *,
        timeout: float,  # noqa: ASYNC109 - a deadline timer on the response, not a scope
    ) -> UpstreamResponse:
        """One invocation on ``address``; ``timeout`` bounds the exchange after connecting."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        connection = self._take(address) or await self._connect(address, loop)
        waiter = connection.send(encode_request(address, body, headers), loop)
        timer = loop.call_later(timeout, _expire, waiter, timeout)
        try:
            response = await waiter
        except BaseException:
            connection.close()
            raise
        finally:
            timer.cancel()
        if connection.reusable and not connection.closed:
            self._give_back(address, connection)
        else:
            connection.close()
        return response

    def forget(self, address: Address) -> None:
        """Close the idle connections to a pod that went away."""
        for connection in self._idle.pop(address, []):
            connection.close()

    def close(self) -> None:
        for address in list(self._idle):
            self.forget(address)

    def _take(self, address: Address) -> _Connection | None:
        idle = self._idle.get(address)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                connection.reused = True
                return connection
        return None

    def _give_back(self, address: Address, connection: _Connection) -> None:
        idle = self._idle.setdefault(address, [])
        if len(idle) < MAX_IDLE_PER_POD:
            idle.append(connection)
        else:
            connection.close()

    async def _connect(self, address: Address, loop: asyncio.AbstractEventLoop) -> _Connection:
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(_Connection, *address)
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"cannot connect to {address[0]}:{address[1]}: {exc}") from exc
        return connection


def _expire(waiter: asyncio.Future[UpstreamResponse], timeout: float) -> None:
    if not waiter.done():
        waiter.set_exception(
            ExchangeFailed(f"no response from the pod within {timeout:g} s", timed_out=True)
        )
