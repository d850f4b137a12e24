"""RabbitMQSource against a real rabbitmq-server (one node per test run; see
tests/kit/servers/rabbitmq.py).

Every test gets queues of its own (durable, random names) and counts every message it published:
each ends acknowledged, dead-lettered or still in a queue. The pure helpers are checked as tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from pamqp.common import FieldTable

from lambdalet.dispatcher.sources.rabbitmq import (
    FIRST_RECEIVED_HEADER,
    REASON_HEADER,
    RECEIVE_COUNT_HEADER,
    SOURCE_QUEUE_HEADER,
    Delivery,
    RabbitMQSource,
    content_id,
    copy_headers,
    default_prefetch,
    receive_count,
    redacted,
    to_message,
)
from lambdalet.dispatcher.sources.source import Message, SourceConfigError, SourceError
from tests.kit.ports import free_port
from tests.kit.servers.rabbitmq import RabbitBroker, publish_raw, running_rabbitmq
from tests.kit.wait import wait_for_async

WAIT = 20.0  # longest any condition is waited for
RESTART_WAIT = 90.0  # the restart test: a broker boot plus the reconnection


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitBroker]:
    with running_rabbitmq() as broker:
        yield broker
        print(f"\nrabbitmq-server boot times (s): {[round(s, 2) for s in broker.boot_seconds]}")


# --- the pure part -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "redelivered", "expected"),
    [
        ({}, False, 1),  # first delivery
        ({}, True, 2),  # a consumer died holding it; classic queues only tell "again"
        ({RECEIVE_COUNT_HEADER: 1}, False, 2),  # a retry copy
        ({RECEIVE_COUNT_HEADER: 2}, True, 4),  # retried twice, then caught in a dropped channel
        ({"x-delivery-count": 3}, True, 4),  # quorum queue: returned three times
        ({RECEIVE_COUNT_HEADER: 2, "x-delivery-count": 1}, True, 4),
        ({RECEIVE_COUNT_HEADER: "7"}, False, 1),  # not ours to trust: not a count
        ({RECEIVE_COUNT_HEADER: True}, False, 1),
        ({RECEIVE_COUNT_HEADER: -3}, False, 1),
    ],
)
def test_receive_count(headers: dict[str, object], redelivered: bool, expected: int) -> None:
    assert receive_count(headers, redelivered) == expected


def test_to_message_fields_and_a_stable_id() -> None:
    delivery = Delivery(
        body=b"{}",
        headers={"tenant": "a", "n": 1, RECEIVE_COUNT_HEADER: 1, FIRST_RECEIVED_HEADER: 5000},
        redelivered=False,
        timestamp_ms=3000,
        user_id="guest",
    )
    message = to_message(delivery, now_ms=9000, handle=None)
    assert (message.receive_count, message.sent_at_ms, message.first_received_at_ms) == (
        2,
        3000,
        5000,
    )
    assert message.attributes == {"tenant": "a"}  # string headers only, none of ours
    assert message.sender == "guest"
    assert (
        message.id
        == content_id(delivery)
        == content_id(Delivery(b"{}", {"tenant": "a", "n": 1}, True, timestamp_ms=3000))
    )
    assert message.id != content_id(
        Delivery(b"{ }", {"tenant": "a", "n": 1}, False, timestamp_ms=3000)
    )
    fresh = to_message(Delivery(b"x", {}, False, message_id="m-1"), now_ms=9000, handle=None)
    assert (fresh.id, fresh.sent_at_ms, fresh.first_received_at_ms) == ("m-1", 9000, 9000)


def test_copy_headers_drop_the_brokers_counter_and_keep_ours() -> None:
    message = Message("m", b"", receive_count=3, sent_at_ms=1, first_received_at_ms=2, sender="s")
    original = {"tenant": "a", "x-delivery-count": 2, RECEIVE_COUNT_HEADER: 1}
    assert copy_headers(message, original) == {
        "tenant": "a",
        RECEIVE_COUNT_HEADER: 3,
        FIRST_RECEIVED_HEADER: 2,
        "x-lambdalet-sender": "s",
    }


@pytest.mark.parametrize(("batch", "prefetch"), [(1, 2), (10, 20), (10000, 20000), (40000, 65535)])
def test_default_prefetch(batch: int, prefetch: int) -> None:
    assert default_prefetch(batch) == prefetch


def test_redacted_hides_the_password() -> None:
    assert redacted("amqp://u:secret@h:5672/v") == "amqp://u:***@h:5672/v"
    assert redacted("amqp://h/") == "amqp://h/"


# --- helpers of the broker tests ---------------------------------------------------------------


@dataclass
class Admin:
    """The test's own client: declares queues, publishes with confirms, counts and reads."""

    connection: AbstractRobustConnection
    channel: AbstractRobustChannel
    queues: list[str] = field(default_factory=list)

    async def declare(self, prefix: str, *, quorum: bool = False) -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        arguments: FieldTable | None = {"x-queue-type": "quorum"} if quorum else None
        await self.channel.declare_queue(name, durable=True, arguments=arguments, timeout=WAIT)
        self.queues.append(name)
        return name

    async def publish(self, queue: str, bodies: Sequence[bytes], **properties: object) -> None:
        for body in bodies:
            message = aio_pika.Message(
                body,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                **properties,  # type: ignore[arg-type]
            )
            await self.channel.default_exchange.publish(message, routing_key=queue, timeout=WAIT)

    async def count(self, queue: str) -> int:
        """Ready messages (a fresh passive declare; the robust channel caches queue objects)."""
        probe = await self.connection.channel()
        try:
            declared = await probe.declare_queue(queue, passive=True, timeout=WAIT, robust=False)
            return int(declared.declaration_result.message_count or 0)
        finally:
            await probe.close()

    async def drain(self, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Every ready message of ``queue``, acknowledged (basic.get until empty)."""
        handle = await self.channel.get_queue(queue, ensure=False)
        taken = []
        async with asyncio.timeout(WAIT):
            while (message := await handle.get(fail=False, timeout=WAIT)) is not None:
                await message.ack()
                taken.append(message)
        return taken


@pytest.fixture
async def admin(rabbitmq: RabbitBroker) -> AsyncIterator[Admin]:
    connection = await aio_pika.connect_robust(rabbitmq.url, timeout=WAIT, reconnect_interval=0.5)
    channel = await connection.channel()
    admin = Admin(connection, channel)
    try:
        yield admin
    finally:
        for name in admin.queues:
            await channel.queue_delete(name, timeout=WAIT)
        await connection.close()


Make = Callable[..., RabbitMQSource]


@pytest.fixture
async def make_source(rabbitmq: RabbitBroker) -> AsyncIterator[Make]:
    """Builds sources on the test's broker; closes what the test left open."""
    made: list[RabbitMQSource] = []

    def make(
        queue: str, *, dead_letter_queue: str | None = None, prefetch: int = 20
    ) -> RabbitMQSource:
        source = RabbitMQSource(
            rabbitmq.url, queue, dead_letter_queue=dead_letter_queue, prefetch=prefetch, timeout=5.0
        )
        made.append(source)
        return source

    yield make
    for source in made:
        await source.close()


async def collect(source: RabbitMQSource, count: int, within: float = WAIT) -> list[Message]:
    """Receive until ``count`` messages came (fails after ``within`` seconds)."""
    got: list[Message] = []
    async with asyncio.timeout(within):
        while len(got) < count:
            got += await source.receive(count - len(got), wait_seconds=1.0)
    assert len(got) == count
    return got


async def nothing_more(source: RabbitMQSource) -> None:
    assert await source.receive(100, wait_seconds=0.5) == []


# --- against the broker ------------------------------------------------------------------------


async def test_receive_then_ack(admin: Admin, make_source: Make) -> None:
    queue = await admin.declare("orders")
    sent = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    headers = {"tenant": "t1", "n": 7}
    ids = ["id-a", "id-b", "id-c"]
    for body, message_id in zip([b"a", b"b", b"c"], ids, strict=True):
        await admin.publish(queue, [body], timestamp=sent, headers=headers, message_id=message_id)
    source = make_source(queue)
    await source.start()
    got = await collect(source, 3)
    assert [(m.body, m.id) for m in got] == list(zip([b"a", b"b", b"c"], ids, strict=True))
    assert {m.receive_count for m in got} == {1}
    assert {m.sent_at_ms for m in got} == {int(sent.timestamp() * 1000)}
    assert all(m.attributes == {"tenant": "t1"} for m in got)
    assert source.arn == f"arn:aws:sqs:us-east-1:000000000000:{queue}"
    assert await source.depth() == 3  # none ready, all three held: still work to scale for
    await source.ack(got)
    await nothing_more(source)
    assert await source.depth() == 0
    await source.close()
    assert await admin.count(queue) == 0  # acked: not put back when the consumer left


async def test_receive_waits_at_most_wait_seconds_and_takes_at_most_max(
    admin: Admin, make_source: Make
) -> None:
    queue = await admin.declare("orders")
    source = make_source(queue, prefetch=5)
    await source.start()
    started = time.monotonic()
    # Without its wait, a receive of an empty queue would wait for ever (bounded here at 30 s).
    assert await asyncio.wait_for(source.receive(10, wait_seconds=0.3), 30) == []
    # Its own 0.3 s, far short of that, however busy the machine is.
    assert 0.25 < time.monotonic() - started < 15
    await admin.publish(queue, [b"%d" % i for i in range(8)])
    await wait_for_async(lambda: _depth_is(source, 8), WAIT, what="8 messages: 5 buffered, 3 ready")
    assert await admin.count(queue) == 3  # QoS: no more than the prefetch comes over
    first = await source.receive(2, wait_seconds=1.0)
    assert len(first) == 2  # at most max_messages
    second = await source.receive(10, wait_seconds=1.0)
    assert len(second) == 3  # at most what the prefetch let in, without waiting for more
    await source.ack([*first, *second])
    rest = await collect(source, 3)
    await source.ack(rest)
    assert sorted(m.body for m in [*first, *second, *rest]) == sorted(b"%d" % i for i in range(8))
    assert await source.depth() == 0


async def _depth_is(source: RabbitMQSource, expected: int) -> bool:
    return await source.depth() == expected


async def test_partial_retry_counts_up_and_keeps_ids(admin: Admin, make_source: Make) -> None:
    queue = await admin.declare("orders")
    await admin.publish(queue, [b"%d" % i for i in range(10)])
    source = make_source(queue)
    await source.start()
    batch = await collect(source, 10)
    failed = [m for m in batch if int(m.body) % 2]
    await source.retry(failed)
    await source.ack([m for m in batch if not int(m.body) % 2])
    again = await collect(source, 5)
    assert sorted(m.body for m in again) == sorted(m.body for m in failed)
    assert {m.receive_count for m in again} == {2}
    before = {m.body: m for m in failed}
    for message in again:  # the copy is the same message to the function
        assert message.id == before[message.body].id
        assert message.first_received_at_ms == before[message.body].first_received_at_ms
        assert message.sent_at_ms == before[message.body].sent_at_ms
    await source.retry(again)
    third = await collect(source, 5)
    assert {m.receive_count for m in third} == {3}
    await source.ack(third)
    await nothing_more(source)
    assert await admin.count(queue) == 0


async def test_dead_letter_after_max_retries(admin: Admin, make_source: Make) -> None:
    queue = await admin.declare("orders")
    dlq = await admin.declare("orders-dlq")
    bodies = [b"%d" % i for i in range(6)]
    await admin.publish(queue, bodies, message_id=None)
    source = make_source(queue, dead_letter_queue=dlq)
    await source.start()
    max_retries, attempts = 2, 0
    dead: list[Message] = []
    async with asyncio.timeout(WAIT):  # the delivery loop's decision, every attempt failing
        while len(dead) < len(bodies):
            batch = await source.receive(10, wait_seconds=1.0)
            attempts += len(batch)
            over = [m for m in batch if m.receive_count > max_retries]
            await source.dead_letter(over, reason="RetriesExhausted")
            await source.retry([m for m in batch if m.receive_count <= max_retries])
            dead += over
    assert attempts == len(bodies) * (max_retries + 1)
    await nothing_more(source)
    letters = await admin.drain(dlq)
    assert sorted(m.body for m in letters) == sorted(bodies)
    assert sorted(m.message_id or "" for m in letters) == sorted(m.id for m in dead)
    for letter in letters:
        headers = letter.headers or {}
        assert headers[REASON_HEADER] == "RetriesExhausted"
        assert headers[SOURCE_QUEUE_HEADER] == queue
        assert headers[RECEIVE_COUNT_HEADER] == max_retries + 1
        assert letter.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert await admin.count(queue) == 0


async def test_a_failed_dead_letter_holds_the_messages_until_called_again(
    rabbitmq: RabbitBroker, admin: Admin, make_source: Make
) -> None:
    queue = await admin.declare("orders")
    dlq = await admin.declare("orders-dlq")
    # Two copies of one message id in flight at once would let a return pass for a confirm.
    await asyncio.to_thread(publish_raw, rabbitmq.port, queue, [b"x", b"x"])
    source = make_source(queue, dead_letter_queue=dlq)
    await source.start()
    batch = await collect(source, 2)
    await admin.channel.queue_delete(dlq, timeout=WAIT)  # unroutable from now on
    with pytest.raises(SourceError):  # returned, not confirmed: the originals are kept
        await source.dead_letter(batch, reason="RetriesExhausted")
    assert await source.depth() == 2  # still in flight, not lost
    with pytest.raises(SourceConfigError, match="does not exist"):  # the loop's start() says why
        await source.start()
    await admin.channel.declare_queue(dlq, durable=True, timeout=WAIT)
    await source.start()  # the same connection and consumer: the messages are still held
    await source.dead_letter(batch, reason="RetriesExhausted")  # the step, done again
    await source.dead_letter(batch, reason="RetriesExhausted")  # settled: nothing more
    await source.ack(batch)
    assert sorted(m.body for m in await admin.drain(dlq)) == [b"x", b"x"]
    await nothing_more(source)
    assert await admin.count(queue) == 0


async def test_a_consumer_that_leaves_mid_batch_hands_its_messages_on(
    rabbitmq: RabbitBroker, admin: Admin, make_source: Make
) -> None:
    queue = await admin.declare("orders")
    await asyncio.to_thread(publish_raw, rabbitmq.port, queue, [b"%d" % i for i in range(10)])
    first = make_source(queue)
    await first.start()
    batch = await collect(first, 10)
    done, held = batch[:4], batch[4:]
    await first.ack(done)
    await first.retry(held[:1])  # retried once: will come back with 2, then be held and dropped
    retried = await collect(first, 1)
    assert retried[0].receive_count == 2
    second = make_source(queue)
    await second.start()
    await nothing_more(second)  # the first consumer still holds them
    await first.close()  # gone without acking: the broker redelivers
    back = await collect(second, 6)
    by_id = {m.id: m for m in back}
    assert set(by_id) == {m.id for m in held}  # same ids: message_id-less ones hash the same
    assert by_id[retried[0].id].receive_count == 3  # header 2 + 1 + redelivered
    assert {m.receive_count for m in back if m.id != retried[0].id} == {2}
    await second.ack(back)
    await nothing_more(second)
    assert await admin.count(queue) == 0


async def test_quorum_queue_counts_returns_with_x_delivery_count(
    admin: Admin, make_source: Make
) -> None:
    queue = await admin.declare("orders-q", quorum=True)
    await admin.publish(queue, [b"q"])
    first = make_source(queue)
    await first.start()
    assert [m.receive_count for m in await collect(first, 1)] == [1]
    await first.close()
    second = make_source(queue)
    await second.start()
    returned = await collect(second, 1)
    assert [m.receive_count for m in returned] == [2]
    await second.retry(returned)
    copy = await collect(second, 1)
    assert [m.receive_count for m in copy] == [3]
    assert copy[0].id == returned[0].id
    await second.ack(copy)
    assert await admin.count(queue) == 0


async def test_missing_queues_are_config_errors(admin: Admin, make_source: Make) -> None:
    queue = await admin.declare("orders")
    with pytest.raises(SourceConfigError, match="'no-such-queue' does not exist"):
        await make_source("no-such-queue").start()
    with pytest.raises(SourceConfigError, match="'no-such-dlq' does not exist"):
        await make_source(queue, dead_letter_queue="no-such-dlq").start()


async def test_unreachable_broker_and_bad_credentials(rabbitmq: RabbitBroker) -> None:
    def source(url: str) -> RabbitMQSource:
        return RabbitMQSource(url, "q", dead_letter_queue=None, prefetch=1, timeout=5.0)

    closed = source(f"amqp://guest:guest@127.0.0.1:{free_port()}/")
    with pytest.raises(SourceError) as refused:
        await closed.start()
    assert not isinstance(refused.value, SourceConfigError)  # transient: try again later
    wrong = source(f"amqp://guest:nope@127.0.0.1:{rabbitmq.port}/")
    with pytest.raises(SourceConfigError) as denied:
        await wrong.start()
    assert "nope" not in str(denied.value)


async def test_broker_restart_mid_stream_loses_nothing(
    rabbitmq: RabbitBroker, admin: Admin, make_source: Make
) -> None:
    queue = await admin.declare("orders")
    before = [b"before-%d" % i for i in range(600)]
    after = [b"after-%d" % i for i in range(100)]
    everything = set(before + after)
    await admin.publish(queue, before)
    source = make_source(queue)
    await source.start()
    # What the Function was given, and the acks the loop saw succeed. An ack sent just as the
    # broker went may have reached it although the call failed (AMQP acks are not answered):
    # whether a message was acked is read from the broker at the end, not from these.
    handled: list[bytes] = []
    acked: list[bytes] = []
    redelivered: list[bytes] = []  # handed out again: the broker went while they were ours
    errors: list[int] = []  # distinct acks at each SourceError
    # Invocations wait while the broker restarts, so it goes mid-stream however fast the
    # stream runs: the consumer holds a batch (and its prefetched deliveries) meanwhile.
    flowing = asyncio.Event()
    flowing.set()

    async def deliver() -> None:  # the delivery loop, every invocation succeeding
        while True:
            try:
                batch = await source.receive(10, wait_seconds=0.5)
                await flowing.wait()
                await asyncio.sleep(0.1)  # the invocation: the batch is held in flight meanwhile
                handled.extend(m.body for m in batch)
                redelivered.extend(m.body for m in batch if m.receive_count > 1)
                await source.ack(batch)
                acked.extend(m.body for m in batch)
            except SourceError:
                errors.append(len(set(acked)))
                await asyncio.sleep(0.2)
                with contextlib.suppress(SourceError):
                    await source.start()

    async def settled() -> bool:
        """Every message handled, and nothing ready, buffered or in flight any more."""
        if not set(handled) >= everything:
            return False
        try:
            return await source.depth() == 0
        except SourceError:  # reconnecting
            return False

    loop = asyncio.create_task(deliver())
    try:
        await wait_for_async(lambda: _more_than(acked, 50), WAIT, what="the stream to get going")
        flowing.clear()
        await asyncio.to_thread(rabbitmq.restart)
        went_after = len(set(acked))
        async with asyncio.timeout(WAIT):
            await admin.channel.ready()  # reconnected and restored
        flowing.set()
        await admin.publish(queue, after)
        deadline = time.monotonic() + RESTART_WAIT
        while not await settled():
            if time.monotonic() > deadline:
                missing = len(everything - set(handled))
                ready = await admin.count(queue)
                pytest.fail(f"{missing} never handled; {ready} ready in the queue; {errors=}")
            await asyncio.sleep(0.1)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert went_after < len(before)  # it went mid-stream
    assert redelivered, "nothing the consumer held came back: the broker did not go under it"
    assert set(handled) == everything  # every message reached the Function (some twice)
    # And every one was acked at the broker: with this consumer gone, whatever it still held
    # unacknowledged would be ready again.
    await source.close()
    assert await admin.count(queue) == 0
    print(
        f"\nrestart: {len(handled)} deliveries of {len(everything)} messages, {len(acked)} acks "
        f"seen; the broker went after {went_after}; {len(redelivered)} redelivered; "
        f"{len(errors)} SourceErrors"
    )


async def _more_than(items: list[bytes], count: int) -> bool:
    return len(items) > count


async def test_messages_without_message_id_get_content_ids(
    rabbitmq: RabbitBroker, admin: Admin, make_source: Make
) -> None:
    queue = await admin.declare("orders")
    bodies = [b"same", b"same", b"other"]  # identical content: one id, both still delivered
    await asyncio.to_thread(publish_raw, rabbitmq.port, queue, bodies, {"tenant": "t1"})
    source = make_source(queue)
    await source.start()
    got = await collect(source, 3)
    assert got[0].id == got[1].id != got[2].id
    assert all(m.attributes == {"tenant": "t1"} for m in got)
    assert all(m.sent_at_ms == m.first_received_at_ms for m in got)  # no timestamp: first seen
    await source.retry(got)  # two copies with one id: published one after the other
    again = await collect(source, 3)
    # Each copy keeps its own first-seen time: the two "same" ones may differ (seen in different
    # milliseconds), so they are compared as a multiset, not looked up by body.
    assert sorted((m.body, m.id, m.receive_count, m.first_received_at_ms) for m in again) == sorted(
        (m.body, m.id, 2, m.first_received_at_ms) for m in got
    )
    await source.ack(again)
    await nothing_more(source)
    assert await admin.count(queue) == 0
