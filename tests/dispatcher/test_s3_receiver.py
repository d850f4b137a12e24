"""The S3 notification receiver against a real MinIO, and its HTTP answers.

One MinIO per module (tests/kit/servers/minio.py) with a webhook target per test, each with
a queue_dir, all pointing at a receiver port chosen up front; each test serves the receiver on
that port with its own bindings and a recording ``invoke``. Every test uses its own bucket and
target, so an event MinIO still retries from an earlier test cannot be mistaken for a new one.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from minio.notificationconfig import NotificationConfig, QueueConfig

from lambdalet.contracts.keys import Key
from lambdalet.dispatcher.s3.events import S3Filter, encode_key
from lambdalet.dispatcher.s3.receiver import (
    Deliver,
    Reject,
    S3Binding,
    S3Receiver,
    authorised,
    prepare,
    serve,
)
from tests.kit.ports import free_port
from tests.kit.servers.minio import MinioServer, WebhookTarget, arn, running_minio
from tests.kit.wait import wait_for_async

TOKEN = "s3cr3t-token"
WRONG_TOKEN = "not-the-token"
FUNCTION: Key = ("team", "thumbnails")
ALL_EVENTS = ("s3:ObjectCreated:*", "s3:ObjectRemoved:*")
WAIT = 30.0  # seconds for MinIO to deliver (it retries every 3 s)
SAMPLE = (
    b'{"EventName":"s3:ObjectCreated:Put","Key":"b/k","Records":[{"eventVersion":"2.0",'
    b'"eventSource":"minio:s3","awsRegion":"","eventTime":"2026-02-20T10:11:12.345Z",'
    b'"eventName":"s3:ObjectCreated:Put","userIdentity":{"principalId":"u"},'
    b'"requestParameters":{"sourceIPAddress":"127.0.0.1"},"responseElements":{},'
    b'"s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"b",'
    b'"ownerIdentity":{"principalId":"u"},"arn":"arn:aws:s3:::b"},"object":{"key":"in%2Fk",'
    b'"size":1,"eTag":"e","sequencer":"1"}}}]}'
)


# --- pure decisions -----------------------------------------------------------------------

BINDING = S3Binding(FUNCTION, TOKEN, S3Filter(prefix="in/"), region="eu-west-1")


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"Bearer {TOKEN}", True),
        (None, False),
        ("", False),
        (TOKEN, False),
        (f"bearer {TOKEN}", False),
        (f"Bearer {TOKEN}x", False),
        (f"Bearer {TOKEN[:-1]}", False),
        (f"Basic {TOKEN}", False),
        ("Bearer ünïcode", False),
    ],
)
def test_authorised(header: str | None, ok: bool) -> None:
    assert authorised(BINDING, header) is ok


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"nope", Reject),
        (b'{"Records": [{}]}', Reject),
        (b'{"Records": []}', Deliver(None, 0)),
        (SAMPLE.replace(b"in%2Fk", b"out%2Fk"), Deliver(None, 0)),
        (SAMPLE, Deliver),
    ],
)
def test_prepare(body: bytes, expected: object) -> None:
    decision = prepare(BINDING, body)
    if isinstance(expected, type):
        assert isinstance(decision, expected)
    else:
        assert decision == expected
    if isinstance(decision, Deliver) and decision.payload is not None:
        (record,) = json.loads(decision.payload)["Records"]
        assert (record["awsRegion"], record["s3"]["object"]["key"]) == ("eu-west-1", "in/k")
        assert decision.count == 1


# --- the receiver over HTTP ---------------------------------------------------------------


@dataclass
class Recorder:
    """The injected ``invoke``: records payloads; fails the first ``failures`` calls."""

    failures: int = 0
    gate: asyncio.Event | None = None  # when set, invocations wait for it
    entered: int = 0  # calls begun, finished or not
    calls: list[tuple[Key, bool, dict[str, Any]]] = field(default_factory=list)
    answers: list[tuple[str, int]] = field(default_factory=list)  # (eventsource, status)

    async def invoke(self, function: Key, payload: bytes) -> bool:
        self.entered += 1
        if self.gate is not None:
            await self.gate.wait()
        ok = self.failures <= 0
        self.failures -= 1
        self.calls.append((function, ok, json.loads(payload)))
        return ok

    def records(self, bucket: str, *, ok_only: bool = True) -> list[dict[str, Any]]:
        return [
            record
            for _, ok, event in self.calls
            if ok or not ok_only
            for record in event["Records"]
            if record["s3"]["bucket"]["name"] == bucket
        ]

    def statuses(self, source: str) -> list[int]:
        return [status for name, status in self.answers if name == source]


@dataclass
class Running:
    receiver: S3Receiver
    recorder: Recorder
    url: str


Start = Callable[..., Awaitable[Running]]


@pytest.fixture
async def start_receiver(receiver_port: int) -> AsyncIterator[Start]:
    """Serve a receiver (on ``port``, default the one the MinIO targets post to)."""
    runners: list[web.AppRunner] = []

    async def start(port: int | None = None, **options: Any) -> Running:
        recorder = Recorder()
        receiver = S3Receiver(recorder.invoke, **{"invoke_timeout": 10.0, **options})

        @web.middleware
        async def record(request: web.Request, handler: Any) -> web.StreamResponse:
            response: web.StreamResponse = await handler(request)
            recorder.answers.append((request.match_info.get("name", ""), response.status))
            return response

        app = receiver.app()
        app.middlewares.append(record)
        runner, bound = await serve(app, "127.0.0.1", receiver_port if port is None else port)
        runners.append(runner)
        return Running(receiver, recorder, f"http://127.0.0.1:{bound}")

    try:
        yield start
    finally:
        for runner in runners:
            await asyncio.wait_for(runner.cleanup(), 10)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def post(
    http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str] | None = None
) -> int:
    async with http.post(url, data=body, headers=AUTH if headers is None else headers) as answer:
        return answer.status


async def test_http_answers(start_receiver: Start, http: aiohttp.ClientSession) -> None:
    running = await start_receiver(port=0, max_body=2048)
    running.receiver.bind(("team", "uploads"), BINDING)
    url = f"{running.url}/s3/team/uploads"

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x" * 1024

    assert await post(http, f"{running.url}/s3/team/other", SAMPLE) == 404
    assert await post(http, url, SAMPLE, headers={}) == 401
    assert await post(http, url, SAMPLE, {"Authorization": f"Bearer {WRONG_TOKEN}"}) == 401
    assert await post(http, url, b"x" * 2049) == 413
    assert await post(http, url, chunked()) == 413
    assert await post(http, url, b"{") == 400
    assert await post(http, url, SAMPLE.replace(b"in%2Fk", b"out%2Fk")) == 200
    assert running.recorder.calls == []
    assert await post(http, url, SAMPLE) == 200
    assert [(function, ok) for function, ok, _ in running.recorder.calls] == [(FUNCTION, True)]
    running.receiver.unbind(("team", "uploads"))
    assert await post(http, url, SAMPLE) == 404


async def test_failed_slow_and_crowded_invocations_answer_503(
    start_receiver: Start, http: aiohttp.ClientSession
) -> None:
    running = await start_receiver(port=0, invoke_timeout=0.3, max_in_flight=1)
    running.receiver.bind(("team", "uploads"), BINDING)
    url = f"{running.url}/s3/team/uploads"
    running.recorder.failures = 1
    assert await post(http, url, SAMPLE) == 503  # invoke returned False
    assert await post(http, url, SAMPLE) == 200
    running.recorder.gate = asyncio.Event()
    assert await post(http, url, SAMPLE) == 503  # no answer within invoke_timeout
    entered = running.recorder.entered
    held = asyncio.create_task(post(http, url, SAMPLE))
    await wait_for_async(lambda: running.recorder.entered == entered + 1, 5)
    assert await post(http, url, SAMPLE) == 503  # max_in_flight reached
    running.recorder.gate.set()
    assert await asyncio.wait_for(held, 5) == 200


async def test_invoke_that_raises_answers_503(
    start_receiver: Start, http: aiohttp.ClientSession
) -> None:
    async def broken(function: Key, payload: bytes) -> bool:
        raise RuntimeError("activator exploded")

    receiver = S3Receiver(broken, invoke_timeout=5)
    receiver.bind(("team", "uploads"), BINDING)
    runner, port = await serve(receiver.app(), "127.0.0.1", 0)
    try:
        assert await post(http, f"http://127.0.0.1:{port}/s3/team/uploads", SAMPLE) == 503
    finally:
        await asyncio.wait_for(runner.cleanup(), 10)


# --- against a real MinIO -----------------------------------------------------------------

TARGETS = ("shapes", "filters", "guarded", "flaky")


@pytest.fixture(scope="module")
def receiver_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def minio(tmp_path_factory: pytest.TempPathFactory, receiver_port: int) -> Iterator[MinioServer]:
    base = f"http://127.0.0.1:{receiver_port}/s3/team"
    targets = {
        name: WebhookTarget(f"{base}/{name}", WRONG_TOKEN if name == "guarded" else TOKEN)
        for name in TARGETS
    }
    with running_minio(tmp_path_factory.mktemp("minio"), targets) as server:
        yield server


async def notifying_bucket(minio: MinioServer, bucket: str, target: str) -> None:
    """A new bucket whose every created/removed event goes to ``target``."""
    client = minio.client()
    await asyncio.to_thread(client.make_bucket, bucket)
    config = NotificationConfig(
        queue_config_list=[QueueConfig(list(ALL_EVENTS), config_id=target, queue=arn(target))]
    )
    await asyncio.to_thread(client.set_bucket_notification, bucket, config)


async def put(minio: MinioServer, bucket: str, key: str, data: bytes) -> str:
    client = minio.client()
    result = await asyncio.to_thread(client.put_object, bucket, key, io.BytesIO(data), len(data))
    return str(result.etag)


async def remove(minio: MinioServer, bucket: str, key: str) -> None:
    await asyncio.to_thread(minio.client().remove_object, bucket, key)


async def test_minio_events_arrive_in_aws_shape(minio: MinioServer, start_receiver: Start) -> None:
    running = await start_receiver()
    running.receiver.bind(
        ("team", "shapes"), S3Binding(FUNCTION, TOKEN, S3Filter(events=ALL_EVENTS))
    )
    await notifying_bucket(minio, "shapes", "shapes")
    objects = {
        "in/hello world.txt": b"hello",
        "in/Grüße 1.txt": "Grüße".encode(),
        "a+b=c&d (1).txt": b"x",
        "empty.txt": b"",
    }
    etags = {key: await put(minio, "shapes", key, data) for key, data in objects.items()}
    await remove(minio, "shapes", "in/hello world.txt")

    await wait_for_async(lambda: len(running.recorder.records("shapes")) == 5, WAIT)
    records = running.recorder.records("shapes")
    assert {function for function, _, _ in running.recorder.calls} == {FUNCTION}
    by_event = {(r["eventName"], r["s3"]["object"]["key"]): r for r in records}
    assert set(by_event) == {
        ("ObjectCreated:Put", "in/hello+world.txt"),
        ("ObjectCreated:Put", "in/Gr%C3%BC%C3%9Fe+1.txt"),
        ("ObjectCreated:Put", "a%2Bb%3Dc%26d+%281%29.txt"),
        ("ObjectCreated:Put", "empty.txt"),
        ("ObjectRemoved:Delete", "in/hello+world.txt"),
    }
    for record in records:
        assert record["eventSource"] == "aws:s3"
        assert record["awsRegion"] == "us-east-1"
        assert record["requestParameters"] == {"sourceIPAddress": "127.0.0.1"}
        assert set(record["responseElements"]) == {"x-amz-request-id", "x-amz-id-2"}
        assert record["s3"]["bucket"]["arn"] == "arn:aws:s3:::shapes"
        assert "source" not in record
        assert record["eventTime"].endswith("Z")
    for key, data in objects.items():
        obj = by_event[("ObjectCreated:Put", encode_key(key))]["s3"]["object"]
        assert (obj["size"], obj["eTag"]) == (len(data), etags[key])
        assert obj["sequencer"]
    deleted = by_event[("ObjectRemoved:Delete", "in/hello+world.txt")]["s3"]["object"]
    assert set(deleted) == {"key", "sequencer"}


async def test_filters_apply_to_decoded_keys(minio: MinioServer, start_receiver: Start) -> None:
    running = await start_receiver()
    only = S3Filter(events=("s3:ObjectCreated:Put",), prefix="in/", suffix=".txt")
    running.receiver.bind(("team", "filters"), S3Binding(FUNCTION, TOKEN, only))
    await notifying_bucket(minio, "filters", "filters")
    for key in ("in/a.txt", "out/b.txt", "in/c.csv", "in/ü d.txt"):
        await put(minio, "filters", key, b"data")
    await remove(minio, "filters", "in/a.txt")
    await put(minio, "filters", "in/zz-last.txt", b"data")

    # Six events sent, each answered 200 (filtered ones without an invocation).
    await wait_for_async(lambda: running.recorder.statuses("filters").count(200) >= 6, WAIT)
    keys = [r["s3"]["object"]["key"] for r in running.recorder.records("filters")]
    assert sorted(keys) == sorted(["in/a.txt", "in/%C3%BC+d.txt", "in/zz-last.txt"])
    assert {r["eventName"] for r in running.recorder.records("filters")} == {"ObjectCreated:Put"}


async def test_wrong_token_is_refused_and_retried_until_accepted(
    minio: MinioServer, start_receiver: Start
) -> None:
    running = await start_receiver()
    running.receiver.bind(("team", "guarded"), S3Binding(FUNCTION, TOKEN))
    await notifying_bucket(minio, "guarded", "guarded")
    await put(minio, "guarded", "secret.txt", b"data")

    await wait_for_async(lambda: running.recorder.statuses("guarded").count(401) >= 2, WAIT)
    assert running.recorder.records("guarded", ok_only=False) == []
    # The target's token becomes the right one: MinIO's next retry gets through; nothing lost.
    running.receiver.bind(("team", "guarded"), S3Binding(FUNCTION, WRONG_TOKEN))
    await wait_for_async(lambda: len(running.recorder.records("guarded")) == 1, WAIT)
    assert running.recorder.records("guarded")[0]["s3"]["object"]["key"] == "secret.txt"


async def test_failed_invocation_is_redelivered(minio: MinioServer, start_receiver: Start) -> None:
    running = await start_receiver()
    running.recorder.failures = 2
    running.receiver.bind(("team", "flaky"), S3Binding(FUNCTION, TOKEN))
    await notifying_bucket(minio, "flaky", "flaky")
    await put(minio, "flaky", "retry me.txt", b"data")

    await wait_for_async(lambda: len(running.recorder.records("flaky")) == 1, WAIT)
    attempts = running.recorder.records("flaky", ok_only=False)
    assert len(attempts) == 3
    assert all(a == attempts[0] for a in attempts)  # the same event (same sequencer) each time
    assert running.recorder.statuses("flaky") == [503, 503, 200]
    # Once answered 200 it is not sent again (MinIO retries every 3 s).
    await asyncio.sleep(4)
    assert running.recorder.statuses("flaky") == [503, 503, 200]


async def test_events_wait_while_the_receiver_is_down(
    minio: MinioServer, start_receiver: Start
) -> None:
    """MinIO keeps events for an unreachable receiver in its queue_dir and sends them later."""
    await notifying_bucket(minio, "later", "shapes")
    await put(minio, "later", "queued.txt", b"data")
    await asyncio.sleep(1)  # nothing listens on the receiver port yet
    running = await start_receiver()
    running.receiver.bind(("team", "shapes"), S3Binding(FUNCTION, TOKEN))
    await wait_for_async(lambda: len(running.recorder.records("later")) == 1, WAIT)
