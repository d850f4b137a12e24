"""Setting up MinIO bucket notifications for S3 EventSources, against a real MinIO.

One MinIO per module (tests/kit/servers/minio.py; the tests restart it through its admin
API, as ``ensure`` does) with one environment-variable target, "foreign", standing for rules
somebody else keeps on a bucket. Each test serves an ``S3Receiver`` on a free loopback port with
a recording ``invoke`` and its own buckets and EventSource names, so an event for one test cannot
be mistaken for another's. The receiver checks the bearer token: a recorded event is one MinIO
sent with the right token.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import urllib3
from minio.credentials.providers import StaticProvider
from minio.error import MinioAdminException, S3Error
from minio.minioadmin import MinioAdmin
from minio.notificationconfig import NotificationConfig, PrefixFilterRule, QueueConfig

from lambdalet.api.eventsource import S3
from lambdalet.contracts.keys import Key
from lambdalet.dispatcher.s3 import notifications
from lambdalet.dispatcher.s3.events import S3Filter
from lambdalet.dispatcher.s3.notifications import (
    Changes,
    Limits,
    Where,
    error_for,
    merged,
    queue_config,
    running_target,
    target_arn,
    target_config,
    target_current,
    target_id,
)
from lambdalet.dispatcher.s3.receiver import S3Binding, S3Receiver, serve
from lambdalet.dispatcher.sources.source import SourceConfigError, SourceError
from lambdalet.dispatcher.sources.sqs import Credentials
from tests.kit.ports import free_port
from tests.kit.servers.minio import (
    ROOT_PASSWORD,
    ROOT_USER,
    MinioServer,
    WebhookTarget,
    arn,
    running_minio,
)
from tests.kit.wait import wait_for_async

NAMESPACE = "team"
WAIT = 20.0  # seconds for MinIO to deliver an event
ROOT = Credentials(ROOT_USER, ROOT_PASSWORD)
URL = "http://127.0.0.1:8080/s3/team/uploads"
WANTED = target_config(URL, "tok", None)
T = TypeVar("T")


async def eventually(call: Callable[[], Awaitable[T]], within: float = WAIT) -> T:
    """``call()``'s result once it stops raising ``SourceError`` (MinIO restarting)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await call()
        except SourceError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


# --- the pure part ------------------------------------------------------------------------------


def test_target_id_is_stable_short_and_plain() -> None:
    ids = {target_id(NAMESPACE, "uploads"), target_id("other", "uploads"), target_id("t", "u")}
    assert len(ids) == 3
    assert target_id(NAMESPACE, "uploads") == target_id(NAMESPACE, "uploads")
    for tid in ids:
        assert tid.startswith("lambdalet-")
        assert len(tid) == 26
        assert tid.replace("-", "").isalnum()
        assert tid == tid.lower()
    assert target_arn("lambdalet-0123") == "arn:minio:sqs::lambdalet-0123:webhook"


def test_target_config_carries_a_fingerprint_of_the_token() -> None:
    assert WANTED["endpoint"] == URL
    assert WANTED["auth_token"] == "tok"
    assert WANTED["enable"] == "on"
    assert "queue_dir" not in WANTED
    assert WANTED["comment"].startswith("lambdalet:")
    assert target_config(URL, "other", None)["comment"] != WANTED["comment"]
    assert target_config(URL, "tok", "/data/q")["queue_dir"] == "/data/q"
    assert target_config(URL, "tok", "/data/q")["comment"] != WANTED["comment"]


@pytest.mark.parametrize(
    ("url", "token", "queue_dir"),
    [
        (URL, "tok", "relative/dir"),
        ("ftp://x/s3/a/b", "tok", None),
        (URL + " x", "tok", None),
        (URL, "to ken", None),
        (URL, 'to"ken', None),
        (URL, "xqueue_dir=/tmp", None),
        (URL + "?endpoint=x", "tok", None),
    ],
)
def test_target_config_refuses_what_minio_cannot_carry(
    url: str, token: str, queue_dir: str | None
) -> None:
    with pytest.raises(SourceConfigError):
        target_config(url, token, queue_dir)


