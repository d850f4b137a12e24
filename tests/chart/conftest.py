"""The helm binary for the chart tests: pinned by e2e/cluster/versions.env, built once."""

from __future__ import annotations

import pytest

from tests.chart.render import Helm, helm_binary


@pytest.fixture(scope="session")
def helm() -> Helm:
    return Helm(helm_binary())
