"""The RabbitMQ event source: one queue consumed over AMQP 0-9-1 (aio-pika), as a ``Source``.

Where it sits: the delivery loop calls ``receive`` / ``ack`` / ``retry`` / ``dead_letter`` on a
``RabbitMQSource`` built from an EventSource's ``rabbitmq`` block; ``depth`` feeds queue-depth
scaling. Nothing is declared: the queue (and the dead-letter queue) must exist, checked with a
passive declare; a missing one is a ``SourceConfigError``.

Receiving: ``basic.consume`` into a local buffer, not ``basic.get`` in a loop. A get is one round
trip per message and cannot wait, so a batch of N costs N round trips and an empty queue costs a
polling loop; a consumer has the broker push messages as they come, and ``receive`` waits on the
buffer. The buffer is bounded by the channel's QoS prefetch (the broker never has more than
``prefetch`` unacknowledged deliveries out on the channel; choose it at least the batch size, e.g.
``default_prefetch``). Buffered messages are unacknowledged, so a crash hands them to another
consumer, and ``depth`` adds them (and the ones received but not yet settled) to the queue's
ready count, or a queue whose messages all sit in this buffer would look empty and scale to zero.

Receive count: classic queues in 3.10 keep no delivery counter (only a ``redelivered`` flag) and
quorum queues count only returns to the queue (``x-delivery-count``). ``retry`` therefore
re-publishes a copy carrying ``x-lambdalet-receive-count`` (the count of the delivery that failed)
with a publisher confirm, and acks the original only after the confirm; a crash in between
duplicates the message, never loses it. The count of a delivery is
``header + 1 + returns``, where returns is ``x-delivery-count`` when the broker sets it and
otherwise 1 for a ``redelivered`` message (a consumer died holding it). E.g. a message retried
twice and then caught in a dropped channel: header 2, redelivered: count 2 + 1 + 1 = 4. A copy
keeps the message id (the ``message_id`` property, else a hash of the content) and the first
receive time, so both stay stable across retries.

Settling is idempotent: ``ack`` / ``retry`` / ``dead_letter`` act only on deliveries still in
flight. A copy that was not confirmed (e.g. returned: the dead-letter queue is gone) leaves its
original in flight and raises ``SourceError``; the delivery loop calls ``start`` (which reports
the missing queue) and the same step again, which publishes only what is still unsettled.

Connection: a robust connection reconnects by itself and restores the QoS and the consumer.
Deliveries of a closed channel cannot be acknowledged any more; the broker has already put them
back, so settling skips them (they come back as redelivered) and ``receive`` drops them. While
there is no consumer ``receive`` raises ``SourceError``; ``start`` waits up to the timeout for
the consumer to be restored, and otherwise connects anew.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import aio_pika
import aiormq
from aio_pika.abc import AbstractIncomingMessage, AbstractRobustChannel, AbstractRobustConnection
from yarl import URL

from lambdalet.api.eventsource import DeadLetterType
from lambdalet.dispatcher.sources.source import (
    Build,
    Message,
    Source,
    SourceConfigError,
    SourceError,
    dead_letter_target,
)

log = logging.getLogger(__name__)

RECEIVE_COUNT_HEADER = "x-lambdalet-receive-count"
FIRST_RECEIVED_HEADER = "x-lambdalet-first-received-ms"
SENDER_HEADER = "x-lambdalet-sender"
REASON_HEADER = "x-lambdalet-dead-letter-reason"
SOURCE_QUEUE_HEADER = "x-lambdalet-source-queue"
DELIVERY_COUNT_HEADER = "x-delivery-count"  # quorum queues: returns to the queue so far
OWN_PREFIX = "x-lambdalet-"
MAX_PREFETCH = 65535  # basic.qos prefetch-count is a short
REFUSED = (  # ACCESS_REFUSED at login (the "probable" one is how RabbitMQ says it) or on a queue
    aiormq.exceptions.AuthenticationError,
    aiormq.exceptions.ProbableAuthenticationError,
    aiormq.exceptions.ChannelAccessRefused,
    aiormq.exceptions.ConnectionNotAllowed,  # no access to the vhost
)
AMQP_ERRORS = (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError, OSError)


# --- the pure part: a delivery's fields in, a Message / a copy's headers out -----------------


@dataclass(frozen=True)
class Delivery:
    """What ``to_message`` needs of one AMQP delivery."""

    body: bytes
    headers: Mapping[str, object]
    redelivered: bool
    message_id: str | None = None
    timestamp_ms: int | None = None  # the timestamp property (whole seconds on the wire)
    correlation_id: str | None = None
    app_id: str | None = None
    user_id: str | None = None


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def receive_count(headers: Mapping[str, object], redelivered: bool) -> int:
    """``header + 1 + returns`` (see the module docstring)."""
    returns = headers.get(DELIVERY_COUNT_HEADER)
    returned = _count(returns) if returns is not None else int(redelivered)
    return _count(headers.get(RECEIVE_COUNT_HEADER)) + 1 + returned


def content_id(delivery: Delivery) -> str:
    """A stable id for a message without ``message_id``: a UUID-shaped hash of its content."""
    headers = sorted((k, repr(v)) for k, v in delivery.headers.items() if _is_user_header(k))
    seed = repr((headers, delivery.timestamp_ms, delivery.correlation_id, delivery.app_id))
    digest = hashlib.sha256(seed.encode() + b"\x00" + delivery.body).digest()
    return str(uuid.UUID(bytes=digest[:16]))


def _is_user_header(name: str) -> bool:
    return not name.startswith(OWN_PREFIX) and name != DELIVERY_COUNT_HEADER


def to_message(delivery: Delivery, now_ms: int, handle: object) -> Message:
    """The broker-neutral ``Message`` of a delivery first seen (buffered) at ``now_ms``."""
    headers = delivery.headers
    first = _count(headers.get(FIRST_RECEIVED_HEADER)) or now_ms
    sender = headers.get(SENDER_HEADER)
    return Message(
        id=delivery.message_id or content_id(delivery),
        body=delivery.body,
        receive_count=receive_count(headers, delivery.redelivered),
        sent_at_ms=delivery.timestamp_ms if delivery.timestamp_ms is not None else first,
        first_received_at_ms=first,
        sender=sender if isinstance(sender, str) else delivery.user_id or delivery.app_id or "",
        attributes={k: v for k, v in headers.items() if _is_user_header(k) and isinstance(v, str)},
        handle=handle,
    )


def copy_headers(message: Message, original: Mapping[str, object]) -> dict[str, object]:
    """Headers of a retry copy: the user's, plus what keeps count, first receipt and sender."""
    headers = {k: v for k, v in original.items() if _is_user_header(k)}
    headers[RECEIVE_COUNT_HEADER] = message.receive_count
    headers[FIRST_RECEIVED_HEADER] = message.first_received_at_ms
    headers[SENDER_HEADER] = message.sender
    return headers