CONFIG_TEXT = (
    "# MINIO_NOTIFY_WEBHOOK_ENABLE_FOREIGN=on\n"
    "notify_webhook enable=off endpoint= auth_token= queue_limit=0 queue_dir= client_cert= "
    "client_key= \n"
    f"notify_webhook:lambdalet-aaa endpoint={URL} queue_limit=0 queue_dir= client_cert= "
    f"client_key= comment={WANTED['comment']} \n"
    "notify_webhook:lambdalet-aaab enable=off endpoint=http://x/ queue_limit=0 \n"
)


def test_running_target_reads_config_get_output() -> None:
    running = running_target(CONFIG_TEXT, "lambdalet-aaa")
    assert running is not None
    assert running["endpoint"] == URL
    assert running["queue_dir"] == ""
    assert running["comment"] == WANTED["comment"]
    assert running_target(CONFIG_TEXT, "lambdalet-aaab") == {
        "enable": "off",
        "endpoint": "http://x/",
        "queue_limit": "0",
    }
    assert running_target(CONFIG_TEXT, "lambdalet-aa") is None


@pytest.mark.parametrize(
    ("running", "current"),
    [
        (None, False),
        ({}, False),
        ({"endpoint": URL, "queue_dir": "", "comment": WANTED["comment"]}, True),
        ({"endpoint": URL, "comment": WANTED["comment"]}, True),
        ({"endpoint": URL, "comment": WANTED["comment"], "enable": "off"}, False),
        ({"endpoint": URL, "comment": WANTED["comment"], "queue_dir": "/q"}, False),
        ({"endpoint": URL + "x", "comment": WANTED["comment"]}, False),
        ({"endpoint": URL, "comment": "lambdalet:other"}, False),
    ],
)
def test_target_current(running: dict[str, str] | None, current: bool) -> None:
    assert target_current(running, WANTED) is current


def spec(bucket: str, endpoint: str = "http://127.0.0.1:9", **fields: Any) -> S3:
    return S3(endpoint=endpoint, bucket=bucket, **fields)


def test_queue_config_lists_each_event_once_and_skips_empty_filters() -> None:
    events = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*", "s3:ObjectCreated:*")
    rule = queue_config(spec("b", events=events, prefix="", suffix=".jpg"), "lambdalet-x")
    assert rule.events == ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]
    assert (rule.config_id, rule.queue) == ("lambdalet-x", target_arn("lambdalet-x"))
    assert rule.prefix_filter_rule is None
    assert rule.suffix_filter_rule is not None
    assert rule.suffix_filter_rule.value == ".jpg"


def rule(config_id: str, prefix: str | None = None, queue: str | None = None) -> QueueConfig:
    return QueueConfig(
        ["s3:ObjectCreated:*"],
        config_id=config_id,
        queue=queue or target_arn(config_id),
        prefix_filter_rule=PrefixFilterRule(prefix) if prefix else None,
    )


OURS = rule("ours", "in/")
REGIONAL = "arn:minio:sqs:eu-west-1:ours:webhook"


@pytest.mark.parametrize(
    ("current", "ours", "expected"),
    [
        ([], OURS, [OURS]),
        ([rule("a"), rule("b")], OURS, [rule("a"), rule("b"), OURS]),
        ([rule("a"), rule("ours", "old/"), rule("b")], OURS, [rule("a"), OURS, rule("b")]),
        ([rule("ours", "old/"), rule("a"), rule("ours")], OURS, [OURS, rule("a")]),
        ([rule("a"), rule("ours"), rule("b")], None, [rule("a"), rule("b")]),
        ([rule("a")], None, [rule("a")]),
        ([rule("ours", "in/", REGIONAL)], OURS, [rule("ours", "in/", REGIONAL)]),
        ([rule("ours", "x/", REGIONAL)], OURS, [rule("ours", "in/", REGIONAL)]),
    ],
)
def test_merged_keeps_other_rules(
    current: list[QueueConfig], ours: QueueConfig | None, expected: list[QueueConfig]
) -> None:
    result = merged(NotificationConfig(queue_config_list=current), "ours", ours)
    assert result == NotificationConfig(queue_config_list=expected)


