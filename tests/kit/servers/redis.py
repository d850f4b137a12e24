"""Real redis-servers for the component tests (a pytest plugin: the root conftest.py registers it
for the whole suite).

``redis_server`` starts one server per session (no persistence, a temporary directory);
``redis_client`` gives each test an emptied database and a client that returns bytes (tests that
need a second client, or another tool pointed at the server, use ``redis_server.url``).
``durable_redis`` is a server of the test's own with AOF and RDB on, which the test may stop and
start again on the same port and directory (a broker restart that keeps its data).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import redis.asyncio

from tests.kit.ports import free_port
from tests.kit.servers.process import ready_within, stop_process

REDIS_SERVER = "/usr/bin/redis-server"
START_TIMEOUT = 10.0  # seconds for the server to answer PING


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def client(self) -> redis.asyncio.Redis:
        return redis.asyncio.Redis(host=self.host, port=self.port, socket_timeout=30)


def _executable() -> str:
    found = shutil.which("redis-server") or REDIS_SERVER
    if not Path(found).exists():
        pytest.fail("redis-server is not installed (Debian package redis-server)", pytrace=False)
    return found


def _args(port: int, workdir: Path, durable: bool) -> list[str]:
    persistence = (
        ["--appendonly", "yes", "--appendfsync", "always", "--save", "3600 1"]
        if durable
        else ["--appendonly", "no", "--save", ""]
    )
    return [
        _executable(),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(workdir),
        "--logfile", str(workdir / f"redis-{port}.log"),
        *persistence,
    ]  # fmt: skip


def _wait_ready(process: subprocess.Popen[bytes], port: int) -> bool:
    """False when the server exits first: most likely another process took the port meanwhile."""
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1, socket_connect_timeout=1)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except (redis.ConnectionError, redis.BusyLoadingError):
            return False

    try:
        return ready_within(process, answers, START_TIMEOUT)
    finally:
        client.close()


@contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    """A redis-server on 127.0.0.1 (a free port; tried again if another process took it)."""
    for _ in range(3):
        port = free_port()
        process = subprocess.Popen(
            _args(port, workdir, durable=False),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        try:
            if _wait_ready(process, port):
                yield RedisServer("127.0.0.1", port)
                return
        finally:
            stop_process(process)
    raise RuntimeError(f"redis-server did not start; see the logs in {workdir}")


@dataclass
class DurableRedis:
    """A redis-server with AOF + RDB in ``workdir`` that can be stopped and started again."""

    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def server(self) -> RedisServer:
        return RedisServer("127.0.0.1", self.port)

    def start(self) -> None:
        assert self.process is None, "already running"
        process = subprocess.Popen(
            _args(self.port, self.workdir, durable=True),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        if not _wait_ready(process, self.port):
            stop_process(process)
            raise RuntimeError(f"redis-server did not start; see the logs in {self.workdir}")
        self.process = process

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): Redis writes its data before it exits."""
        if self.process is not None:
            stop_process(self.process)
            self.process = None


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
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


@pytest.fixture
def durable_redis(tmp_path: Path) -> Iterator[DurableRedis]:
    workdir = tmp_path / "durable-redis"
    workdir.mkdir()
    server = DurableRedis(workdir)
    server.start()
    try:
        yield server
    finally:
        server.stop()