def dead_letter_headers(
    message: Message, original: Mapping[str, object], reason: str, queue: str
) -> dict[str, object]:
    return copy_headers(message, original) | {REASON_HEADER: reason, SOURCE_QUEUE_HEADER: queue}


def default_prefetch(batch_size: int) -> int:
    """Two batches: one being handled, the next already buffered."""
    return max(1, min(2 * batch_size, MAX_PREFETCH))


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parsed = URL(url)
    return str(parsed.with_password("***")) if parsed.password else url


# --- the I/O shell --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Buffered:
    incoming: AbstractIncomingMessage
    arrived_ms: int


class RabbitMQSource:
    """One RabbitMQ queue as a ``Source``; see the module docstring for the choices."""

    def __init__(
        self,
        url: str,
        queue: str,
        *,
        dead_letter_queue: str | None,
        prefetch: int,
        arn_region: str = "us-east-1",
        arn_account: str = "000000000000",
        timeout: float = 10.0,  # deadline of every broker call, connecting included
        reconnect_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= prefetch <= MAX_PREFETCH:
            raise ValueError(f"prefetch must be within 1..{MAX_PREFETCH}, not {prefetch}")
        self._url = url
        self._queue = queue
        self._dead_letter_queue = dead_letter_queue
        self._prefetch = prefetch
        self._arn = f"arn:aws:sqs:{arn_region}:{arn_account}:{queue}"
        self._timeout = timeout
        self._reconnect_interval = reconnect_interval
        self._clock = clock
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractRobustChannel | None = None
        self._consumer_tag: str | None = None
        # At most 2 x prefetch: QoS caps the live deliveries at prefetch; the rest is room for
        # stale deliveries of a closed channel, dropped on the way out.
        self._buffer: deque[_Buffered] = deque()
        self._arrived = asyncio.Event()
        self._in_flight: set[AbstractIncomingMessage] = set()  # received, not yet settled

    @property
    def arn(self) -> str:
        return self._arn

    async def start(self) -> None:
        """Connect, check the queues exist, consume. Idempotent: waits (at most the timeout)
        for the robust connection to restore the consumer, else connects anew."""
        if self._connection is not None:
            if await self._restored():
                await self._check_queues()
                return
            log.warning("no consumer on %s after %s s; connecting anew", self._queue, self._timeout)
        await self.close()
        try:
            async with asyncio.timeout(self._timeout):
                self._connection = await aio_pika.connect_robust(
                    self._url, timeout=self._timeout, reconnect_interval=self._reconnect_interval
                )
            await self._check_queues()
            async with asyncio.timeout(self._timeout):
                channel = self._connection.channel(on_return_raises=True)
                await channel.initialize()
                await channel.set_qos(prefetch_count=self._prefetch)
                queue = await channel.declare_queue(self._queue, passive=True)
                self._consumer_tag = await queue.consume(self._on_delivery)
            self._channel = channel
        except BaseException as exc:
            await self.close()
            if isinstance(exc, SourceError):
                raise
            if isinstance(exc, (TimeoutError, *AMQP_ERRORS)):
                raise _mapped(exc, self._url) from exc
            raise

    async def _restored(self) -> bool:
        deadline = time.monotonic() + self._timeout
        while not await self._consuming():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.1)
        return True

    async def _consuming(self) -> bool:
        """Connected, the channel open and the consumer on it. After a reconnection the robust
        connection restores all three, or fails to and leaves the channel closed or the
        consumer missing while the connection looks fine: deliveries would never come."""
        connection, channel = self._connection, self._channel
        if connection is None or channel is None or not connection.connected.is_set():
            return False
        if channel.is_closed:
            return False
        try:
            async with asyncio.timeout(self._timeout):
                underlay = await channel.get_underlay_channel()
        except (TimeoutError, *AMQP_ERRORS):
            return False
        return not isinstance(underlay, aiormq.Channel) or self._consumer_tag in underlay.consumers

    async def _check_queues(self) -> None:
        for name in filter(None, (self._queue, self._dead_letter_queue)):
            await self._declare_passive(name)

    async def _declare_passive(self, name: str) -> int:
        """The queue's ready count, from a passive declare on a throwaway channel (a missing
        queue closes the channel it is declared on; not the consumer's)."""
        transport = self._connection.transport if self._connection is not None else None
        if transport is None:
            raise SourceError(f"not connected to {redacted(self._url)}")
        try:
            async with asyncio.timeout(self._timeout):
                probe = await transport.connection.channel(publisher_confirms=False)
                try:
                    declared = await probe.queue_declare(name, passive=True)
                finally:
                    if not probe.is_closed:
                        await probe.close()
        except aiormq.exceptions.ChannelNotFoundEntity as exc:
            raise SourceConfigError(
                f"queue {name!r} does not exist on {redacted(self._url)}; "
                "create it (Lambdalet declares no queues)"
            ) from exc
        except (TimeoutError, *AMQP_ERRORS) as exc:
            raise _mapped(exc, self._url) from exc
        return int(declared.message_count or 0)

    async def _on_delivery(self, incoming: AbstractIncomingMessage) -> None:
        if len(self._buffer) >= 2 * self._prefetch:
            self._buffer = deque(b for b in self._buffer if not _stale(b.incoming))
        if len(self._buffer) >= 2 * self._prefetch:  # not while QoS holds; never grow
            log.warning("receive buffer full; returning a delivery to %s", self._queue)
            await incoming.nack(requeue=True)
            return
        self._buffer.append(_Buffered(incoming, int(self._clock() * 1000)))
        self._arrived.set()

    async def receive(self, max_messages: int, wait_seconds: float) -> list[Message]:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, not {max_messages}")
        if self._connection is None:
            raise SourceError("the source is not started")
        if not await self._consuming():
            raise SourceError(f"not consuming {self._queue} on {redacted(self._url)}; reconnecting")
        items: list[_Buffered] = []
        try:
            async with asyncio.timeout(wait_seconds):
                while not items:
                    if not self._buffer:
                        self._arrived.clear()
                        await self._arrived.wait()
                    items = self._take(max_messages)
        except TimeoutError:
            return []
        self._in_flight.update(item.incoming for item in items)
        return [to_message(_delivery(i.incoming), i.arrived_ms, i.incoming) for i in items]

    def _take(self, max_messages: int) -> list[_Buffered]:
        items: list[_Buffered] = []
        while self._buffer and len(items) < max_messages:
            item = self._buffer.popleft()
            if not _stale(item.incoming):
                items.append(item)
        return items

    async def ack(self, messages: Sequence[Message]) -> None:
        for incoming in self._unsettled(messages):
            await self._settle(incoming)

    async def retry(self, messages: Sequence[Message]) -> None:
        """Re-publish copies counting this delivery (confirmed), then ack the originals."""
        await self._republish([(m, self._queue, copy_headers(m, _headers(m))) for m in messages])

    async def dead_letter(self, messages: Sequence[Message], reason: str) -> None:
        """Copies to the dead-letter queue (confirmed), then ack the originals."""
        target = self._dead_letter_queue
        if target is None:
            raise SourceConfigError("no dead-letter queue is configured")
        await self._republish(
            [
                (m, target, dead_letter_headers(m, _headers(m), reason, self._queue))
                for m in messages
            ]
        )

    async def _republish(self, copies: list[_Copy]) -> None:
        """Publish each copy with a confirm, then ack its original. A message whose copy failed
        stays in flight and the failure is raised: the delivery loop calls again, and the call
        then publishes only what is still unsettled (settling is idempotent)."""
        if self._channel is None:
            raise SourceError("the source is not started")
        exchange = self._channel.default_exchange
        unsettled = self._unsettled([message for message, _, _ in copies])
        failure: BaseException | None = None
        for group in _distinct_ids([c for c in copies if c[0].handle in unsettled]):
            outcomes = await asyncio.gather(  # confirms pipelined within a group
                *(
                    exchange.publish(_copy(m, h), routing_key=q, timeout=self._timeout)
                    for m, q, h in group
                ),
                return_exceptions=True,
            )
            for (message, _, _), outcome in zip(group, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    failure = failure or outcome
                else:
                    await self._settle(_incoming(message))
        if failure is not None:
            raise _mapped(failure, self._url) from failure

    async def _settle(self, incoming: AbstractIncomingMessage) -> None:
        """Ack one delivery, with the deadline. A channel that closed meanwhile has put the
        message back already: not an error (it comes back as redelivered)."""
        self._in_flight.discard(incoming)
        try:
            async with asyncio.timeout(self._timeout):
                await incoming.ack()
        except aiormq.exceptions.ChannelInvalidStateError:
            log.info("channel closed before the ack; the broker redelivers the message")
        except (TimeoutError, *AMQP_ERRORS) as exc:
            raise _mapped(exc, self._url) from exc

    def _unsettled(self, messages: Sequence[Message]) -> set[AbstractIncomingMessage]:
        """The messages' deliveries still ours to settle: received, not settled yet, their
        channel open (the broker has put those of a closed channel back)."""
        self._in_flight = {m for m in self._in_flight if not _stale(m)}
        return {_incoming(m) for m in messages} & self._in_flight

    async def depth(self) -> int | None:
        """Ready messages (passive declare) plus the ones this consumer holds."""
        ready = await self._declare_passive(self._queue)
        self._unsettled([])
        buffered = sum(1 for b in self._buffer if not _stale(b.incoming))
        return ready + buffered + len(self._in_flight)

    async def close(self) -> None:
        """Close the connection; the broker puts back whatever was unacknowledged."""
        connection, self._connection, self._channel = self._connection, None, None
        self._consumer_tag = None
        self._buffer.clear()
        self._in_flight.clear()
        if connection is not None:
            try:
                async with asyncio.timeout(self._timeout):
                    await connection.close()
            except (TimeoutError, *AMQP_ERRORS) as exc:
                log.info("closing the connection to %s: %r", redacted(self._url), exc)


_Copy = tuple[Message, str, dict[str, object]]  # the message, the target queue, its headers


def _distinct_ids(copies: list[_Copy]) -> list[list[_Copy]]:
    """Groups in which no two copies share a message id. aiormq matches a returned (unroutable)
    message to its publish by message id, so two such copies in flight at once could have a
    return taken for a confirm, and the original acked with its copy dropped."""
    groups: list[tuple[set[str], list[_Copy]]] = []
    for copy in copies:
        group = next((g for g in groups if copy[0].id not in g[0]), None)
        if group is None:
            group = (set(), [])
            groups.append(group)
        group[0].add(copy[0].id)
        group[1].append(copy)
    return [members for _, members in groups]


def _stale(incoming: AbstractIncomingMessage) -> bool:
    try:
        return incoming.channel.is_closed
    except aiormq.exceptions.ChannelInvalidStateError:
        return True


def _incoming(message: Message) -> AbstractIncomingMessage:
    if not isinstance(message.handle, AbstractIncomingMessage):
        raise TypeError(f"message {message.id} was not received from a RabbitMQSource")
    return message.handle


def _headers(message: Message) -> Mapping[str, object]:
    return _incoming(message).headers or {}


def _delivery(incoming: AbstractIncomingMessage) -> Delivery:
    stamp = incoming.timestamp
    return Delivery(
        body=incoming.body,
        headers=incoming.headers or {},
        redelivered=bool(incoming.redelivered),
        message_id=incoming.message_id,
        timestamp_ms=int(stamp.timestamp() * 1000) if isinstance(stamp, datetime) else None,
        correlation_id=incoming.correlation_id,
        app_id=incoming.app_id,
        user_id=incoming.user_id,
    )


def _copy(message: Message, headers: dict[str, object]) -> aio_pika.Message:
    """The original's properties with new headers and a fixed message id; without user_id,
    which the broker checks against the publishing user (the sender header keeps it)."""
    original = _incoming(message)
    return aio_pika.Message(
        message.body,
        headers=headers,  # type: ignore[arg-type]
        content_type=original.content_type,
        content_encoding=original.content_encoding,
        delivery_mode=original.delivery_mode,
        priority=original.priority,
        correlation_id=original.correlation_id,
        reply_to=original.reply_to,
        expiration=original.expiration,
        message_id=message.id,
        timestamp=original.timestamp,
        type=original.type,
        app_id=original.app_id,
    )


def _mapped(exc: BaseException, url: str) -> SourceError:
    """The one place broker errors become source errors."""
    where = redacted(url)
    if isinstance(exc, REFUSED):
        return SourceConfigError(f"{where} refused the credentials or the access: {exc!r}")
    if isinstance(exc, TimeoutError):
        return SourceError(f"{where} did not answer in time")
    return SourceError(f"{where}: {exc!r}")


async def build(request: Build) -> list[Source]:
    """One source per poller for an EventSource's ``rabbitmq``: a connection each, with its own
    prefetch of two batches."""
    block = request.spec.rabbitmq
    assert block is not None
    url = block.url
    if block.url_secret is not None:
        url = await request.secret(block.url_secret.name, block.url_secret.key)
    assert url is not None  # the schema requires url or urlSecret
    dead_letter_queue = dead_letter_target(
        request.spec.dead_letter, DeadLetterType.RABBITMQ, "a RabbitMQ"
    )
    return [
        RabbitMQSource(
            url,
            block.queue,
            dead_letter_queue=dead_letter_queue,
            prefetch=default_prefetch(request.spec.batch_size),
        )
        for _ in request.consumers
    ]
