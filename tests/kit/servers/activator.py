"""The activator as a real process (``lambdalet activator``), for the control-plane and e2e tiers
and the benchmarks."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tests.kit.servers.cli import ServingProcess


class ActivatorProcess(ServingProcess):
    """``lambdalet activator`` in a subprocess; its output goes to ``log_path``. Started once
    its internal port's ``/readyz`` answers (it has listed the Functions)."""

    command = "activator"
    ready_means = "the activator to list Functions"

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
            port=port,
            health_port=internal_port,
        )
        self.internal_port = internal_port

    @property
    def internal_url(self) -> str:
        """Where announcements, ``/readyz`` and ``/metrics`` are served."""
        return self.health_url
