"""NatsSource against a real nats-server with JetStream: the ``Source`` contract, message by
message. Each test gets its own server (tests/kit/servers/nats.py) and counts every message
it published: acknowledged, dead-lettered or still waiting, none lost."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client
from nats.js import api
from nats.js.client import JetStreamContext

from lambdalet.dispatcher.sources.nats import (
    HEADER_REASON,
    HEADER_RECEIVE_COUNT,
    HEADER_SEQUENCE,
    HEADER_STREAM,
    Deliveries,
    NatsSource,
    ack_wait_seconds,
    consumer_config,
    dead_letter_headers,
    subject_matches,
)
from lambdalet.dispatcher.sources.source import Message, Source, SourceConfigError, SourceError
from tests.kit.servers.nats import NatsServer, executable, running_nats

STREAM = "ORDERS"
SUBJECT = "orders.created"
CONSUMER = "lambdalet-orders"
DLQ_STREAM = "ORDERS_DLQ"
DLQ_SUBJECT = "dlq.orders"
TIMEOUT = 10.0  # seconds any single expectation may take
# A test with AckWait 1 s waits this long before it pulls the redeliveries: a pull request that
# expires just as the server redelivers makes nats-server 2.9 send a delivery count of 1 again
# (nats-server#5305), which a fresh source cannot correct (see ``Deliveries``).
AFTER_ACK_WAIT = 1.5


# --- pure parts -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "subject", "matches"),
    [
        ("orders.created", "orders.created", True),
        ("orders.created", "orders.deleted", False),
        ("orders.*", "orders.created", True),
        ("orders.*", "orders.created.eu", False),
        ("orders.>", "orders.created.eu", True),
        ("orders.>", "orders", False),
        (">", "dlq", True),
        ("*.created", "orders.created", True),
        ("orders", "orders.created", False),
    ],
)
def test_subject_matches(pattern: str, subject: str, matches: bool) -> None:
    assert subject_matches(pattern, subject) is matches


def test_ack_wait_outlasts_window_hold_and_timeout() -> None:
    assert ack_wait_seconds(function_timeout=30, batch_window=5, hold_timeout=60) == 105


def test_consumer_config_leaves_dead_lettering_to_the_dispatcher() -> None:
    config = consumer_config("c", "orders.*", 42.0)
    assert (config.durable_name, config.filter_subject, config.ack_wait) == ("c", "orders.*", 42)
    assert config.ack_policy == api.AckPolicy.EXPLICIT
    assert config.max_deliver == -1


def test_dead_letter_headers_keep_the_producers_drop_nats_own() -> None:
    message = Message(
        id="7",
        body=b"",
        receive_count=3,
        sent_at_ms=0,
        first_received_at_ms=0,
        attributes={"trace": "t1", "Nats-Msg-Id": "p-1", "Nats-Expected-Last-Sequence": "6"},
    )
    assert dead_letter_headers(message, "S", "failed") == {
        "trace": "t1",
        "Nats-Msg-Id": "S:7",
        HEADER_REASON: "failed",
        HEADER_STREAM: "S",
        HEADER_SEQUENCE: "7",
        HEADER_RECEIVE_COUNT: "3",
    }


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        # (stream seq, consumer seq, num_delivered, now) -> (first received, receive_count)
        ([(1, 1, 1, 100)], [(100, 1)]),
        ([(1, 1, 1, 100), (1, 2, 2, 200)], [(100, 1), (100, 2)]),
        ([(1, 5, 3, 300)], [(300, 3)]),  # a redelivery we never saw the first of
        # nats-server < 2.10.14 after a failed delivery: the count starts over, ours does not
        ([(1, 1, 1, 100), (1, 2, 1, 200), (1, 4, 2, 300)], [(100, 1), (100, 2), (100, 3)]),
        ([(1, 1, 1, 100), (1, 1, 1, 150)], [(100, 1), (100, 1)]),  # the same delivery again
        # bounded: the least recently received entry (2) goes
        ([(1, 1, 1, 1), (2, 2, 1, 2), (1, 3, 2, 3), (3, 4, 1, 4), (2, 5, 2, 5)],
         [(1, 1), (2, 1), (1, 2), (4, 1), (5, 2)]),
    ],
)  # fmt: skip
def test_deliveries(
    steps: list[tuple[int, int, int, int]], expected: list[tuple[int, int]]
) -> None:
    deliveries = Deliveries(limit=2)
    seen = [deliveries.note(*step) for step in steps]
    assert [(d.first_received_at_ms, d.receive_count) for d in seen] == expected
    assert len(deliveries) <= 2
    deliveries.forget(steps[-1][0])
    assert len(deliveries) == min(len({step[0] for step in steps}), 2) - 1


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    if not executable().exists():
        pytest.fail("nats-server is not installed (Debian package nats-server)", pytrace=False)
    with running_nats(tmp_path) as server:
        yield server


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    """The producer's and inspector's connection, with the ORDERS and ORDERS_DLQ streams."""
    client = await nats.connect(nats_server.url, max_reconnect_attempts=-1, reconnect_time_wait=1)
    js = client.jetstream()
    await js.add_stream(name=STREAM, subjects=["orders.>"], storage=api.StorageType.FILE)
    await js.add_stream(name=DLQ_STREAM, subjects=["dlq.>"], storage=api.StorageType.FILE)
    try:
        yield client
    finally:
        await client.close()


def new_source(
    server: NatsServer,
    *,
    stream: str = STREAM,
    subject: str | None = "orders.>",
    consumer: str = CONSUMER,
    dead_letter_subject: str | None = DLQ_SUBJECT,
    ack_wait: float = 30.0,
    retry_delay: float = 0.0,
) -> NatsSource:
    return NatsSource(
        server.url,
        stream,
        subject=subject,
        consumer=consumer,
        dead_letter_subject=dead_letter_subject,
        ack_wait=ack_wait,
        retry_delay=retry_delay,
        request_timeout=2.0,
    )


@pytest.fixture
async def source(nats_server: NatsServer, nc: Client) -> AsyncIterator[NatsSource]:
    started = new_source(nats_server)
    await started.start()
    try:
        yield started
    finally:
        await started.close()


async def publish(js: JetStreamContext, count: int, **headers: str) -> list[str]:
    """``count`` messages on SUBJECT; their stream sequences, as the source's ids."""
    ids = []
    for index in range(count):
        ack = await js.publish(SUBJECT, f"order-{index}".encode(), headers=dict(headers) or None)
        ids.append(str(ack.seq))
    return ids