WHERE = Where("http://minio:9000", "uploads", "lambdalet-x", URL)


def admin_error(status: int, code: str, message: str) -> MinioAdminException:
    return MinioAdminException(str(status), json.dumps({"Code": code, "Message": message}))


def s3_error(status: int, code: str, message: str = "x") -> S3Error:
    response = urllib3.HTTPResponse(status=status)
    return S3Error(response, code, message, "/uploads", "id", "host", "uploads")


OVERLAPPING = (  # MinIO's answer to two identical rules on a bucket
    "An object key name filtering rule defined with overlapping prefixes, overlapping suffixes, "
    "or overlapping combinations of prefixes and suffixes for the same event types."
)
NO_ARN = (  # and to a rule naming a target it has not loaded
    "A specified destination ARN does not exist or is not well-formed. Verify the destination ARN."
)


def hidden(exc: BaseException) -> UnboundLocalError:
    """What minio 7.2.20's config_get raises instead of its own error."""
    try:
        try:
            raise exc
        finally:
            raise UnboundLocalError("cannot access local variable 'response'")
    except UnboundLocalError as wrapper:
        return wrapper


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (admin_error(403, "SignatureDoesNotMatch", "x"), SourceConfigError, "credentialsSecret"),
        (hidden(admin_error(403, "InvalidAccessKeyId", "x")), SourceConfigError, "credentials"),
        (admin_error(403, "AccessDenied", "x"), SourceConfigError, "admin:ConfigUpdate"),
        (
            admin_error(400, "XMinioAdminConfigBadJSON", "error (x:webhook): dial tcp: refused"),
            SourceError,
            "LAMBDALET_DISPATCHER_S3_URL",
        ),
        (
            admin_error(400, "XMinioAdminConfigBadJSON", "queueDir path should be absolute"),
            SourceConfigError,
            "queueDir path should be absolute",
        ),
        (admin_error(404, "XMinioConfigNotFoundError", "gone"), SourceConfigError, "no webhook"),
        (admin_error(404, "NotImplemented", "x"), SourceConfigError, "admin API"),
        (admin_error(503, "XMinioServerNotInitialized", "x"), SourceError, "503"),
        (
            hidden(urllib3.exceptions.MaxRetryError(None, "/x", OSError("refused"))),  # type: ignore[arg-type]
            SourceError,
            "cannot reach http://minio:9000",
        ),
        (ConnectionResetError("reset"), SourceError, "cannot reach"),
        (s3_error(403, "SignatureDoesNotMatch"), SourceConfigError, "AWS_SECRET_ACCESS_KEY"),
        (s3_error(403, "AccessDenied"), SourceConfigError, "s3:PutBucketNotification"),
        (s3_error(404, "NoSuchBucket"), SourceConfigError, "bucket uploads does not exist"),
        (s3_error(400, "InvalidArgument", OVERLAPPING), SourceConfigError, "same events, prefix"),
        (s3_error(400, "InvalidArgument", NO_ARN), SourceError, "not loaded"),
        (
            s3_error(400, "InvalidArgument", "A specified event is not supported"),
            SourceConfigError,
            "rules of bucket uploads: A specified event is not supported",
        ),
        (s3_error(503, "XMinioServerNotInitialized"), SourceError, "503"),
        (ValueError("invalid bucket name b"), SourceConfigError, "invalid bucket name"),
    ],
)
def test_error_for(exc: BaseException, kind: type[SourceError], words: str) -> None:
    error = error_for(exc, WHERE)
    assert isinstance(error, kind)
    assert isinstance(error, SourceConfigError) is (kind is SourceConfigError)
    assert words in str(error)


# --- against a real MinIO -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    targets = {"foreign": WebhookTarget(f"http://127.0.0.1:{free_port()}/elsewhere")}
    with running_minio(tmp_path_factory.mktemp("minio"), targets) as server:
        yield server


