"""SqsSource against a real ElasticMQ (one JVM per test run; see tests/kit/servers/elasticmq.py).

Every test makes queues of its own (random names) and counts every message it sent: each ends
deleted, dead-lettered, or is checked to be still in a queue. The pure helpers are tables.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import botocore.session  # type: ignore[import-untyped]
import pytest

from lambdalet.api.eventsource import DeadLetter, DeadLetterType, Sqs
from lambdalet.contracts.invocation import InvokeResult
from lambdalet.dispatcher.delivery.loop import Delivery, DeliverySettings
from lambdalet.dispatcher.delivery.outcome import Answer, Policy
from lambdalet.dispatcher.sources.source import Message, SourceConfigError, SourceError
from lambdalet.dispatcher.sources.sqs import (
    MAX_ATTRIBUTES,
    MAX_BATCH_BYTES,
    Credentials,
    SqsConfig,
    SqsSource,
    arn_of,
    chunks,
    dead_letter_entry,
    message_of,
    visibility_timeout,
)
from tests.kit.invokers import Call, RecordingInvoker
from tests.kit.servers.elasticmq import ElasticMQ, running_elasticmq
from tests.kit.wait import wait_for_async

WAIT = 30.0  # longest any condition is waited for
KEYS = Credentials("test", "test")  # ElasticMQ takes any


@pytest.fixture(scope="session")
def elasticmq() -> Iterator[ElasticMQ]:
    with running_elasticmq() as server:
        yield server
        print(f"\nElasticMQ boot times (s): {[round(s, 2) for s in server.boot_seconds]}")


@dataclass
class Queues:
    """The test's queues, through a plain botocore client (the test's own view)."""

    server: ElasticMQ
    client: Any
    main: str = ""
    dlq: str = ""

    def make(self, name: str) -> str:
        url: str = self.client.create_queue(QueueName=name)["QueueUrl"]
        return url

    def send(self, count: int, prefix: str = "m", **extra: Any) -> list[str]:
        ids: list[str] = []
        for start in range(0, count, 10):
            entries = [
                {"Id": str(n), "MessageBody": f"{prefix}{n}", **extra}
                for n in range(start, min(count, start + 10))
            ]
            reply = self.client.send_message_batch(QueueUrl=self.main, Entries=entries)
            assert not reply.get("Failed"), reply
            ids += [
                ok["MessageId"] for ok in sorted(reply["Successful"], key=lambda e: int(e["Id"]))
            ]
        return ids

    def counts(self, url: str) -> tuple[int, int]:
        """(visible, in flight) of a queue."""
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        got = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return int(got[names[0]]), int(got[names[1]])

    def drain(self, url: str) -> list[dict[str, Any]]:
        """Every visible message of a queue, deleted."""
        out: list[dict[str, Any]] = []
        while True:
            reply = self.client.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = reply.get("Messages", [])
            if not messages:
                return out
            out += messages
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            self.client.delete_message_batch(QueueUrl=url, Entries=entries)

    def source(self, visibility: int = 60, **config: Any) -> SqsSource:
        values: dict[str, Any] = {
            "queue_url": self.main,
            "visibility_timeout": visibility,
            "endpoint": self.server.endpoint,
            "dead_letter_url": self.dlq,
        }
        values.update(config)
        return SqsSource(SqsConfig(**values), KEYS)


def admin_client(server: ElasticMQ) -> Any:
    return botocore.session.get_session().create_client(
        "sqs",
        region_name="us-east-1",
        endpoint_url=server.endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture
def queues(elasticmq: ElasticMQ) -> Iterator[Queues]:
    client = admin_client(elasticmq)
    made = Queues(elasticmq, client)
    name = f"q-{uuid.uuid4().hex[:12]}"
    made.main, made.dlq = made.make(name), made.make(f"{name}-dlq")
    yield made
    client.close()


@pytest.fixture
async def source(queues: Queues) -> AsyncIterator[SqsSource]:
    built = queues.source()
    await built.start()
    yield built
    await built.close()


async def receive_all(source: SqsSource, count: int, limit: float = WAIT) -> list[Message]:
    """Receive until ``count`` messages came (bounded by ``limit``)."""
    out: list[Message] = []
    deadline = time.monotonic() + limit
    while len(out) < count:
        assert time.monotonic() < deadline, f"received {len(out)} of {count} in {limit} s"
        got = await source.receive(count - len(out), 2)
        assert len(got) <= count - len(out)
        out += got
    return out


# --- the pure part -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("held", "expected"),
    [(98.0, 128), (0.0, 30), (0.4, 31), (50_000.0, 43_200), (-100.0, 0)],
)
def test_visibility_timeout(held: float, expected: int) -> None:
    assert visibility_timeout(held) == expected


@pytest.mark.parametrize(
    ("url", "arn"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/orders", "123456789012:orders"),
        ("http://127.0.0.1:9324/000000000000/orders.fifo", "000000000000:orders.fifo"),
        ("http://elasticmq:9324/queue/orders", "queue:orders"),
        ("http://elasticmq:9324/orders", "000000000000:orders"),
    ],
)
def test_arn_of(url: str, arn: str) -> None:
    assert arn_of(url, "eu-west-1") == f"arn:aws:sqs:eu-west-1:{arn}"


def test_message_of_maps_system_and_message_attributes() -> None:
    raw = {
        "MessageId": "id-1",
        "ReceiptHandle": "rh",
        "Body": "héllo",
        "Attributes": {
            "ApproximateReceiveCount": "3",
            "SentTimestamp": "1000",
            "ApproximateFirstReceiveTimestamp": "2000",
            "SenderId": "AIDA",
        },
        "MessageAttributes": {
            "s": {"DataType": "String", "StringValue": "x"},
            "n": {"DataType": "Number.int", "StringValue": "5"},
            "b": {"DataType": "Binary.png", "BinaryValue": b"\x00\xff"},
        },
    }
    message = message_of(raw, now_ms=9000)
    assert (message.id, message.body, message.receive_count) == ("id-1", "héllo".encode(), 3)
    assert (message.sent_at_ms, message.first_received_at_ms, message.sender) == (
        1000,
        2000,
        "AIDA",
    )
    assert message.attributes == {"s": "x", "n": "5", "b": base64.b64encode(b"\x00\xff").decode()}
    bare = message_of({"MessageId": "i", "ReceiptHandle": "r", "Body": ""}, now_ms=9000)
    assert (bare.receive_count, bare.sent_at_ms, bare.first_received_at_ms) == (1, 9000, 9000)


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ([1] * 25, [10, 10, 5]),
        ([MAX_BATCH_BYTES // 2] * 3, [2, 1]),
        ([MAX_BATCH_BYTES + 1, 1], [1, 1]),  # too large alone: sent alone, the server judges
        ([], []),
    ],
)
def test_chunks_by_count_and_bytes(sizes: list[int], expected: list[int]) -> None:
    assert [len(batch) for batch in chunks(sizes, lambda n: n)] == expected


@pytest.mark.parametrize(("user", "ours"), [(0, 4), (7, 3), (9, 1), (10, 0)])
def test_dead_letters_never_drop_user_attributes(user: int, ours: int) -> None:
    attributes = {f"a{n}": {"DataType": "String", "StringValue": str(n)} for n in range(user)}
    raw = {"MessageId": "i", "ReceiptHandle": "r", "Body": "b", "MessageAttributes": attributes}
    entry = dead_letter_entry(message_of(raw, 0), "0", "too many", "arn:x")
    got = entry.get("MessageAttributes", {})
    assert len(got) == min(MAX_ATTRIBUTES, user + 4)
    assert set(attributes) <= set(got)
    assert sum(name.startswith("lambdalet.") for name in got) == ours
    if ours:
        assert got["lambdalet.reason"]["StringValue"] == "too many"


# --- the Source contract on ElasticMQ -------------------------------------------------------


async def test_missing_queues_are_config_errors(queues: Queues) -> None:
    missing = queues.server.queue_url("no-such-queue")
    for source in (queues.source(queue_url=missing), queues.source(dead_letter_url=missing)):
        with pytest.raises(SourceConfigError, match="does not exist"):
            await source.start()
        await source.close()
    with pytest.raises(SourceError, match="not started"):
        await queues.source().receive(1, 0)


async def test_receive_maps_fields_and_ack_deletes(queues: Queues, source: SqsSource) -> None:
    before = int(time.time() * 1000)
    ids = queues.send(
        3,
        MessageAttributes={
            "tenant": {"DataType": "String", "StringValue": "a"},
            "n": {"DataType": "Number", "StringValue": "7"},
            "raw": {"DataType": "Binary", "BinaryValue": b"\x01\x02"},
        },
    )
    got = await receive_all(source, 3)
    assert sorted(m.id for m in got) == sorted(ids)
    for message in got:
        assert message.receive_count == 1
        assert before - 1000 <= message.sent_at_ms <= message.first_received_at_ms
        assert message.sender  # ElasticMQ: the client address
        assert message.attributes == {"tenant": "a", "n": "7", "raw": "AQI="}
    assert sorted(m.body for m in got) == [b"m0", b"m1", b"m2"]
    assert await source.depth() == 3  # in flight counts
    await source.ack(got)
    assert queues.counts(queues.main) == (0, 0)
    assert await source.receive(10, 0) == []
    assert await source.depth() == 0


async def test_a_receive_waits_at_most_its_wait(source: SqsSource) -> None:
    started = time.monotonic()
    assert await source.receive(10, 1.5) == []
    # Its own wait, far short of the longest long poll (20 s), however busy the machine is.
    assert 0.9 <= time.monotonic() - started < 12


async def test_a_waiting_receive_returns_when_a_message_comes(
    queues: Queues, source: SqsSource
) -> None:
    task = asyncio.create_task(source.receive(10, 20))
    await asyncio.sleep(0.5)
    started = time.monotonic()
    queues.send(1)
    got = await asyncio.wait_for(task, WAIT)
    assert len(got) == 1
    # Returned for the message, not at the end of its 20 s wait (by far, however busy the
    # machine is).
    assert time.monotonic() - started < 10
    await source.ack(got)


async def test_batches_larger_than_ten(queues: Queues, source: SqsSource) -> None:
    ids = queues.send(25)
    got = await receive_all(source, 25)
    assert sorted(m.id for m in got) == sorted(ids)  # each once: none lost, none twice
    assert queues.counts(queues.main) == (0, 25)
    await source.ack(got)
    assert queues.counts(queues.main) == (0, 0)


async def test_partial_retry_counts_receives(queues: Queues, source: SqsSource) -> None:
    ids = queues.send(4)
    first = await receive_all(source, 4)
    retried, done = first[:2], first[2:]
    await source.retry(retried)
    await source.ack(done)
    again = await receive_all(source, 2, limit=10)  # visibility 0: back at once
    assert sorted(m.id for m in again) == sorted(m.id for m in retried)
    by_id = {m.id: m for m in retried}
    for message in again:
        assert message.receive_count == 2
        assert message.first_received_at_ms == by_id[message.id].first_received_at_ms
        assert message.body == by_id[message.id].body
    await source.ack(again)
    assert sorted({m.id for m in first} | {m.id for m in again}) == sorted(ids)
    assert queues.counts(queues.main) == (0, 0)


async def test_dead_letters_carry_body_attributes_and_why(
    queues: Queues, source: SqsSource
) -> None:
    max_retries = 2
    attrs = {"raw": {"DataType": "Binary", "BinaryValue": b"\x00"}}
    (sent,) = queues.send(1, MessageAttributes=attrs)
    for attempt in range(1, max_retries + 2):  # the first try and two retries fail
        (message,) = await receive_all(source, 1, limit=10)
        assert message.receive_count == attempt
        if attempt <= max_retries:
            await source.retry([message])
    await source.dead_letter([message], "failed 3 times")
    await source.dead_letter([message], "failed 3 times")  # the loop may do a step again

    assert queues.counts(queues.main) == (0, 0)
    (letter,) = queues.drain(queues.dlq)  # exactly one copy
    assert letter["Body"] == "m0"
    got = letter["MessageAttributes"]
    assert got["raw"] == {"DataType": "Binary", "BinaryValue": b"\x00"}  # typed, as sent
    assert got["lambdalet.reason"]["StringValue"] == "failed 3 times"
    assert got["lambdalet.messageId"]["StringValue"] == sent
    assert got["lambdalet.receiveCount"]["StringValue"] == "3"
    assert got["lambdalet.sourceArn"]["StringValue"] == source.arn


async def test_a_consumer_that_dies_mid_batch_gives_its_messages_back(queues: Queues) -> None:
    ids = queues.send(5)
    dying = queues.source(visibility=2)
    other = queues.source(visibility=60)
    await dying.start()
    await other.start()
    try:
        held = await receive_all(dying, 5)
        await dying.ack(held[:2])  # it settled part of the batch, then died
        assert await other.receive(10, 0) == []  # the rest is invisible for now
        back = await receive_all(other, 3, limit=15)  # visibility timeout (2 s) expired
        assert sorted(m.id for m in back) == sorted(m.id for m in held[2:])
        assert all(m.receive_count == 2 for m in back)
        await dying.ack(held[2:])  # stale receipts: no longer its to settle; not an error
        assert queues.counts(queues.main) == (0, 3)  # still there, held by the other
        await other.ack(back)
        assert queues.counts(queues.main) == (0, 0)
        assert sorted(m.id for m in held) == sorted(ids)
    finally:
        await dying.close()
        await other.close()


async def test_a_cancelled_receive_gives_its_messages_back(
    queues: Queues, source: SqsSource
) -> None:
    task = asyncio.create_task(source.receive(10, 8))
    await asyncio.sleep(0.5)  # the long poll is on the server now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (sent,) = queues.send(1)  # the abandoned poll takes it (visibility 60 s) ...
    got = await receive_all(source, 1, limit=15)  # ... and makes it visible again at once
    assert [m.id for m in got] == [sent]
    assert got[0].receive_count == 2
    await source.ack(got)
    assert queues.counts(queues.main) == (0, 0)


async def test_no_dead_letter_target_and_wrong_kind(queues: Queues) -> None:
    source = queues.source(dead_letter_url=None)
    await source.start()
    try:
        with pytest.raises(SourceConfigError):
            await source.dead_letter([], "x")
    finally:
        await source.close()
    spec = Sqs(queue_url=queues.main, endpoint=queues.server.endpoint, region="eu-west-1")
    with pytest.raises(SourceConfigError, match="sqs queue URL"):
        SqsSource.from_spec(
            spec,
            visibility_timeout=60,
            dead_letter=DeadLetter(type=DeadLetterType.RABBITMQ, target="dlq"),
        )


async def test_from_spec(queues: Queues) -> None:
    (sent,) = queues.send(1)
    spec = Sqs(queue_url=queues.main, endpoint=queues.server.endpoint, region="eu-west-1")
    source = SqsSource.from_spec(
        spec,
        visibility_timeout=60,
        credentials=KEYS,
        dead_letter=DeadLetter(type=DeadLetterType.SQS, target=queues.dlq),
    )
    await source.start()
    try:
        got = await receive_all(source, 1)
        assert [m.id for m in got] == [sent]
        await source.ack(got)
    finally:
        await source.close()
    assert source.arn == f"arn:aws:sqs:eu-west-1:000000000000:{queues.main.rsplit('/', 1)[1]}"


async def test_an_unreachable_server_is_a_source_error(queues: Queues) -> None:
    source = queues.source(endpoint="http://127.0.0.1:9")  # discard port: nothing listens
    try:
        with pytest.raises(SourceError):
            await asyncio.wait_for(source.start(), WAIT)
    finally:
        await source.close()


# --- the delivery loop on ElasticMQ ------------------------------------------------------------


def fail_marked(call: Call) -> Answer:
    """The Function in the test: fails the records whose body starts with "fail"."""
    failed = [
        {"itemIdentifier": r["messageId"]} for r in call.records if r["body"].startswith("fail")
    ]
    return InvokeResult(200, json.dumps({"batchItemFailures": failed}).encode(), "r")


@contextlib.asynccontextmanager
async def running(delivery: Delivery) -> AsyncIterator[None]:
    task = asyncio.create_task(delivery.run())
    try:
        yield
    finally:
        delivery.stop()
        try:
            await asyncio.wait_for(task, WAIT)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_delivery_dead_letters_after_max_retries(queues: Queues) -> None:
    good = queues.send(12, prefix="ok")
    bad = queues.send(3, prefix="fail")
    function = RecordingInvoker(fail_marked)
    settings = DeliverySettings(
        ("team", "orders"),
        batch_size=10,
        receive_wait=1.0,
        policy=Policy(max_retries=2, dead_letter=True, report_batch_item_failures=True),
    )
    delivery = Delivery(queues.source(), function, settings)

    async def settled() -> bool:
        return queues.counts(queues.main) == (0, 0) and queues.counts(queues.dlq)[0] == 3

    async with running(delivery):
        await wait_for_async(settled, WAIT, what="every message acked or dead-lettered")

    seen: dict[str, list[int]] = {}
    for records in function.events:
        for record in records:
            count = int(record["attributes"]["ApproximateReceiveCount"])
            seen.setdefault(record["messageId"], []).append(count)
    assert all(seen[i] == [1] for i in good)
    assert all(seen[i] == [1, 2, 3] for i in bad)  # first try + max_retries, then dead letter
    letters = queues.drain(queues.dlq)
    assert sorted(
        m["MessageAttributes"]["lambdalet.messageId"]["StringValue"] for m in letters
    ) == sorted(bad)
    assert (delivery.stats.acked, delivery.stats.dead_lettered) == (12, 3)


# --- restarts ------------------------------------------------------------------------------------


async def test_a_durable_server_restart_loses_nothing() -> None:
    """ElasticMQ keeps queues and messages across a restart only with its persistence on (queue
    file + H2); the default in-memory server loses them all."""
    with running_elasticmq(durable=True) as server:
        client = admin_client(server)
        try:
            queues = Queues(server, client)
            queues.main, queues.dlq = queues.make("durable"), queues.make("durable-dlq")
            ids = queues.send(5)
            source = queues.source(visibility=300)
            await source.start()
            held = await receive_all(source, 2)
            server.stop()
            with pytest.raises(SourceError):
                await source.receive(10, 0)  # the server is down: a source error, nothing else
            await asyncio.to_thread(server.start)
            await source.start()
            assert await source.depth() == 5  # 3 waiting, 2 in flight: kept
            rest = await receive_all(source, 3)
            await source.ack([*held, *rest])  # receipts from before the restart still work
            assert queues.counts(queues.main) == (0, 0)
            assert sorted(m.id for m in [*held, *rest]) == sorted(ids)
            await source.close()
        finally:
            client.close()
        print(f"\ndurable ElasticMQ boot times (s): {[round(s, 2) for s in server.boot_seconds]}")