async def receive_all(
    source: NatsSource, count: int, *, batch: int = 10, within: float = TIMEOUT
) -> list[Message]:
    """Receive until ``count`` messages came (at most ``batch`` a call); fail after ``within``."""
    received: list[Message] = []
    deadline = time.monotonic() + within
    while len(received) < count:
        assert time.monotonic() < deadline, f"{len(received)} of {count} messages in {within}s"
        got = await source.receive(batch, 0.5)
        assert len(got) <= batch
        received.extend(got)
    assert len(received) == count, "more messages than published"
    return received


async def stream_messages(js: JetStreamContext, stream: str) -> list[api.RawStreamMsg]:
    info = await js.stream_info(stream)
    first, last = info.state.first_seq, info.state.last_seq
    return [await js.get_msg(stream, seq) for seq in range(first, last + 1)] if last else []


# --- the contract against the real server ---------------------------------------------------


async def test_receive_then_ack_ends_every_message(nc: Client, source: NatsSource) -> None:
    protocol: Source = source  # mypy checks NatsSource against the seam
    assert protocol.arn == f"arn:aws:sqs:us-east-1:000000000000:{STREAM}"
    before_ms = int(time.time() * 1000)
    ids = await publish(nc.jetstream(), 25, trace="t-1")
    after_ms = int(time.time() * 1000)
    assert await source.depth() == 25

    received = await receive_all(source, 25, batch=10)
    assert [m.id for m in received] == ids
    assert [m.body for m in received] == [f"order-{i}".encode() for i in range(25)]
    for message in received:
        assert message.receive_count == 1
        assert before_ms - 5 <= message.sent_at_ms <= after_ms + 5
        assert message.first_received_at_ms >= message.sent_at_ms - 5
        assert message.attributes == {"trace": "t-1"}
    assert await source.depth() == 25  # in flight still counts

    await source.ack(received)
    assert await source.depth() == 0
    started = time.monotonic()
    # Without its wait, a receive of nothing would wait for ever (bounded here at 30 s).
    assert await asyncio.wait_for(source.receive(10, 0.3), 30) == []
    # Its own 0.3 s, far short of that, however busy the machine is.
    assert 0.2 < time.monotonic() - started < 15


