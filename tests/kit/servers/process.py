"""What every launcher does with its server's process: wait until it is ready, and stop it.

``ready_within`` polls a readiness probe (a PING, a protocol greeting, a health URL) until it
answers, the process exits (most likely it lost its free port to another process) or the
deadline passes. ``stop_process`` sends a signal (SIGTERM: a clean shutdown) and waits, then
kills what lingers. ``SlowServer`` is what the launchers of a JVM (ElasticMQ) and an Erlang node
(RabbitMQ) share: booting it in a process group of its own, and timing each boot.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

STOP_TIMEOUT = 10.0  # seconds for a server to exit after the signal, and again after SIGKILL


def ready_within(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    timeout: float,
    *,
    interval: float = 0.05,
) -> bool:
    """True once ``ready()`` holds; False when the process exits or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        if ready():
            return True
        time.sleep(interval)
    return False


class SlowServer:
    """A slow server (a JVM, an Erlang node) this test run owns, which its launcher boots, stops
    and boots again in ``workdir``; ``boot_seconds`` has one entry per boot, for the report."""

    name = ""  # in the errors: "ElasticMQ", "rabbitmq-server"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.boot_seconds: list[float] = []
        self._process: subprocess.Popen[bytes] | None = None

    def stop(self) -> None:
        raise NotImplementedError

    def _boot(
        self,
        argv: Sequence[str],
        log: str,
        ready: Callable[[], bool],
        timeout: float,
        **popen: Any,
    ) -> None:
        """Start ``argv`` in ``workdir``, in a session (so a process group) of its own with its
        output appended to the file ``log`` there, and return once ``ready()`` holds.

        RuntimeError when it exits first, or (after ``stop()``) when ``timeout`` seconds pass.
        """
        path = self.workdir / log
        with path.open("ab") as out:
            self._process = subprocess.Popen(
                argv,
                cwd=self.workdir,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **popen,
            )
        started = time.monotonic()
        if ready_within(self._process, ready, timeout, interval=0.1):
            self.boot_seconds.append(time.monotonic() - started)
            return
        if self._process.poll() is not None:
            raise RuntimeError(f"{self.name} exited; see {path}")
        self.stop()
        raise RuntimeError(f"{self.name} did not boot in {timeout} s; see {path}")


def stop_process(
    process: subprocess.Popen[bytes],
    sig: signal.Signals = signal.SIGTERM,
    timeout: float = STOP_TIMEOUT,
) -> None:
    """Send ``sig`` and wait for the exit; SIGKILL after ``timeout`` seconds."""
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)
