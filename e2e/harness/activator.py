"""The activator as a real process, run by e2e tests in the node's network namespace."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from e2e.harness.wait import wait_for


class ActivatorProcess:
    """``lambdalet activator`` in a subprocess; its output goes to ``log_path``."""

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *,
        port: int,
        internal_port: int,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.port = port
        self.internal_port = internal_port
        self.env = {
            "LAMBDALET_ACTIVATOR_PORT": str(port),
            "LAMBDALET_ACTIVATOR_INTERNAL_PORT": str(internal_port),
            **(env or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def internal_url(self) -> str:
        return f"http://127.0.0.1:{self.internal_port}"

    def start(self, timeout: float = 30) -> None:
        if self._process is not None:
            raise RuntimeError("the activator is already running")
        env = {**os.environ, **self.env, "KUBECONFIG": str(self.kubeconfig)}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "lambdalet.cli", "activator"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for(self._ready, timeout, what=f"the activator to list Functions ({self.log_path})")

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise AssertionError(f"the activator exited:\n{self.log()[-3000:]}")
        try:
            return httpx.get(self.internal_url + "/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

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

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def metrics(self) -> str:
        return httpx.get(self.internal_url + "/metrics", timeout=5).text
