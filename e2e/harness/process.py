"""A Lambdalet component (``lambdalet <command>``) as a real process, run by tests against a
bed's API server; its output goes to a log file the tests read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


class CliProcess:
    """``lambdalet <command>`` in a subprocess with ``env`` and the bed's kubeconfig."""

    command = ""  # set by subclasses: operator, activator

    def __init__(
        self, kubeconfig: Path, log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.env = dict(env or {})
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
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
