"""A runtime the kernel's OOM killer ends is reported as Lambda reports it: Runtime.OutOfMemory.

The agent and its Python runtime run in a real memory cgroup with a small limit
(``small_memory_cgroup``, cgroup v1 or v2; root needed); a handler that allocates past it is
killed by the kernel, and the agent, seeing the cgroup's ``oom_kill`` counter go up, says so. A
runtime that kills itself with SIGKILL in the same cgroup stays a ``Runtime.ExitError``: the
signal alone does not make an OOM kill.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.kit.servers.agent import StartAgent

HOG = """
import os
import signal

def handler(event, context):
    if event.get("kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    if event.get("mib"):
        hoard = bytearray(event["mib"] * 1024 * 1024)
        for page in range(0, len(hoard), 4096):  # touch every page: it must be resident
            hoard[page] = 1
        return len(hoard)
    return "small"
"""

MESSAGE = re.compile(r"RequestId: ([0-9a-f-]{36}) Error: Runtime exited with error: signal: killed")


def oom_kills(cgroup: Path) -> int:
    for name in ("memory.oom_control", "memory.events"):
        path = cgroup / name
        if path.exists():
            for line in path.read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
    raise AssertionError(f"no oom_kill counter in {cgroup}")


def test_allocating_past_the_limit_is_runtime_out_of_memory(
    small_memory_cgroup: Path, start_agent: StartAgent
) -> None:
    agent = start_agent({"app.py": HOG}, cgroup=small_memory_cgroup)
    assert agent.invoke({}).json() == "small"
    before = oom_kills(small_memory_cgroup)

    response = agent.invoke({"mib": 400})

    assert oom_kills(small_memory_cgroup) > before  # the kernel did kill it
    assert response.status_code == 200
    assert response.headers["x-amz-function-error"] == "Unhandled"
    doc = response.json()
    assert doc["errorType"] == "Runtime.OutOfMemory"
    found = MESSAGE.fullmatch(doc["errorMessage"])
    assert found is not None, doc
    assert found.group(1) == response.headers["lambdalet-request-id"]
    agent.wait_log(re.escape(doc["errorMessage"]) + r"\nRuntime\.OutOfMemory")
    # A new runtime takes the next invocation.
    assert agent.invoke({}).json() == "small"


def test_a_sigkill_without_an_oom_kill_stays_an_exit_error(
    small_memory_cgroup: Path, start_agent: StartAgent
) -> None:
    agent = start_agent({"app.py": HOG}, cgroup=small_memory_cgroup)
    before = oom_kills(small_memory_cgroup)

    response = agent.invoke({"kill": True})

    assert oom_kills(small_memory_cgroup) == before
    doc = json.loads(response.content)
    assert response.headers["x-amz-function-error"] == "Unhandled"
    assert doc["errorType"] == "Runtime.ExitError"
    assert MESSAGE.fullmatch(doc["errorMessage"]) is not None


def test_an_oom_kill_during_init_is_an_init_error_of_that_type(
    small_memory_cgroup: Path, start_agent: StartAgent
) -> None:
    files = {"app.py": "HOARD = b'x' * (400 * 1024 * 1024)\n\ndef handler(event, context):\n"
             "    return 'never'\n"}  # fmt: skip
    agent = start_agent(files, cgroup=small_memory_cgroup, wait_ready=False)

    health = agent.wait_health("init_error", timeout=30)
    response = agent.invoke({})

    assert response.status_code == 502
    assert response.json()["errorType"] == "Runtime.OutOfMemory", health
