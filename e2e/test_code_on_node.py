"""Code fetched by the function pod on the real node: a zip archive in a MinIO bucket, named by
`spec.code.s3` (requests signed with the credentials of a Secret) or by a presigned URL in
`spec.code.url`. MinIO runs in the node's namespace on the node IP, which pods reach; the pod
runs under restricted Pod Security with its read-only root filesystem, and the function starts
from zero on its first invocation through the activator.
"""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.kit.servers.activator import ActivatorProcess
from tests.kit.servers.kube import Cluster
from tests.kit.servers.minio import (
    ROOT_PASSWORD,
    ROOT_USER,
    MinioServer,
    public_read,
    running_minio,
)
from tests.kit.wait import wait_for

pytestmark = pytest.mark.e2e

HANDLER = """
import os, sys

def handler(event, context):
    with open(os.path.join(os.environ["LAMBDA_TASK_ROOT"], "data", "greeting.txt")) as f:
        greeting = f.read().strip()
    return {"greeting": f"{greeting}, {event['name']}", "python": sys.version.split()[0]}
"""


def archive() -> bytes:
    """The function's zip archive, the same bytes on every call (fixed timestamps)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in (("app.py", HANDLER), ("data/greeting.txt", "hello from the bucket\n")):
            zf.writestr(zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0)), text)
    return out.getvalue()


def node_ip(cluster: Cluster) -> str:
    node = cluster.get("nodes")["items"][0]
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


@pytest.fixture(scope="module")
def minio(node_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """MinIO on the node IP, with the archive at code/fn/v1.zip."""
    with running_minio(tmp_path_factory.mktemp("minio"), {}, host=node_ip(node_cluster)) as server:
        client = server.client()
        client.make_bucket("code")
        data = archive()
        client.put_object("code", "fn/v1.zip", io.BytesIO(data), len(data))
        yield server


def function(name: str, code: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "timeoutSeconds": 10,
            "code": code,
            "scaling": {"minScale": 0, "maxScale": 1},
        },
    }


def invoke(activator: ActivatorProcess, ns: str, name: str) -> httpx.Response:
    return httpx.post(
        f"{activator.url}/2015-03-31/functions/{ns}:{name}/invocations",
        json={"name": "lambdalet"},
        timeout=90,
    )


@pytest.fixture
def restricted_namespace(node_cluster: Cluster, node_namespace: str) -> str:
    node_cluster.kubectl(
        "label", "namespace", node_namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    return node_namespace


def test_code_from_an_s3_bucket_with_a_secrets_credentials(
    node_cluster: Cluster,
    restricted_namespace: str,
    activator_on_node: ActivatorProcess,
    runtime_images: None,
    minio: MinioServer,
    tmp_path: Path,
) -> None:
    ns = restricted_namespace
    node_cluster.kubectl(
        "create", "secret", "generic", "minio", "-n", ns,
        f"--from-literal=AWS_ACCESS_KEY_ID={ROOT_USER}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={ROOT_PASSWORD}",
    )  # fmt: skip
    code = {
        "s3": {
            "endpoint": f"http://{minio.host}:{minio.port}",
            "bucket": "code",
            "key": "fn/v1.zip",
            "sha256": hashlib.sha256(archive()).hexdigest(),
            "credentialsSecret": {"name": "minio"},
        }
    }
    node_cluster.apply([function("from-s3", code)], "-n", ns)
    node_cluster.kubectl("wait", "-n", ns, "fn/from-s3", "--for=condition=Ready", "--timeout=60s")

    reply = invoke(activator_on_node, ns, "from-s3")

    assert reply.status_code == 200, reply.text
    assert "X-Amz-Function-Error" not in reply.headers, reply.text
    assert reply.json()["greeting"] == "hello from the bucket, lambdalet"
    # The secret went to the pod as a reference, never as a value.
    deployment = node_cluster.get("deployment", "fn-from-s3", "-n", ns)
    assert ROOT_PASSWORD not in str(deployment)


def test_code_from_a_presigned_url(
    node_cluster: Cluster,
    restricted_namespace: str,
    activator_on_node: ActivatorProcess,
    runtime_images: None,
    minio: MinioServer,
) -> None:
    ns = restricted_namespace
    url = minio.client().presigned_get_object("code", "fn/v1.zip", expires=timedelta(hours=1))
    node_cluster.apply([function("from-url", {"url": {"url": url}})], "-n", ns)
    node_cluster.kubectl("wait", "-n", ns, "fn/from-url", "--for=condition=Ready", "--timeout=60s")

    reply = invoke(activator_on_node, ns, "from-url")

    assert reply.status_code == 200, reply.text
    assert reply.json()["greeting"] == "hello from the bucket, lambdalet"


def test_a_missing_archive_is_an_init_error_at_once_and_recovers_once_uploaded(
    node_cluster: Cluster,
    restricted_namespace: str,
    activator_on_node: ActivatorProcess,
    runtime_images: None,
    minio: MinioServer,
) -> None:
    ns = restricted_namespace
    code = {"s3": {"endpoint": f"http://{minio.host}:{minio.port}", "bucket": "code",
                   "key": f"{ns}/later.zip"}}  # fmt: skip
    node_cluster.apply([function("later", code)], "-n", ns)
    node_cluster.kubectl("wait", "-n", ns, "fn/later", "--for=condition=Ready", "--timeout=60s")

    # The pod cannot fetch its code: it reports the init error, and the activator answers the
    # held invocation with it, long before the 60 s hold timeout.
    started = time.monotonic()
    failed = invoke(activator_on_node, ns, "later")
    assert failed.status_code == 502, failed.text
    assert failed.headers["X-Amz-Function-Error"] == "Unhandled"
    error = failed.json()
    assert error["errorType"] == "Runtime.CodeDownloadError"
    assert f"s3://code/{ns}/later.zip" in error["errorMessage"]
    assert "HTTP 403 Forbidden: AccessDenied" in error["errorMessage"]  # anonymous, private
    assert time.monotonic() - started < 30
    # And `kubectl describe fn` says why.
    event = wait_for(
        lambda: node_cluster.get(
            "events", "-n", ns, "--field-selector", "reason=InitError,involvedObject.name=later"
        )["items"],
        30,
        what="the InitError Event on the Function",
    )[0]
    assert event["involvedObject"]["kind"] == "Function"
    assert "Runtime.CodeDownloadError" in event["message"]
    assert "AccessDenied" in event["message"]

    # Making the object readable mends it without a new pod: the agent's next round fetches it.
    data = archive()
    minio.client().put_object("code", f"{ns}/later.zip", io.BytesIO(data), len(data))
    minio.client().set_bucket_policy("code", public_read("code", f"{ns}/*"))

    def answered() -> httpx.Response | None:
        reply = invoke(activator_on_node, ns, "later")
        return reply if reply.status_code == 200 else None

    reply = wait_for(
        answered,
        90,
        interval=2.0,
        what="an answer once the archive is readable",
    )
    assert reply.json()["greeting"] == "hello from the bucket, lambdalet"
