"""A real MinIO server for the S3 notification tests, on free loopback ports.

The binary is built once with ``go install github.com/minio/minio@<VERSION>`` into
``~/.cache/lambdalet/minio/<VERSION>`` (about 4 minutes on 2 cores; ``LAMBDALET_MINIO`` names
another binary) and reused after that. ``running_minio`` starts ``minio server DIR --address
127.0.0.1:PORT`` with webhook notification targets given by environment variables
(``MINIO_NOTIFY_WEBHOOK_*_<ID>``, each with a ``queue_dir`` so failed deliveries are kept and
retried every 3 s) and stops it on exit; the process never outlives the context.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from minio import Minio

from tests.kit.ports import free_port
from tests.kit.servers.process import ready_within, stop_process

# The proxy's pseudo-version of MinIO's main module at the time of writing (MinIO publishes no
# Go module versions), pinned so every machine tests against the same server.
VERSION = "v0.0.0-20260212201848-7aac2a2c5b7c"
MODULE = f"github.com/minio/minio@{VERSION}"
CACHE = Path.home() / ".cache" / "lambdalet" / "minio" / VERSION
GO = "/usr/local/go/bin/go"
BUILD_TIMEOUT = 15 * 60.0  # seconds for go install on 2 cores (about 4 minutes measured)
START_TIMEOUT = 30.0  # seconds until /minio/health/ready answers 200
ROOT_USER = "lambdalet"
ROOT_PASSWORD = "lambdalet-secret"  # loopback-only test server


@dataclass(frozen=True)
class WebhookTarget:
    """A MinIO webhook notification target: ARN ``arn:minio:sqs::<id>:webhook``."""

    endpoint: str
    token: str | None = None


def arn(target_id: str) -> str:
    return f"arn:minio:sqs::{target_id.upper()}:webhook"  # MinIO keeps the env suffix's case


def binary() -> Path:
    """The minio binary: $LAMBDALET_MINIO, the cached build, or a fresh build into the cache."""
    named = os.environ.get("LAMBDALET_MINIO")
    if named:
        return Path(named)
    built = CACHE / "minio"
    if built.exists():
        return built
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one build when several test runs start at once
        if not built.exists():
            go = shutil.which("go") or GO
            env = {**os.environ, "GOBIN": str(CACHE)}
            subprocess.run(
                [go, "install", MODULE],
                env=env,
                check=True,
                timeout=BUILD_TIMEOUT,
                stdout=subprocess.DEVNULL,
            )
    return built


def webhook_env(targets: Mapping[str, WebhookTarget], queue_root: Path) -> dict[str, str]:
    env = {}
    for target_id, target in targets.items():
        suffix = target_id.upper()
        env[f"MINIO_NOTIFY_WEBHOOK_ENABLE_{suffix}"] = "on"
        env[f"MINIO_NOTIFY_WEBHOOK_ENDPOINT_{suffix}"] = target.endpoint
        env[f"MINIO_NOTIFY_WEBHOOK_QUEUE_DIR_{suffix}"] = str(queue_root / target_id)
        if target.token is not None:
            env[f"MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_{suffix}"] = target.token
    return env


@dataclass(frozen=True)
class MinioServer:
    host: str
    port: int
    log: Path

    def client(self) -> Minio:
        return Minio(
            f"{self.host}:{self.port}",
            access_key=ROOT_USER,
            secret_key=ROOT_PASSWORD,
            secure=False,
        )


def public_read(bucket: str, pattern: str) -> str:
    """A bucket policy letting anyone GET the objects whose keys match ``pattern``."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": ["*"]},
                    "Action": ["s3:GetObject"],
                    "Resource": [f"arn:aws:s3:::{bucket}/{pattern}"],
                }
            ],
        }
    )


def _ready(host: str, port: int) -> bool:
    url = f"http://{host}:{port}/minio/health/ready"
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running_minio(
    workdir: Path, targets: Mapping[str, WebhookTarget], host: str = "127.0.0.1"
) -> Iterator[MinioServer]:
    """A MinIO with ``targets`` listening on ``host``; stopped on exit. Raises RuntimeError if
    it does not come up."""
    executable = binary()
    port, console = free_port(), free_port()
    log = workdir / f"minio-{port}.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("MINIO_")} | {
        "MINIO_ROOT_USER": ROOT_USER,
        "MINIO_ROOT_PASSWORD": ROOT_PASSWORD,
        "MINIO_UPDATE": "off",
        **webhook_env(targets, workdir / "queues"),
    }
    args = [
        str(executable), "server", str(workdir / "data"),
        "--address", f"{host}:{port}",
        "--console-address", f"127.0.0.1:{console}",
        "--quiet",
    ]  # fmt: skip
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        if not ready_within(process, lambda: _ready(host, port), START_TIMEOUT, interval=0.1):
            raise RuntimeError(f"minio did not start on port {port}; see {log}")
        yield MinioServer(host, port, log)
    finally:
        stop_process(process)