def endpoint(minio: MinioServer) -> str:
    return f"http://{minio.host}:{minio.port}"


def admin(minio: MinioServer) -> MinioAdmin:
    return MinioAdmin(
        endpoint=f"{minio.host}:{minio.port}",
        credentials=StaticProvider(ROOT_USER, ROOT_PASSWORD),
        secure=False,
    )


@dataclass
class Recorder:
    """The receiver's ``invoke``: the object keys each Function got; fails ``failures`` calls."""

    failures: int = 0
    keys: dict[Key, list[str]] = field(default_factory=dict)

    async def invoke(self, function: Key, payload: bytes) -> bool:
        if self.failures > 0:
            self.failures -= 1
            return False
        for record in json.loads(payload)["Records"]:
            self.keys.setdefault(function, []).append(record["s3"]["object"]["key"])
        return True

    def of(self, name: str) -> list[str]:
        return self.keys.get((NAMESPACE, name), [])


@dataclass
class Receiver:
    receiver: S3Receiver
    recorder: Recorder
    base: str  # http://127.0.0.1:<port>

    def url(self, name: str) -> str:
        return f"{self.base}/s3/{NAMESPACE}/{name}"

    def bind(self, name: str, token: str) -> None:
        events = S3Filter(events=("s3:ObjectCreated:*", "s3:ObjectRemoved:*"))
        self.receiver.bind((NAMESPACE, name), S3Binding((NAMESPACE, name), token, events))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recorder = Recorder()
    receiver = S3Receiver(recorder.invoke, invoke_timeout=10.0)
    runner, port = await serve(receiver.app(), "127.0.0.1", 0)
    try:
        yield Receiver(receiver, recorder, f"http://127.0.0.1:{port}")
    finally:
        await asyncio.wait_for(runner.cleanup(), 10)


async def make_bucket(minio: MinioServer, bucket: str) -> None:
    await asyncio.to_thread(minio.client().make_bucket, bucket)


async def put(minio: MinioServer, bucket: str, *keys: str) -> None:
    client = minio.client()
    for key in keys:
        await asyncio.to_thread(client.put_object, bucket, key, io.BytesIO(b"x"), 1)


async def rules(minio: MinioServer, bucket: str) -> NotificationConfig:
    return await asyncio.to_thread(minio.client().get_bucket_notification, bucket)


async def history(minio: MinioServer) -> str:
    """MinIO's newest config writes: changes with every config_set and config_reset."""
    return await asyncio.to_thread(admin(minio).config_history)


async def ensure(receiver: Receiver, name: str, s3: S3, token: str, **options: Any) -> Changes:
    return await notifications.ensure(
        s3,
        namespace=NAMESPACE,
        name=name,
        credentials=options.pop("credentials", ROOT),
        url=receiver.url(name),
        token=token,
        **options,
    )


async def test_ensure_delivers_events_and_a_second_call_writes_nothing(
    minio: MinioServer, receiver: Receiver
) -> None:
    await make_bucket(minio, "photos")
    s3 = spec("photos", endpoint(minio), prefix="in/")
    receiver.bind("photos", "token-1")

    first = await ensure(receiver, "photos", s3, "token-1")
    assert first == Changes(target_written=True, restarted=True, bucket_written=True)
    await put(minio, "photos", "in/a.jpg", "out/b.jpg", "in/c.jpg")
    await wait_for_async(lambda: receiver.recorder.of("photos") == ["in/a.jpg", "in/c.jpg"], WAIT)

    before = (await history(minio), await rules(minio, "photos"))
    assert await ensure(receiver, "photos", s3, "token-1") == Changes()
    assert (await history(minio), await rules(minio, "photos")) == before

    # A new token (the EventSource was re-created) means a new target; the rule stays.
    receiver.bind("photos", "token-2")
    again = await ensure(receiver, "photos", s3, "token-2")
    assert again == Changes(target_written=True, restarted=True, bucket_written=False)
    await put(minio, "photos", "in/d.jpg")
    await wait_for_async(lambda: receiver.recorder.of("photos")[-1:] == ["in/d.jpg"], WAIT)


