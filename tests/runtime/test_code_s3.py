"""Code in an S3-compatible bucket (LAMBDALET_CODE_S3_*), fetched by the agent at start from a
real MinIO on 127.0.0.1: requests signed with Signature Version 4 (long-lived and temporary
credentials, keys that need escaping), anonymous requests to a public bucket, and S3's own errors
as init errors that recover once the object is there.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Iterator

import pytest
from minio import Minio
from minio.credentials import AssumeRoleProvider, Credentials

from tests.kit.servers.agent import Agent, StartAgent
from tests.kit.servers.minio import (
    ROOT_PASSWORD,
    ROOT_USER,
    MinioServer,
    public_read,
    running_minio,
)
from tests.runtime.test_code_download import HANDLER, Entry, assert_code_error, zip_of

ARCHIVE = zip_of(Entry("app.py", HANDLER), Entry("lib/data.txt", "x"))


@pytest.fixture(scope="module")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    with running_minio(tmp_path_factory.mktemp("minio"), {}) as server:
        yield server


@pytest.fixture
def bucket(minio: MinioServer, request: pytest.FixtureRequest) -> str:
    """A private bucket of this test's own."""
    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower())[:50].strip("-")
    client = minio.client()
    if not client.bucket_exists(name):
        client.make_bucket(name)
    return name


def put(client: Minio, bucket: str, key: str, data: bytes) -> None:
    client.put_object(bucket, key, io.BytesIO(data), len(data))


def s3_env(
    minio: MinioServer, bucket: str, key: str, *, credentials: bool = True, **extra: str
) -> dict[str, str]:
    env = {
        "LAMBDALET_CODE_S3_ENDPOINT": f"http://{minio.host}:{minio.port}",
        "LAMBDALET_CODE_S3_BUCKET": bucket,
        "LAMBDALET_CODE_S3_KEY": key,
    }
    if credentials:
        env["LAMBDALET_CODE_S3_ACCESS_KEY_ID"] = ROOT_USER
        env["LAMBDALET_CODE_S3_SECRET_ACCESS_KEY"] = ROOT_PASSWORD
    return env | extra


def temporary_credentials(minio: MinioServer) -> Credentials:
    """Credentials with a session token from MinIO's STS AssumeRole."""
    return AssumeRoleProvider(
        sts_endpoint=f"http://{minio.host}:{minio.port}",
        access_key=ROOT_USER,
        secret_key=ROOT_PASSWORD,
        duration_seconds=900,
    ).retrieve()


def temporary_env(
    minio: MinioServer, bucket: str, *, with_token: bool
) -> tuple[dict[str, str], Credentials]:
    """The agent's environment for fn.zip with temporary credentials, with or without their
    session token."""
    sts = temporary_credentials(minio)
    assert sts.session_token
    env = s3_env(
        minio,
        bucket,
        "fn.zip",
        credentials=False,
        LAMBDALET_CODE_S3_ACCESS_KEY_ID=sts.access_key,
        LAMBDALET_CODE_S3_SECRET_ACCESS_KEY=sts.secret_key,
    )
    if with_token:
        env["LAMBDALET_CODE_S3_SESSION_TOKEN"] = sts.session_token
    return env, sts


def assert_runs_the_archive(agent: Agent) -> None:
    """An invocation answers from the archive's handler, whose lib/ the agent unpacked."""
    reply = agent.invoke({"n": 1})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"from": "url", "event": {"n": 1}}
    assert (agent.task_root / "lib" / "data.txt").read_text() == "x"


def test_a_signed_get_of_a_private_object(
    start_agent: StartAgent, minio: MinioServer, bucket: str
) -> None:
    put(minio.client(), bucket, "fn/v1.zip", ARCHIVE)
    digest = hashlib.sha256(ARCHIVE).hexdigest()

    agent = start_agent(
        {}, env=s3_env(minio, bucket, "fn/v1.zip", LAMBDALET_CODE_SHA256=digest.upper())
    )

    assert_runs_the_archive(agent)
    where = f"s3://{bucket}/fn/v1.zip at http://{minio.host}:{minio.port}"
    agent.wait_log(
        rf"^lambdalet-agent: code: {re.escape(where)} \({len(ARCHIVE)} bytes, sha256 {digest}\)"
    )
    assert ROOT_PASSWORD not in agent.log()


