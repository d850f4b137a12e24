"""A Lambdalet component (``lambdalet <command>``) as a real process, run by tests and benchmarks
against a bed's API server; its output goes to a log file the tests read. One subclass a
component: ``tests.kit.servers.operator``, and on ``ServingProcess`` (a component with an HTTP
port) ``.activator`` and ``.dispatcher``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Self

import httpx

from tests.kit.wait import wait_for


class CliProcess:
    """``lambdalet <command>`` in a subprocess with ``env`` and the bed's kubeconfig.

    A component with a health endpoint names it (``health_url``) and the state it reports ready
    (``ready_means``): ``start`` then waits for ``/readyz`` to answer 200.
    """

    command = ""  # set by subclasses: operator, activator, dispatcher
    ready_means = ""  # what /readyz answering 200 tells, for the timeout's message

    def __init__(
        self, kubeconfig: Path, log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def health_url(self) -> str | None:
        """Base URL of ``/readyz`` and ``/metrics``; None for a component without them."""
        return None

    def start(self, timeout: float = 30) -> None:
        if self._process is not None:
            raise RuntimeError(f"the {self.command} is already running")
        env = {**os.environ, **self.env, "KUBECONFIG": str(self.kubeconfig)}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "lambdalet.cli", self.command],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if self.health_url is not None:
            wait_for(self._ready, timeout, what=f"{self.ready_means} ({self.log_path})")

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise AssertionError(f"the {self.command} exited:\n{self.log()[-3000:]}")
        try:
            return httpx.get(f"{self.health_url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def metrics(self) -> str:
        return httpx.get(f"{self.health_url}/metrics", timeout=5).text

    @contextmanager
    def serving(self) -> Iterator[Self]:
        """Started for a ``with`` block, stopped after it."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def stop(self, timeout: float = 15) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing cleaned up."""
        process, self._process = self._process, None
        if process is not None:
            process.kill()
            process.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class ServingProcess(CliProcess):
    """A component that serves HTTP on ``port`` of 127.0.0.1 (``url``), with ``/readyz`` and
    ``/metrics`` on ``health_port`` (the same port unless it has one of its own)."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        env: Mapping[str, str],
        *,
        port: int,
        health_port: int | None = None,
    ) -> None:
        super().__init__(kubeconfig, log_path, env)
        self.port = port
        self.health_port = port if health_port is None else health_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"
