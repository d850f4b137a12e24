"""Fixtures of the activator's component tests: a real redis-server on a free loopback port.

``redis_server`` starts one server per test session (no persistence, a temporary directory);
``redis_client`` gives each test an empty database and a client that returns bytes. Tests that
need a second client, or another tool pointed at the server, use ``redis_server.url``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.asyncio

REDIS_SERVER = "/usr/bin/redis-server"
START_TIMEOUT = 10.0  # seconds for the server to answer PING
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self) -> redis.asyncio.Redis:
        return redis.asyncio.Redis(host=self.host, port=self.port, socket_timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    """A redis-server on 127.0.0.1 (a free port; tried again if another process took it)."""
    executable = shutil.which("redis-server") or REDIS_SERVER
    for _ in range(3):
        port = _free_port()
        log = workdir / f"redis-{port}.log"
        args = [
            executable,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(workdir),
            "--save", "",
            "--appendonly", "no",
            "--logfile", str(log),
        ]  # fmt: skip
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            if _wait_ready(process, port):
                yield RedisServer("127.0.0.1", port)
                return
        finally:
            process.terminate()
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(STOP_TIMEOUT)
    raise RuntimeError(f"redis-server did not start; see the logs in {workdir}")


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False  # exited: most likely the port was taken meanwhile
            try:
                if client.ping():
                    return True
            except redis.ConnectionError:
                time.sleep(0.05)
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    if not Path(shutil.which("redis-server") or REDIS_SERVER).exists():
        pytest.fail("redis-server is not installed (Debian package redis-server)", pytrace=False)
    with running_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[redis.asyncio.Redis]:
    """A client of an emptied database; closed after the test."""
    client = redis_server.client()
    await client.flushall()
    try:
        yield client
    finally:
        await client.aclose()
