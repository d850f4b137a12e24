"""A memory cgroup with a small limit for the out-of-memory tests: cgroup v1 (this machine) or v2.

``memory_cgroup`` creates ``lambdalet-test-<random>`` under the memory hierarchy with a limit and
no swap, yields its directory (an agent started with ``cgroup=`` joins it before it execs, so its
runtimes are born inside), and removes it afterwards. ``MemoryCgroupUnavailable`` says why it
cannot (not root, no writable memory controller): the tests that need one skip with that reason.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


class MemoryCgroupUnavailable(Exception):
    pass


def _v1_mount() -> Path | None:
    mount = ROOT / "memory"
    return mount if (mount / "memory.limit_in_bytes").exists() else None


def _v2_root() -> Path | None:
    controllers = ROOT / "cgroup.subtree_control"
    if (ROOT / "cgroup.controllers").exists() and controllers.exists():
        return ROOT if "memory" in controllers.read_text().split() else None
    return None


@contextlib.contextmanager
def memory_cgroup(limit_mib: int) -> Iterator[Path]:
    if os.geteuid() != 0:
        raise MemoryCgroupUnavailable("creating a memory cgroup needs root")
    name = f"lambdalet-test-{uuid.uuid4().hex[:8]}"
    limit = str(limit_mib * 1024 * 1024)
    v1, v2 = _v1_mount(), _v2_root()
    if v1 is not None:
        path = v1 / name
        settings = [("memory.limit_in_bytes", limit), ("memory.memsw.limit_in_bytes", limit)]
    elif v2 is not None:
        path = v2 / name
        settings = [("memory.max", limit), ("memory.swap.max", "0")]
    else:
        raise MemoryCgroupUnavailable("no writable cgroup memory controller (v1 or v2)")
    try:
        path.mkdir()
    except OSError as exc:
        raise MemoryCgroupUnavailable(f"cannot create {path}: {exc}") from exc
    try:
        for file, value in settings:
            with contextlib.suppress(FileNotFoundError):  # memsw / swap.max: no swap accounting
                (path / file).write_text(value)
        yield path
    finally:
        _remove(path)


def join(path: Path) -> None:
    """Move the calling process into the cgroup at ``path`` (a ``preexec_fn``)."""
    (path / "cgroup.procs").write_text(str(os.getpid()))


def _remove(path: Path) -> None:
    """Kill what still runs in it (a test whose agent outlives the cgroup's fixture), then rmdir
    once the processes are gone (reaping may lag a little)."""
    with contextlib.suppress(FileNotFoundError):
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    deadline = time.monotonic() + 10
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