async def test_in_flight_messages_go_to_no_other_receiver(
    nats_server: NatsServer, nc: Client, source: NatsSource
) -> None:
    await publish(nc.jetstream(), 3)
    held = await receive_all(source, 3)
    other = new_source(nats_server)
    await other.start()
    try:
        assert await other.receive(10, 0.5) == []
        await publish(nc.jetstream(), 1)
        fresh = await receive_all(other, 1)
        assert fresh[0].id not in {m.id for m in held}
        await other.ack(fresh)
    finally:
        await other.close()
    await source.ack(held)
    assert await source.depth() == 0


async def test_partial_retry_counts_up_until_acked(nc: Client, source: NatsSource) -> None:
    ids = await publish(nc.jetstream(), 6)
    first = await receive_all(source, 6)
    first_seen = {m.id: m.first_received_at_ms for m in first}
    await source.ack(first[::2])
    pending = first[1::2]
    for attempt in (2, 3):
        await source.retry(pending)
        assert await source.depth() == 3
        again = await receive_all(source, 3)
        assert sorted(m.id for m in again) == sorted(m.id for m in pending)
        assert {m.receive_count for m in again} == {attempt}
        assert all(m.first_received_at_ms == first_seen[m.id] for m in again)
        pending = again
    await source.ack(pending)
    assert await source.depth() == 0
    assert await source.receive(10, 0.3) == []
    assert sorted(m.id for m in first[::2] + pending) == sorted(ids)


async def test_the_server_never_gives_up_on_a_message(nc: Client, source: NatsSource) -> None:
    """MaxDeliver is unlimited: however often a message failed (or was lost in flight), it
    comes back for the dispatcher to dead-letter; the server never drops it silently."""
    await publish(nc.jetstream(), 1)
    counts = []
    for _ in range(8):
        message = await receive_all(source, 1)
        counts.append(message[0].receive_count)
        await source.retry(message)
    last = await receive_all(source, 1)
    assert [*counts, last[0].receive_count] == list(range(1, 10))
    await source.dead_letter(last, "gave up")
    assert await source.depth() == 0


async def test_retry_delay_holds_the_message_back(
    nats_server: NatsServer, nc: Client, source: NatsSource
) -> None:
    await source.close()
    delayed = new_source(nats_server, retry_delay=1.0)
    await delayed.start()
    try:
        await publish(nc.jetstream(), 1)
        message = (await receive_all(delayed, 1))[0]
        retried_at = time.monotonic()
        await delayed.retry([message])
        assert await delayed.receive(10, 0.5) == []
        again = await receive_all(delayed, 1)
        assert time.monotonic() - retried_at >= 0.9
        assert (again[0].id, again[0].receive_count) == (message.id, 2)
        await delayed.ack(again)
        assert await delayed.depth() == 0
    finally:
        await delayed.close()


async def test_dead_letter_after_max_retries_lands_in_the_dlq_stream(
    nc: Client, source: NatsSource
) -> None:
    """The delivery loop's decision, played here: every attempt fails, maxRetries = 2."""
    max_retries = 2
    js = nc.jetstream()
    ids = []
    for index in range(8):  # a producer's own Nats-Msg-Id must not deduplicate the dead letters
        headers = {"trace": "t-9", "Nats-Msg-Id": f"producer-{index}"}
        ids.append(str((await js.publish(SUBJECT, b"order-%d" % index, headers=headers)).seq))
    dead: list[Message] = []
    deadline = time.monotonic() + TIMEOUT
    while len(dead) < len(ids):
        assert time.monotonic() < deadline
        batch = await source.receive(5, 0.5)
        over = [m for m in batch if m.receive_count > max_retries]
        await source.retry([m for m in batch if m.receive_count <= max_retries])
        await source.dead_letter(over, "Function failed: Unhandled")
        dead.extend(over)
    assert await source.depth() == 0
    assert sorted(m.id for m in dead) == sorted(ids)

    stored = await stream_messages(js, DLQ_STREAM)
    assert len(stored) == len(ids)
    by_sequence = {m.headers[HEADER_SEQUENCE]: m for m in stored if m.headers}
    assert sorted(by_sequence) == sorted(ids)
    for message in dead:
        letter = by_sequence[message.id]
        assert letter.subject == DLQ_SUBJECT
        assert letter.data == message.body
        assert letter.headers == {
            "trace": "t-9",
            "Nats-Msg-Id": f"{STREAM}:{message.id}",
            HEADER_REASON: "Function failed: Unhandled",
            HEADER_STREAM: STREAM,
            HEADER_SEQUENCE: message.id,
            HEADER_RECEIVE_COUNT: str(max_retries + 1),
        }


