"""A real nats-server with JetStream for the dispatcher's NATS tests, on a free loopback port.

``NatsServer`` owns one process: ``start`` launches ``nats-server -js -a 127.0.0.1 -p PORT -sd
DIR`` and returns once the server has said hello with JetStream on; ``stop`` ends it (SIGTERM, a
clean shutdown that writes the file store; SIGKILL for a crash) and waits for it to exit. A
stopped server can be started again on the same port and store directory, which is how the tests
restart it under a client. ``running_nats`` is the context manager the fixtures use: the process
never outlives it.
"""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.kit.ports import free_port
from tests.kit.servers.process import ready_within, stop_process

NATS_SERVER = "/usr/sbin/nats-server"
START_TIMEOUT = 10.0  # seconds for the server to send INFO with JetStream enabled


def executable() -> Path:
    """The nats-server binary (Debian package nats-server), wherever PATH has it."""
    return Path(shutil.which("nats-server") or NATS_SERVER)


class NatsServer:
    """One nats-server process with a fixed port and store directory across restarts."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.store = workdir / "store"
        self.port = free_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Launch the server; raise RuntimeError when it does not come up in time."""
        if self._process is not None:
            raise RuntimeError("nats-server is already running")
        log = self.workdir / f"nats-{self.port}.log"
        args = [
            str(executable()),
            "-js",
            "-a", "127.0.0.1",
            "-p", str(self.port),
            "-sd", str(self.store),
            "-l", str(log),
        ]  # fmt: skip
        self._process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        if not ready_within(self._process, self._jetstream_on, START_TIMEOUT):
            self.stop(signal.SIGKILL)
            raise RuntimeError(f"nats-server did not start on port {self.port}; see {log}")

    def stop(self, sig: signal.Signals = signal.SIGTERM) -> None:
        """End the process (SIGTERM: clean shutdown; SIGKILL: a crash) and wait for it."""
        process, self._process = self._process, None
        if process is None:
            return
        stop_process(process, sig)

    def restart(self, sig: signal.Signals = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def _jetstream_on(self) -> bool:
        """True once a client connection gets an INFO line that says JetStream is on."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                line = sock.makefile("rb").readline(65536)
        except OSError:
            return False
        return line.startswith(b"INFO ") and json.loads(line[5:]).get("jetstream") is True


@contextmanager
def running_nats(workdir: Path) -> Iterator[NatsServer]:
    """A started server, stopped (whatever state the test left it in) on exit."""
    server = NatsServer(workdir)
    try:
        server.start()
    except RuntimeError:
        # Another process may have taken the free port in between: one more try on a new one.
        server = NatsServer(workdir)
        server.start()
    try:
        yield server
    finally:
        server.stop()