def test_a_key_that_needs_escaping(
    start_agent: StartAgent, minio: MinioServer, bucket: str
) -> None:
    # The path on the request line must be the one signed: spaces, '+', '=', '&', ':' and UTF-8.
    key = "releases/2026-11-22 build+1/fn=v1&a:b/café ünïcode.zip"
    put(minio.client(), bucket, key, ARCHIVE)

    assert_runs_the_archive(start_agent({}, env=s3_env(minio, bucket, key)))


def test_temporary_credentials_with_a_session_token(
    start_agent: StartAgent, minio: MinioServer, bucket: str
) -> None:
    put(minio.client(), bucket, "fn.zip", ARCHIVE)
    env, _ = temporary_env(minio, bucket, with_token=True)

    assert_runs_the_archive(start_agent({}, env=env))


def test_the_same_temporary_credentials_without_their_token_are_refused(
    start_agent: StartAgent, minio: MinioServer, bucket: str
) -> None:
    put(minio.client(), bucket, "fn.zip", ARCHIVE)
    env, sts = temporary_env(minio, bucket, with_token=False)

    agent = start_agent({}, env=env, wait_ready=False)

    error = assert_code_error(agent, "HTTP 403 Forbidden")
    assert sts.secret_key not in json.dumps(error)


@pytest.mark.parametrize(
    ("env", "s3_code"),
    [
        ({"LAMBDALET_CODE_S3_SECRET_ACCESS_KEY": "not-the-secret"}, "SignatureDoesNotMatch"),
        ({"LAMBDALET_CODE_S3_ACCESS_KEY_ID": "nobody"}, "InvalidAccessKeyId"),
    ],
    ids=["wrong-secret", "unknown-key-id"],
)
def test_wrong_credentials_are_an_init_error_with_s3s_reason(
    start_agent: StartAgent, minio: MinioServer, bucket: str, env: dict[str, str], s3_code: str
) -> None:
    put(minio.client(), bucket, "fn.zip", ARCHIVE)

    agent = start_agent({}, env=s3_env(minio, bucket, "fn.zip") | env, wait_ready=False)

    error = assert_code_error(agent, f"HTTP 403 Forbidden: {s3_code}: ")
    assert f"s3://{bucket}/fn.zip" in error["errorMessage"]
    # Permanent: the round ends at once, and the next one waits.
    agent.wait_log(r"^lambdalet-agent: code: .*; next try in 1s$")
    assert "attempt 2" not in agent.log()


def test_anonymous_access_to_a_public_bucket_and_not_to_a_private_one(
    start_agent: StartAgent, minio: MinioServer, bucket: str
) -> None:
    client = minio.client()
    put(client, bucket, "private/fn.zip", ARCHIVE)
    put(client, bucket, "public/fn.zip", ARCHIVE)
    client.set_bucket_policy(bucket, public_read(bucket, "public/*"))

    public = start_agent({}, env=s3_env(minio, bucket, "public/fn.zip", credentials=False))
    private = start_agent(
        {}, env=s3_env(minio, bucket, "private/fn.zip", credentials=False), wait_ready=False
    )

    assert_runs_the_archive(public)
    assert_code_error(private, "HTTP 403 Forbidden: AccessDenied: ")


def test_a_missing_object_recovers_once_it_is_uploaded(
    start_agent: StartAgent, minio: MinioServer, bucket: str
) -> None:
    agent = start_agent({}, env=s3_env(minio, bucket, "later.zip"), wait_ready=False)

    assert_code_error(agent, "HTTP 404 Not Found: NoSuchKey: ")
    put(minio.client(), bucket, "later.zip", ARCHIVE)

    # Rounds are 1 s, 2 s, 4 s apart: the next one finds it, in the same agent.
    agent.wait_health("ready", timeout=20)
    assert_runs_the_archive(agent)


def test_a_missing_bucket(start_agent: StartAgent, minio: MinioServer) -> None:
    agent = start_agent({}, env=s3_env(minio, "no-such-bucket", "fn.zip"), wait_ready=False)

    assert_code_error(agent, "HTTP 404 Not Found: NoSuchBucket: ")


def test_a_wrong_sha256_from_s3(start_agent: StartAgent, minio: MinioServer, bucket: str) -> None:
    put(minio.client(), bucket, "fn.zip", ARCHIVE)
    env = s3_env(minio, bucket, "fn.zip", LAMBDALET_CODE_SHA256="0" * 64)

    agent = start_agent({}, env=env, wait_ready=False)

    assert_code_error(agent, f"sha256 mismatch: want {'0' * 64}, got ")
    assert not (agent.task_root / "app.py").exists()
