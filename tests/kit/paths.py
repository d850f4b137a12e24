"""Where the repository is, for tests and launchers that read its files (the CRDs, the chart,
README.md) or run its scripts (e2e/cluster/cluster.sh)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
