"""A graceful stop of the activator's HTTP server (``http1.Connections``), over real sockets:
once draining, every answer closes its connection (``connection: close``) -- a request in
progress, a request half received, the next request on an idle connection --, ``close_idle``
closes what stayed idle, and ``wait_idle`` returns only when nothing is in progress."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from lambdalet.activator.events import HttpRequest, HttpResponse
from lambdalet.activator.http1 import Connections, serve
from tests.kit.wait import wait_for_async


@dataclass
class SlowApp:
    """Answers /slow only once ``release`` is set; everything else at once."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path == "/slow":
            self.started.set()
            await self.release.wait()
        return HttpResponse(200, (("content-type", "text/plain"),), request.path.encode())


@dataclass
class Server:
    app: SlowApp
    connections: Connections
    port: int


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    app, connections = SlowApp(), Connections()
    srv = await serve(app, "127.0.0.1", 0, connections=connections)
    port = srv.sockets[0].getsockname()[1]
    yield Server(app, connections, port)
    srv.close()
    await srv.wait_closed()


async def connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: test\r\n\r\n".encode()


async def response(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    status, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, body


async def closed(reader: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(reader.read(1), 5) == b""


async def test_an_idle_connection_gets_its_next_answer_then_the_close(server: Server) -> None:
    reader, writer = await connect(server.port)
    writer.write(request("/a"))
    status, headers, body = await response(reader)
    assert (status, body) == ("HTTP/1.1 200 OK", b"/a")
    assert "connection" not in headers  # kept alive
    assert len(server.connections) == 1

    server.connections.drain()
    # Left open: the client may be sending on it right now.
    await asyncio.sleep(0.1)
    writer.write(request("/b"))

    status, headers, body = await response(reader)
    assert (status, body) == ("HTTP/1.1 200 OK", b"/b")
    assert headers["connection"] == "close"
    assert await closed(reader)
    writer.close()


async def test_close_idle_closes_what_stayed_idle(server: Server) -> None:
    reader, writer = await connect(server.port)
    writer.write(request("/a"))
    await response(reader)
    server.connections.drain()

    server.connections.close_idle()

    assert await closed(reader)
    writer.close()


async def test_a_request_in_progress_is_answered_then_its_connection_closes(
    server: Server,
) -> None:
    reader, writer = await connect(server.port)
    writer.write(request("/slow"))
    await asyncio.wait_for(server.app.started.wait(), 5)
    assert server.connections.busy() == 1

    server.connections.drain()
    idle = asyncio.create_task(server.connections.wait_idle())
    await asyncio.sleep(0.2)
    assert not idle.done()  # still answering /slow
    server.app.release.set()

    status, headers, body = await response(reader)
    assert (status, body) == ("HTTP/1.1 200 OK", b"/slow")
    assert headers["connection"] == "close"
    assert await closed(reader)
    await asyncio.wait_for(idle, 5)
    assert server.connections.busy() == 0
    writer.close()


async def test_a_request_half_received_is_not_cut_off(server: Server) -> None:
    reader, writer = await connect(server.port)
    writer.write(b"POST /b HTTP/1.1\r\nhost: test\r\ncontent-length: 10\r\n\r\n01234")
    await writer.drain()
    await wait_for_async(
        lambda: server.connections.busy() == 1, 10.0, interval=0.01
    )  # the server has the head

    server.connections.drain()
    await asyncio.sleep(0.1)
    writer.write(b"56789")

    status, headers, body = await response(reader)
    assert (status, body) == ("HTTP/1.1 200 OK", b"/b")
    assert headers["connection"] == "close"
    assert await closed(reader)
    writer.close()


async def test_new_connections_while_draining_get_one_answer_each(server: Server) -> None:
    server.connections.drain()

    reader, writer = await connect(server.port)
    writer.write(request("/c"))
    status, headers, _ = await response(reader)

    assert status == "HTTP/1.1 200 OK"
    assert headers["connection"] == "close"
    assert await closed(reader)
    writer.close()


async def test_pipelined_requests_are_all_answered_before_the_close(server: Server) -> None:
    reader, writer = await connect(server.port)
    writer.write(request("/slow") + request("/d") + request("/e"))
    await asyncio.wait_for(server.app.started.wait(), 5)
    await asyncio.sleep(0.1)  # /d and /e are queued behind /slow

    server.connections.drain()
    server.app.release.set()

    answers = [await response(reader) for _ in range(3)]
    assert [body for _, _, body in answers] == [b"/slow", b"/d", b"/e"]
    assert [headers.get("connection") for _, headers, _ in answers] == [None, None, "close"]
    assert await closed(reader)
    writer.close()


async def test_wait_idle_returns_at_once_when_nothing_is_in_progress(server: Server) -> None:
    reader, writer = await connect(server.port)  # open, idle
    await asyncio.sleep(0.05)

    await asyncio.wait_for(server.connections.wait_idle(), 1)

    writer.close()
    del reader
