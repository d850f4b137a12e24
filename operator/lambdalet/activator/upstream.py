"""Keep-alive HTTP/1.1 connections from the activator to function pods (``lambdalet.http1client``).

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

from lambdalet.http1client import Broken, Connection, Response, expire, take_idle

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


class _PodConnection(Connection):
    PEER = "the pod"
    MAX_RESPONSE_BYTES = MAX_RESPONSE_BYTES


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
        self._idle: dict[Address, list[Connection]] = {}
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
    ) -> Response:
        """One invocation on ``address``; ``timeout`` bounds the exchange after connecting."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        connection = self._take(address) or await self._connect(address, loop)
        waiter = connection.send(encode_request(address, body, headers), loop)
        timer = loop.call_later(timeout, expire, waiter, _no_response, timeout)
        try:
            response = await waiter
        except Broken as exc:
            connection.close()
            if exc.stale:
                raise StaleConnection(f"idle {exc}") from None
            raise ExchangeFailed(str(exc)) from None
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

    def _take(self, address: Address) -> Connection | None:
        idle = self._idle.get(address)
        return take_idle(idle) if idle else None

    def _give_back(self, address: Address, connection: Connection) -> None:
        idle = self._idle.setdefault(address, [])
        if len(idle) < MAX_IDLE_PER_POD:
            idle.append(connection)
        else:
            connection.close()

    async def _connect(self, address: Address, loop: asyncio.AbstractEventLoop) -> Connection:
        try:
            async with asyncio.timeout(self._connect_timeout):
                _, connection = await loop.create_connection(_PodConnection, *address)
        except (OSError, TimeoutError) as exc:
            raise ConnectFailed(f"cannot connect to {address[0]}:{address[1]}: {exc}") from exc
        return connection


def _no_response(timeout: float) -> ExchangeFailed:
    return ExchangeFailed(f"no response from the pod within {timeout:g} s", timed_out=True)
