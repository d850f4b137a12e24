"""What every launcher does with its server's process: wait until it is ready, and stop it.

``ready_within`` polls a readiness probe (a PING, a protocol greeting, a health URL) until it
answers, the process exits (most likely it lost its free port to another process) or the
deadline passes. ``stop_process`` sends a signal (SIGTERM: a clean shutdown) and waits, then
kills what lingers.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable

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


def boot(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    timeout: float,
    *,
    name: str,
    log: str,
    stop: Callable[[], None],
) -> float:
    """Wait for a slow server (a JVM, an Erlang node) to be ready; its boot time in seconds.

    RuntimeError when it exits first, or (after ``stop()``) when ``timeout`` seconds pass.
    """
    started = time.monotonic()
    if ready_within(process, ready, timeout, interval=0.1):
        return time.monotonic() - started
    if process.poll() is not None:
        raise RuntimeError(f"{name} exited; see {log}")
    stop()
    raise RuntimeError(f"{name} did not boot in {timeout} s; see {log}")


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