async def test_dead_letter_twice_is_stored_once(
    nats_server: NatsServer, nc: Client, source: NatsSource
) -> None:
    """Two receivers (the first presumed dead after AckWait) dead-letter the same message."""
    await source.close()
    first, second = new_source(nats_server, ack_wait=1.0), new_source(nats_server, ack_wait=1.0)
    await first.start()
    await second.start()
    try:
        js = nc.jetstream()
        await publish(js, 1)
        early = await receive_all(first, 1)
        await asyncio.sleep(AFTER_ACK_WAIT)  # see AFTER_ACK_WAIT
        late = await receive_all(second, 1)
        assert (late[0].id, late[0].receive_count) == (early[0].id, 2)
        await second.dead_letter(late, "late")
        await first.dead_letter(early, "early")
        assert len(await stream_messages(js, DLQ_STREAM)) == 1
        assert await second.depth() == 0
    finally:
        await first.close()
        await second.close()


async def test_dead_letter_without_target_terminates(
    nats_server: NatsServer, nc: Client, source: NatsSource
) -> None:
    await source.close()
    dropping = new_source(nats_server, dead_letter_subject=None)
    await dropping.start()
    advisories = await nc.subscribe(
        f"$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{STREAM}.{CONSUMER}"
    )
    try:
        ids = await publish(nc.jetstream(), 3)
        await dropping.dead_letter(await receive_all(dropping, 3), "dropped")
        assert await dropping.depth() == 0
        terminated = [json.loads((await advisories.next_msg(TIMEOUT)).data) for _ in ids]
        assert sorted(str(a["stream_seq"]) for a in terminated) == sorted(ids)
        assert (await nc.jetstream().stream_info(DLQ_STREAM)).state.messages == 0
    finally:
        await advisories.unsubscribe()
        await dropping.close()


async def test_a_receiver_that_dies_mid_batch_gives_them_back_after_ack_wait(
    nats_server: NatsServer, nc: Client, source: NatsSource
) -> None:
    await source.close()
    dying, survivor = new_source(nats_server, ack_wait=1.0), new_source(nats_server, ack_wait=1.0)
    await dying.start()
    await survivor.start()
    try:
        ids = await publish(nc.jetstream(), 5)
        taken = await receive_all(dying, 5)
        await dying.close()  # no ack, no nak: the lease has to run out
        info = await nc.jetstream().consumer_info(STREAM, CONSUMER)
        assert (info.num_pending, info.num_ack_pending) == (0, 5)  # in flight, none to hand out
        await asyncio.sleep(AFTER_ACK_WAIT)
        back = await receive_all(survivor, 5)
        assert sorted(m.id for m in back) == sorted(m.id for m in taken) == sorted(ids)
        assert {m.receive_count for m in back} == {2}
        await survivor.ack(back)
        assert await survivor.depth() == 0
    finally:
        await survivor.close()


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["restart", "crash"])
async def test_server_restart_mid_stream_loses_nothing(
    nats_server: NatsServer, nc: Client, how: signal.Signals
) -> None:
    """200 messages on file storage; the server goes down with a batch in flight and one acked
    batch behind; the consumer carries on after ``start`` again. Every message ends acked once
    confirmed, except acks cut off by the restart (their messages may come back, or not)."""
    js = nc.jetstream()
    ids = await publish(js, 200)
    await nc.flush()
    await asyncio.sleep(0.2)  # the file store writes behind the PubAck; give it a moment
    source = new_source(nats_server, ack_wait=2.0)
    await source.start()
    acked: set[str] = set()
    uncertain: set[str] = set()
    received_after: set[str] = set()
    restarts = 0
    try:
        first = await source.receive(20, 1.0)
        await source.ack(first)
        acked.update(m.id for m in first)
        in_flight = await source.receive(20, 1.0)
        assert len(first) == len(in_flight) == 20
        nats_server.restart(how)

        deadline = time.monotonic() + 30
        while True:
            assert time.monotonic() < deadline, f"{len(acked)} acked, {len(uncertain)} uncertain"
            try:
                batch = await source.receive(25, 0.5)
                received_after.update(m.id for m in batch)
                if not batch and await source.depth() == 0:
                    break
                try:
                    await source.ack(batch)
                    acked.update(m.id for m in batch)
                except SourceError:
                    uncertain.update(m.id for m in batch)
            except SourceError:
                restarts += 1
                await asyncio.sleep(0.2)
                with contextlib.suppress(SourceError):
                    await source.start()
        assert acked | uncertain == set(ids)
        assert restarts >= 1, "the source never noticed the restart"
        assert {m.id for m in in_flight} <= received_after, "in flight at the restart: lost"
        assert set(ids) - {m.id for m in first} <= received_after
        assert len(uncertain - acked) <= 25
    finally:
        await source.close()


