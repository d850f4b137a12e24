"""The stats/poke endpoint over real HTTP (aiohttp's test server on loopback), with a recording
receiver in place of the loop."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from lambdalet.autoscaler import api
from lambdalet.autoscaler.reports import (
    MAX_BODY_BYTES,
    MAX_FUNCTIONS_PER_REPORT,
    FunctionLoad,
    StatsReport,
)
from lambdalet.contracts.keys import Key

DEADLINE = 5.0


@dataclass
class Receiver:
    known: set[Key] = field(default_factory=lambda: {("team", "hello")})
    reports: list[StatsReport] = field(default_factory=list)
    pokes: list[Key] = field(default_factory=list)

    def receive_stats(self, report: StatsReport) -> int:
        self.reports.append(report)
        return sum(1 for load in report.functions if load.key in self.known)

    def receive_poke(self, key: Key) -> bool:
        self.pokes.append(key)
        return key in self.known


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def client(receiver: Receiver) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(api.application(receiver))) as client:
        yield client


@pytest.mark.parametrize(
    "body",
    [{"namespace": "team", "name": "hello"}, {"namespace": "team", "name": "nobody"}],
    ids=["known", "unknown"],
)
async def test_poke_is_accepted(
    client: TestClient[Any, Any], receiver: Receiver, body: dict[str, str]
) -> None:
    response = await client.post("/v1/poke", json=body)

    assert response.status == 202
    assert receiver.pokes == [(body["namespace"], body["name"])]


async def test_stats_are_handed_over(client: TestClient[Any, Any], receiver: Receiver) -> None:
    body = {
        "activator": "activator-0",
        "functions": [
            {"namespace": "team", "name": "hello", "inFlight": 3.5, "queueDepth": 2},
            {"namespace": "team", "name": "other", "inFlight": 1},
        ],
    }
    response = await client.post("/v1/stats", json=body)

    assert response.status == 204
    assert receiver.reports == [
        StatsReport(
            "activator-0",
            (FunctionLoad(("team", "hello"), 3.5, 2), FunctionLoad(("team", "other"), 1.0)),
        )
    ]


@pytest.mark.parametrize(
    ("path", "data", "status", "says"),
    [
        ("/v1/poke", b"{not json", 400, "body is not JSON"),
        ("/v1/poke", b"\xff\xfe", 400, "body is not JSON"),
        ("/v1/poke", b"[" * 100_000, 400, "body is not JSON"),
        ("/v1/poke", b'{"namespace": "team"}', 400, "body.name must be a string"),
        ("/v1/stats", b"", 400, "body is not JSON"),
        ("/v1/stats", b'{"activator": "a"}', 400, "body.functions must be a list"),
        (
            "/v1/stats",
            b'{"activator": "a", "functions": [{"namespace": "t", "name": "f", "inFlight": -1}]}',
            400,
            "inFlight must be a finite number >= 0",
        ),
        (
            "/v1/stats",
            json.dumps(
                {
                    "activator": "a",
                    "functions": [
                        {"namespace": "t", "name": f"f{i}", "inFlight": 1}
                        for i in range(MAX_FUNCTIONS_PER_REPORT + 1)
                    ],
                }
            ).encode(),
            413,
            f"at most {MAX_FUNCTIONS_PER_REPORT} per report",
        ),
        ("/v1/stats", b" " * (MAX_BODY_BYTES + 1), 413, f"at most {MAX_BODY_BYTES}"),
    ],
    ids=[
        "broken-json",
        "not-utf8",
        "deeply-nested",
        "poke-without-name",
        "empty-stats",
        "stats-without-functions",
        "negative-in-flight",
        "too-many-functions",
        "body-too-large",
    ],
)
async def test_bad_bodies_are_refused_with_a_reason(
    client: TestClient[Any, Any],
    receiver: Receiver,
    path: str,
    data: bytes,
    status: int,
    says: str,
) -> None:
    response = await client.post(path, data=data, headers={"Content-Type": "application/json"})

    assert response.status == status
    assert says in (await response.json())["error"]
    assert receiver.reports == []
    assert receiver.pokes == []


async def test_a_chunked_body_too_large_is_refused(
    client: TestClient[Any, Any], receiver: Receiver
) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies on reading
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    response = await client.post("/v1/stats", data=chunks())

    assert response.status == 413
    assert receiver.reports == []


async def test_a_body_that_never_arrives_times_out(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "READ_TIMEOUT_SECONDS", 0.05)
    async with TestServer(api.application(receiver)) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(
            b"POST /v1/poke HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"  # 99 bytes short
        )
        await writer.drain()
        status = await asyncio.wait_for(reader.readline(), DEADLINE)
        writer.close()

    assert status.startswith(b"HTTP/1.1 408")
    assert receiver.pokes == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/healthz", 200), ("GET", "/v1/poke", 405), ("POST", "/v1/other", 404)],
)
async def test_routes(client: TestClient[Any, Any], method: str, path: str, status: int) -> None:
    response = await client.request(method, path)

    assert response.status == status


async def test_serve_listens_on_a_real_port_and_refuses_a_taken_one(receiver: Receiver) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    runner = await api.serve(receiver, "127.0.0.1", port)
    try:
        timeout = aiohttp.ClientTimeout(total=DEADLINE)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            url = f"http://127.0.0.1:{port}"
            async with session.post(f"{url}/v1/poke", json={"namespace": "a", "name": "b"}) as r:
                assert r.status == 202
            async with session.get(f"{url}/healthz") as r:
                assert r.status == 200
        with pytest.raises(OSError, match="in use"):
            await api.serve(receiver, "127.0.0.1", port)
    finally:
        await runner.cleanup()
    assert receiver.pokes == [("a", "b")]
