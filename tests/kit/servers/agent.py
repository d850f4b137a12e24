"""Runs the function-pod agent as a real process on 127.0.0.1, for the runtime, activator,
dispatcher and control-plane tests (and the benchmarks).

``build_agent`` compiles runtime-images/agent with ``go build``; ``running_agent`` starts it with
a task root of handler files, the Python runtime as its bootstrap (unless the test brings its
own) and free ports, waits until it listens, and stops it (SIGTERM) afterwards. The agent's
stdout and stderr, which the runtime's output shares, go to a log file the tests read.

As a pytest plugin (registered for the whole suite in the root conftest.py) it gives the
fixtures ``agent_binary`` (built once a session), ``start_agent`` (agents serving handlers,
stopped after the test) and ``small_memory_cgroup``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.kit import cgroups
from tests.kit.ports import free_port
from tests.kit.wait import wait_for

REPO = Path(__file__).resolve().parents[3]
AGENT_SOURCE = REPO / "runtime-images" / "agent"
PYTHON_BOOTSTRAP = REPO / "runtime-images" / "python" / "bootstrap.py"
INVOKE_PATH = "/2015-03-31/functions/function/invocations"
# Where Go is installed on the project's machines when it is not on PATH.
GO_FALLBACK = Path("/usr/local/go/bin/go")
# Room for the agent and a Python runtime (some 30 MiB together), not for a handler's 200 MiB.
SMALL_MEMORY_MIB = 96
POLL = 0.01  # seconds between looks at the agent's log or health: both are cheap


def find_go() -> str | None:
    found = shutil.which("go")
    if found:
        return found
    return str(GO_FALLBACK) if GO_FALLBACK.exists() else None


def build_agent(out_dir: Path) -> Path:
    """Compile the agent into out_dir (static, as the runtime images ship it)."""
    go = find_go()
    if go is None:
        raise RuntimeError(
            "the runtime tests need Go to build runtime-images/agent: no `go` on PATH "
            f"and none at {GO_FALLBACK}"
        )
    binary = out_dir / "agent"
    done = subprocess.run(
        [go, "build", "-trimpath", "-o", str(binary), "."],
        cwd=AGENT_SOURCE,
        env={**os.environ, "CGO_ENABLED": "0"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"go build of the agent failed:\n{done.stdout}{done.stderr}")
    return binary


@dataclass
class Agent:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    task_root: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def invoke(
        self,
        event: Any = None,
        *,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        content = body if body is not None else json.dumps(event).encode()
        return self.client.post(INVOKE_PATH, content=content, headers=dict(headers or {}))

    def health(self) -> httpx.Response:
        return self.client.get("/healthz")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        return wait_for(
            lambda: re.search(pattern, self.log(), re.M),
            timeout,
            what=f"log line /{pattern}/",
            interval=POLL,
        )

    def wait_listening(self) -> None:
        def answers() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"agent exited ({self.process.returncode}):\n{self.log()}")
            try:
                self.health()
            except httpx.TransportError:
                return False
            return True

        wait_for(answers, 10, what="the agent to listen", interval=POLL)

    def wait_health(self, status: str, timeout: float = 10.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            doc: dict[str, Any] = self.health().json()
            return doc if doc["status"] == status else None

        return wait_for(reached, timeout, what=f"/healthz status {status!r}", interval=POLL)

    def stop(self) -> int:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def python_bootstrap() -> str:
    return f"{sys.executable} {PYTHON_BOOTSTRAP}"


@contextmanager
def running_agent(
    binary: Path,
    workdir: Path,
    files: Mapping[str, str],
    handler: str = "app.handler",
    env: Mapping[str, str] | None = None,
    *,
    wait_ready: bool = True,
    cgroup: Path | None = None,
) -> Iterator[Agent]:
    """An agent serving the handler in ``files`` (name -> source, under a fresh task root).

    ``cgroup``: a cgroup directory (``tests.kit.cgroups``) the agent joins before it starts,
    so it and its runtimes run under that cgroup's memory limit.

    ``env`` adds to or overrides the agent's environment; the bootstrap is the Python runtime
    unless ``env`` names another (``LAMBDALET_BOOTSTRAP``) or is a ``provided`` runtime without
    one. The agent gets a clean environment, so nothing of the caller's AWS_* settings leaks in.
    """
    task_root = workdir / "task"
    task_root.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        path = task_root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        if source.startswith("#!"):
            path.chmod(0o755)
    # A test may name the port (to bring an agent back where a stopped one listened).
    port = int((env or {}).get("LAMBDALET_PORT_NUMBER") or free_port())
    settings = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_LAMBDA_FUNCTION_NAME": "hello",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
        "_HANDLER": handler,
        "LAMBDALET_RUNTIME": "python3.11",
        "LAMBDALET_NAMESPACE": "tests",
        "LAMBDALET_PORT_NUMBER": str(port),
        "LAMBDALET_RUNTIME_API_PORT_NUMBER": "0",
        "LAMBDA_TASK_ROOT": str(task_root),
        "LAMBDALET_BOOTSTRAP": python_bootstrap(),
    }
    settings.update(env or {})
    if settings["LAMBDALET_RUNTIME"] == "provided" and "LAMBDALET_BOOTSTRAP" not in (env or {}):
        del settings["LAMBDALET_BOOTSTRAP"]
    log_path = workdir / "agent.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(binary)],
            env=settings,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            preexec_fn=None if cgroup is None else functools.partial(cgroups.join, cgroup),
        )
    agent = Agent(process, port, log_path, task_root)
    try:
        agent.wait_listening()
        if wait_ready:
            agent.wait_health("ready")
        yield agent
    finally:
        agent.stop()


StartAgent = Callable[..., Agent]


@pytest.fixture(scope="session")
def agent_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    try:
        return build_agent(tmp_path_factory.mktemp("agent-bin"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def start_agent(agent_binary: Path, tmp_path: Path) -> Iterator[StartAgent]:
    """start_agent(files, handler="app.handler", env=None, wait_ready=True, cgroup=None)
    -> a running Agent."""
    with ExitStack() as stack:
        count = 0

        def start(
            files: Mapping[str, str],
            handler: str = "app.handler",
            env: Mapping[str, str] | None = None,
            *,
            wait_ready: bool = True,
            cgroup: Path | None = None,
        ) -> Agent:
            nonlocal count
            count += 1
            workdir = tmp_path / f"agent-{count}"
            return stack.enter_context(
                running_agent(
                    agent_binary, workdir, files, handler, env, wait_ready=wait_ready, cgroup=cgroup
                )
            )

        yield start


@pytest.fixture
def small_memory_cgroup() -> Iterator[Path]:
    """A memory cgroup limited to ``SMALL_MEMORY_MIB`` (skips where none can be made)."""
    try:
        with cgroups.memory_cgroup(SMALL_MEMORY_MIB) as path:
            yield path
    except cgroups.MemoryCgroupUnavailable as exc:
        pytest.skip(f"no memory cgroup for the out-of-memory test: {exc}")