async def test_eventsources_on_one_bucket_keep_their_own_rules(
    minio: MinioServer, receiver: Receiver
) -> None:
    await make_bucket(minio, "shared")
    foreign = QueueConfig(["s3:ObjectRemoved:*"], config_id="foreign", queue=arn("foreign"))
    client = minio.client()
    await asyncio.to_thread(
        client.set_bucket_notification, "shared", NotificationConfig(queue_config_list=[foreign])
    )
    receiver.bind("left", "left-token")
    receiver.bind("right", "right-token")
    left = spec("shared", endpoint(minio), prefix="a/")
    # Overlapping rules are fine for MinIO (AWS S3 would refuse "a/" next to "a/b/").
    right = spec("shared", endpoint(minio), prefix="a/b/", suffix=".txt")
    await ensure(receiver, "left", left, "left-token")
    await ensure(receiver, "right", right, "right-token")
    ids = [q.config_id for q in (await rules(minio, "shared")).queue_config_list]
    assert ids == ["foreign", target_id(NAMESPACE, "left"), target_id(NAMESPACE, "right")]

    await put(minio, "shared", "a/1.txt", "a/b/2.txt", "a/b/3.bin", "c/4.txt", "a/b/last.txt")
    await wait_for_async(lambda: "a/b/last.txt" in receiver.recorder.of("left"), WAIT)
    await wait_for_async(lambda: "a/b/last.txt" in receiver.recorder.of("right"), WAIT)
    assert receiver.recorder.of("left") == ["a/1.txt", "a/b/2.txt", "a/b/3.bin", "a/b/last.txt"]
    assert receiver.recorder.of("right") == ["a/b/2.txt", "a/b/last.txt"]

    removed = await notifications.remove(left, namespace=NAMESPACE, name="left", credentials=ROOT)
    assert removed == Changes(target_written=True, bucket_written=True)
    assert (await rules(minio, "shared")).queue_config_list == [
        foreign,
        queue_config(right, target_id(NAMESPACE, "right")),
    ]
    await put(minio, "shared", "a/5.txt", "a/b/6.txt")
    await wait_for_async(lambda: "a/b/6.txt" in receiver.recorder.of("right"), WAIT)
    await asyncio.sleep(1)
    assert "a/5.txt" not in receiver.recorder.of("left")
    assert "a/b/6.txt" not in receiver.recorder.of("left")
    assert (
        await notifications.remove(left, namespace=NAMESPACE, name="left", credentials=ROOT)
        == Changes()
    )

    # Created again (same name, same token) before MinIO restarted: the target still runs, and
    # is written again so that the next start keeps it.
    again = await ensure(receiver, "left", left, "left-token")
    assert again == Changes(target_written=True, restarted=False, bucket_written=True)
    await put(minio, "shared", "a/7.txt")
    await wait_for_async(lambda: "a/7.txt" in receiver.recorder.of("left"), WAIT)


async def test_without_restarts_the_target_waits_for_one(
    minio: MinioServer, receiver: Receiver
) -> None:
    await make_bucket(minio, "patient")
    s3 = spec("patient", endpoint(minio))
    receiver.bind("patient", "tok")
    with pytest.raises(SourceConfigError, match="restart MinIO"):
        await ensure(receiver, "patient", s3, "tok", allow_restart=False)
    assert (await rules(minio, "patient")).queue_config_list == []
    await asyncio.to_thread(admin(minio).service_restart)  # what the message asks for
    changes = await eventually(lambda: ensure(receiver, "patient", s3, "tok", allow_restart=False))
    assert changes == Changes(target_written=True, restarted=False, bucket_written=True)
    await put(minio, "patient", "k")
    await wait_for_async(lambda: receiver.recorder.of("patient") == ["k"], WAIT)


