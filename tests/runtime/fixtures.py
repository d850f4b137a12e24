"""Fixtures of the runtime and activator tests: the agent binary (built once) and agents serving
handlers. Registered for the whole suite in the root conftest.py."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.runtime.cgroups import MemoryCgroupUnavailable, memory_cgroup
from tests.runtime.harness import Agent, build_agent, running_agent

# Room for the agent and a Python runtime (some 30 MiB together), not for a handler's 200 MiB.
SMALL_MEMORY_MIB = 96

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
        with memory_cgroup(SMALL_MEMORY_MIB) as path:
            yield path
    except MemoryCgroupUnavailable as exc:
        pytest.skip(f"no memory cgroup for the out-of-memory test: {exc}")
