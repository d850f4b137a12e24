"""Root conftest: registers the shared fixtures for tests/ and e2e/ (the real control plane and
single-node cluster, real agents, Redis), and runs async tests marked ``both_loops`` on asyncio's
event loop and on uvloop's (the activator serves on uvloop, whose transports are not asyncio's
classes)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest
import uvloop

pytest_plugins = [
    "e2e.harness.fixtures",
    "tests.kit.servers.agent",
    "tests.kit.servers.controlplane",
    "tests.kit.servers.redis",
]


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    if item.get_closest_marker("both_loops"):
        return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
