"""Every manifest under examples/ is accepted by a real API server with the CRDs installed
(schema, defaults and CEL rules), without being stored (server-side dry run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.kit.paths import REPO
from tests.kit.servers.kube import Cluster

pytestmark = pytest.mark.controlplane

MANIFESTS = sorted((REPO / "examples").glob("*/*.yaml"))


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_api_server_accepts_the_example(crds: Cluster, path: Path) -> None:
    done = crds.kubectl("apply", "--dry-run=server", "-n", "default", "-f", str(path))
    assert "(server dry run)" in done.stdout
