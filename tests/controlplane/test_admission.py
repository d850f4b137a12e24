"""Invalid manifests never get in: the API server itself rejects each one, through the schema
and CEL rules of the generated CRDs, with a message that says what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.cases import (
    INVALID_EVENTSOURCES,
    INVALID_FUNCTIONS,
    VALID_EVENTSOURCES,
    VALID_FUNCTIONS,
)
from tests.kit.servers.kube import Cluster

pytestmark = pytest.mark.controlplane


def _server_apply(cluster: Cluster, namespace: str, manifest: dict[str, Any]) -> Any:
    # A server-side dry run goes through admission and validation but stores nothing. Server-side
    # apply: client-side apply copies the manifest into an annotation limited to 256 KiB, which
    # large inline code exceeds before the CRD's own limits are reached.
    return cluster.kubectl(
        "apply", "--server-side", "--dry-run=server", "-n", namespace, "-f", "-",
        input=json.dumps(manifest), check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [pytest.param(m, api, id=i) for i, m, _, api in INVALID_FUNCTIONS + INVALID_EVENTSOURCES],
)
def test_api_server_rejects_invalid_manifest(
    crds: Cluster, cp_namespace: str, manifest: dict[str, Any], expected: str
) -> None:
    done = _server_apply(crds, cp_namespace, manifest)
    assert done.returncode != 0, f"accepted: {done.stdout}"
    assert expected in done.stderr


@pytest.mark.parametrize(
    "manifest", [pytest.param(m, id=i) for i, m in VALID_FUNCTIONS + VALID_EVENTSOURCES]
)
def test_api_server_accepts_valid_manifest(
    crds: Cluster, cp_namespace: str, manifest: dict[str, Any]
) -> None:
    done = _server_apply(crds, cp_namespace, manifest)
    assert done.returncode == 0, done.stderr
