"""The operator as a real process, run by tests against a bed's API server."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


class OperatorProcess:
    """``lambdalet operator`` in a subprocess; its output goes to ``log_path``."""

    def __init__(
        self, kubeconfig: Path, log_path: Path, env: Mapping[str, str] | None = None
    ) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.env = dict(env or {})
        # The autoscaler's endpoint on a loopback port of its own (kept across restarts), unless
        # ``env`` names one: operators of concurrent test sessions never clash on the default.
        self.env.setdefault("LAMBDALET_AUTOSCALER_HOST", "127.0.0.1")
        self.env.setdefault("LAMBDALET_AUTOSCALER_PORT", str(_free_port()))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def autoscaler_url(self) -> str:
        """Base URL of the autoscaler's stats/poke endpoint (``/v1/poke``, ``/v1/stats``)."""
        host = self.env["LAMBDALET_AUTOSCALER_HOST"] or "127.0.0.1"
        return f"http://{host}:{self.env['LAMBDALET_AUTOSCALER_PORT']}"

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("the operator is already running")
        env = {**os.environ, **self.env, "KUBECONFIG": str(self.kubeconfig)}
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "lambdalet.cli", "operator"],
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

    def settled_after(self, marker: int, functions: list[tuple[str, str]]) -> bool:
        """Whether, in the log after offset ``marker``, kopf handed over every one of
        ``functions`` (namespace, name) and the work queue then drained ("settled")."""
        text = self.log()[marker:]
        last = -1
        for namespace, name in functions:
            seen = text.find(f"[{namespace}/{name}] Handler 'on_function' succeeded")
            if seen < 0:
                return False
            last = max(last, seen)
        return "settled:" in text[last:]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
