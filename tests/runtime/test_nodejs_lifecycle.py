"""Crashes only JavaScript has: a promise rejection nobody handles and an exception thrown from a
timer end the invocation (and the runtime process) at once, with the error as its answer."""

from __future__ import annotations

import re

import pytest

from tests.kit.servers.agent import StartAgent
from tests.runtime.runtimes import NODEJS, crash_and_recover


@pytest.mark.parametrize(
    ("event", "error_type", "message", "log"),
    [
        pytest.param(
            {"action": "reject"},
            "Runtime.UnhandledPromiseRejection",
            "Error: nobody waits for me",
            "Unhandled Promise Rejection",
            id="unhandled-rejection",
        ),
        pytest.param(
            {"action": "throw-later"},
            "TypeError",
            "thrown from a timer",
            "Uncaught Exception",
            id="uncaught-exception",
        ),
    ],
)
def test_a_crash_fails_the_invocation_and_a_fresh_runtime_follows(
    start_agent: StartAgent, event: dict[str, object], error_type: str, message: str, log: str
) -> None:
    reply, agent_log = crash_and_recover(start_agent, NODEJS, event)

    assert reply.json()["errorType"] == error_type
    assert reply.json()["errorMessage"] == message
    assert re.search(rf"\tcrash\tERROR\t{log} \t\{{", agent_log)
