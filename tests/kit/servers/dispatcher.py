"""The event dispatcher as a real process (``lambdalet dispatcher``), for the e2e tier."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from tests.kit.servers.cli import ServingProcess


class DispatcherProcess(ServingProcess):
    """``lambdalet dispatcher`` in a subprocess on 127.0.0.1; its output goes to ``log_path``.
    Started once ``/readyz`` answers."""

    command = "dispatcher"
    ready_means = "the dispatcher to start"

    def __init__(
        self,
        kubeconfig: Path,
        log_path: Path,
        *,
        port: int,
        env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            kubeconfig,
            log_path,
            {
                "LAMBDALET_DISPATCHER_HOST": "127.0.0.1",
                "LAMBDALET_DISPATCHER_PORT_NUMBER": str(port),
                **(env or {}),
            },
            port=port,
        )
