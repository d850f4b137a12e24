"""The activator as a real process, run by e2e tests in the node's network namespace."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import httpx

from e2e.harness.process import CliProcess
from tests.kit.wait import wait_for


class ActivatorProcess(CliProcess):
    """``lambdalet activator`` in a subprocess; its output goes to ``log_path``."""

    command = "activator"

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *,
        port: int,
        internal_port: int,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            kubeconfig,
            log_path,
            {
                "LAMBDALET_ACTIVATOR_PORT_NUMBER": str(port),
                "LAMBDALET_ACTIVATOR_INTERNAL_PORT_NUMBER": str(internal_port),
                **(env or {}),
            },
        )
        self.port = port
        self.internal_port = internal_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def internal_url(self) -> str:
        return f"http://127.0.0.1:{self.internal_port}"

    def start(self, timeout: float = 30) -> None:
        super().start()
        wait_for(self._ready, timeout, what=f"the activator to list Functions ({self.log_path})")

    def _ready(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            raise AssertionError(f"the activator exited:\n{self.log()[-3000:]}")
        try:
            return httpx.get(self.internal_url + "/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def metrics(self) -> str:
        return httpx.get(self.internal_url + "/metrics", timeout=5).text