# --- start: what cannot work is a SourceConfigError with a reason ---------------------------


@pytest.mark.parametrize(
    ("stream", "subject", "consumer", "dead_letter_subject", "reason"),
    [
        ("NOPE", "orders.>", CONSUMER, DLQ_SUBJECT, "stream 'NOPE' not found"),
        (STREAM, "orders.>", CONSUMER, "nowhere.orders", "no stream stores it"),
        (STREAM, "orders.>", CONSUMER, "dlq.*", "must not contain wildcards"),
        (STREAM, "orders.>", CONSUMER, "orders.dead", "would come back to this consumer"),
        (STREAM, None, CONSUMER, "orders.dead", "would come back to this consumer"),
        (STREAM, "payments.>", CONSUMER, DLQ_SUBJECT, "filter subject"),
        (STREAM, "orders.>", "orders.c", DLQ_SUBJECT, "invalid consumer name"),
    ],
)
async def test_start_refuses_what_cannot_work(
    nats_server: NatsServer,
    nc: Client,
    stream: str,
    subject: str | None,
    consumer: str,
    dead_letter_subject: str,
    reason: str,
) -> None:
    source = new_source(
        nats_server,
        stream=stream,
        subject=subject,
        consumer=consumer,
        dead_letter_subject=dead_letter_subject,
    )
    with pytest.raises(SourceConfigError, match=reason):
        await source.start()
    with pytest.raises(SourceError, match="not started"):
        await source.depth()


async def test_dlq_in_the_same_stream_outside_the_filter_is_fine(
    nats_server: NatsServer, nc: Client
) -> None:
    source = new_source(nats_server, subject=SUBJECT, dead_letter_subject="orders.dead")
    await source.start()
    try:
        await publish(nc.jetstream(), 1)
        await source.dead_letter(await receive_all(source, 1), "no")
        assert await source.receive(10, 0.3) == []  # the dead letter is not read back
        assert await source.depth() == 0
    finally:
        await source.close()


async def test_unreachable_server_is_transient(tmp_path: Path) -> None:
    stopped = NatsServer(tmp_path)  # a free port nobody listens on
    source = NatsSource(
        stopped.url,
        STREAM,
        subject=None,
        consumer=CONSUMER,
        dead_letter_subject=None,
        ack_wait=30.0,
        request_timeout=1.0,
    )
    with pytest.raises(SourceError) as raised:
        await source.start()
    assert not isinstance(raised.value, SourceConfigError)


async def test_start_again_updates_the_consumer(
    nats_server: NatsServer, nc: Client, source: NatsSource
) -> None:
    js = nc.jetstream()
    await publish(js, 2)
    held = await receive_all(source, 2)
    changed = new_source(nats_server, ack_wait=7.0, subject=SUBJECT)
    await changed.start()
    try:
        info = await js.consumer_info(STREAM, CONSUMER)
        assert (info.config.ack_wait, info.config.filter_subject) == (7.0, SUBJECT)
        assert info.config.max_deliver == -1
        assert info.num_ack_pending == 2  # the durable kept its state
        await changed.ack(held)
        assert await changed.depth() == 0
    finally:
        await changed.close()


async def test_calls_after_the_connection_is_gone_raise_source_error(
    nats_server: NatsServer, nc: Client, source: NatsSource
) -> None:
    await publish(nc.jetstream(), 1)
    held = await receive_all(source, 1)
    nats_server.stop()
    for call in (source.receive(1, 0.2), source.ack(held), source.depth()):
        with pytest.raises(SourceError):
            await asyncio.wait_for(call, TIMEOUT)


async def test_a_fetch_whose_wait_runs_out_in_the_client_is_empty_not_a_failure(
    source: NatsSource,
) -> None:
    # nats-py raises asyncio's TimeoutError, not its own, when the wait is gone before its
    # waiting pull is sent: what a busy machine does to a short wait, done here by a tiny one.
    for _ in range(20):
        assert await source._fetch(10, 1e-6) == []