async def test_queue_dir_keeps_failed_events_until_delivered(
    minio: MinioServer, receiver: Receiver, tmp_path: Path
) -> None:
    await make_bucket(minio, "queued")
    receiver.bind("queued", "tok")
    receiver.recorder.failures = 2
    queue_dir = str(tmp_path / "queue")
    changes = await ensure(
        receiver, "queued", spec("queued", endpoint(minio)), "tok", queue_dir=queue_dir
    )
    assert changes.restarted
    await put(minio, "queued", "retried")
    await wait_for_async(lambda: receiver.recorder.of("queued") == ["retried"], 30)
    assert receiver.recorder.failures == 0
    stored = await asyncio.to_thread(os.listdir, queue_dir)
    assert stored == [f"minio-webhook-{target_id(NAMESPACE, 'queued')}"]


async def test_wrong_or_weak_credentials_are_config_errors(
    minio: MinioServer, receiver: Receiver
) -> None:
    await make_bucket(minio, "guarded")
    s3 = spec("guarded", endpoint(minio))
    wrong = Credentials(ROOT_USER, "not-the-secret")
    with pytest.raises(SourceConfigError, match="refused the credentials"):
        await ensure(receiver, "guarded", s3, "tok", credentials=wrong)
    with pytest.raises(SourceConfigError, match="credentialsSecret is not set"):
        await ensure(receiver, "guarded", s3, "tok", credentials=None)

    root = admin(minio)
    await asyncio.to_thread(root.user_add, "app", "app-secret-123")
    await asyncio.to_thread(root.policy_set, "readwrite", "app")
    user = Credentials("app", "app-secret-123")
    with pytest.raises(SourceConfigError, match="admin:ConfigUpdate"):
        await ensure(receiver, "guarded", s3, "tok", credentials=user)


async def test_missing_bucket_is_a_config_error(minio: MinioServer, receiver: Receiver) -> None:
    with pytest.raises(SourceConfigError, match="bucket nowhere does not exist"):
        await ensure(receiver, "nowhere", spec("nowhere", endpoint(minio)), "tok")
    with pytest.raises(SourceConfigError, match="bucket name"):
        await ensure(receiver, "bad", spec("B", endpoint(minio)), "tok")
    # Deleting an EventSource whose bucket is gone: nothing left there to remove.
    gone = spec("nowhere", endpoint(minio))
    assert (
        await notifications.remove(gone, namespace=NAMESPACE, name="nowhere", credentials=ROOT)
        == Changes()
    )


async def test_receiver_minio_cannot_reach_is_transient(
    minio: MinioServer, receiver: Receiver
) -> None:
    await make_bucket(minio, "lonely")
    with pytest.raises(SourceError, match="cannot connect") as caught:
        await notifications.ensure(
            spec("lonely", endpoint(minio)),
            namespace=NAMESPACE,
            name="lonely",
            credentials=ROOT,
            url=f"http://127.0.0.1:{free_port()}/s3/team/lonely",
            token="tok",
        )
    assert not isinstance(caught.value, SourceConfigError)


async def test_unreachable_endpoint_fails_within_seconds(receiver: Receiver) -> None:
    start = time.monotonic()
    with pytest.raises(SourceError, match="cannot reach") as caught:
        await ensure(
            receiver, "x",
            spec("bucket", f"http://127.0.0.1:{free_port()}"), "tok",
        )  # fmt: skip
    assert not isinstance(caught.value, SourceConfigError)
    assert time.monotonic() - start < 5


async def test_silent_endpoint_fails_at_the_deadline(receiver: Receiver) -> None:
    """A server that accepts connections and never answers: the read timeout ends the call."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        start = time.monotonic()
        with pytest.raises(SourceError) as caught:
            await ensure(
                receiver, "x",
                spec("bucket", f"http://127.0.0.1:{silent.getsockname()[1]}"), "tok",
                limits=Limits(connect=1.0, read=1.0, retries=0),
            )  # fmt: skip
        assert not isinstance(caught.value, SourceConfigError)
        assert time.monotonic() - start < 5
