"""The HTTP/1.1 client core of the two hot paths: the activator to function pods
(``lambdalet.activator.upstream``) and the dispatcher to the activator's Invoke API
(``lambdalet.dispatcher.delivery.invoker``).

One ``asyncio.Protocol`` per keep-alive connection, one exchange at a time: the caller writes the
request as one prepared block of bytes (``send``) and awaits the answer, which httptools parses
as it arrives. httpx spent about 3x the CPU of the whole activator on an invocation (its
transport, h11 and anyio layers); benchmarks/activator.py and benchmarks/dispatcher.py measure
what this costs instead.

A subclass names its peer (for the messages) and bounds the answer's size, and may keep only the
headers it reads. An exchange that fails ends the awaited answer with ``Broken``, and the
connection is closed; ``stale`` says that the connection was taken from the idle ones and the
peer closed it before a byte of the answer came: nothing ran, so dialling afresh is safe.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, cast

import httptools


class Broken(Exception):
    """The exchange failed; ``stale``: a reused connection closed before any answer came."""

    def __init__(self, message: str, *, stale: bool = False) -> None:
        super().__init__(message)
        self.stale = stale


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-cased names; each kept once
    body: bytes


class Connection(asyncio.Protocol):
    """One keep-alive connection to a peer; one exchange at a time."""

    PEER: ClassVar[str] = "the peer"  # in messages: "connection closed by the pod"
    MAX_RESPONSE_BYTES: ClassVar[int] = 8 * 1024 * 1024
    KEPT_HEADERS: ClassVar[frozenset[str] | None] = None  # None: every header

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False  # taken from the idle connections for this exchange
        self.reusable = False  # the last answer allows another request
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Response] | None = None
        self._answered = False  # a byte of the current answer has arrived
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        why = f": {exc}" if exc is not None else ""
        stale = self.reused and not self._answered
        self._fail(Broken(f"connection closed by {self.PEER}{why}", stale=stale))

    def data_received(self, data: bytes) -> None:
        self._answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(Broken(f"malformed answer from {self.PEER}: {exc}"))
            self.close()

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        kept = self.KEPT_HEADERS
        if kept is None or key in kept:
            self._headers[key] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self.MAX_RESPONSE_BYTES:
            limit = self.MAX_RESPONSE_BYTES
            self._fail(Broken(f"answer from {self.PEER} exceeds {limit} bytes"))
            self.close()
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        self.reusable = self._parser.should_keep_alive()
        response = Response(self._parser.get_status_code(), self._headers, b"".join(self._body))
        self._headers, self._body, self._size = {}, [], 0
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    def send(self, data: bytes, loop: asyncio.AbstractEventLoop) -> asyncio.Future[Response]:
        """Write a request; the future is the answer (or ``Broken``)."""
        assert self.transport is not None
        self.reusable = False
        self._answered = False
        self._waiter = loop.create_future()
        self.transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


def take_idle(idle: list[Connection]) -> Connection | None:
    """The most recently used open connection of ``idle`` (closed ones are dropped), marked
    reused; None when there is none."""
    while idle:
        connection = idle.pop()
        if not connection.closed:
            connection.reused = True
            return connection
    return None


def expire(
    waiter: asyncio.Future[Response], error: Callable[..., Exception], *args: object
) -> None:
    """A deadline timer's callback: end an answer still awaited with ``error(*args)``."""
    if not waiter.done():
        waiter.set_exception(error(*args))
