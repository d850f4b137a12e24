"""Fixtures of the dispatcher's component tests: the activator's request path assembled
in-process (``tests.activator.stack``) in front of real agents from ``start_agent``. The real
redis-servers come from ``tests.kit.servers.redis`` (registered for the whole suite)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from lambdalet.activator.proxy import ProxyLimits
from tests.activator.stack import Stack, start_stack


@pytest.fixture
async def activator() -> AsyncIterator[Stack]:
    stack = await start_stack(proxy_limits=ProxyLimits(hold_limit=100, hold_timeout=0.5))
    try:
        yield stack
    finally:
        await stack.close()
