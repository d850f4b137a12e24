"""NATS JetStream as a queue source: one durable pull consumer on one stream.

Where it sits: the delivery loop (``delivery``) calls ``NatsSource.receive`` for a batch, and
``ack`` / ``retry`` / ``dead_letter`` with what ``outcome`` decided; nothing else here knows about
NATS. The decisions that make it at-least-once:

* **AckWait** is how long a received message stays in flight before the server hands it out
  again. It must outlast everything between ``receive`` and the answer: the batch window, the
  activator's cold-start hold, the Function's timeout (``ack_wait_seconds``).
* **MaxDeliver is -1** (unlimited). Past MaxDeliver the server silently stops delivering a
  message: it stays in the stream, never dead-lettered. ``maxRetries`` is the dispatcher's
  decision on ``receive_count`` instead; a message that was lost in flight on its last attempt
  (dispatcher crash, AckWait ran out) comes back once more with ``receive_count`` above
  ``maxRetries + 1``, to be dead-lettered then.
* **Acks are requests**: ``+ACK``, ``-NAK`` and ``+TERM`` are sent with a reply subject, and the
  server answers once the consumer has applied them. A fire-and-forget ack lost with a connection
  would be a silent duplicate; this way ``ack`` returns only when the message is done, and
  raises ``SourceError`` otherwise.
* **Dead letters** are published with JetStream (the PubAck says a stream stored them) before
  the original is acked. Their ``Nats-Msg-Id`` is ``<stream>:<sequence>``, so when a crash in
  between makes us dead-letter the same message again, the dead-letter stream drops the copy
  (within its duplicate window, two minutes by default). ``start`` refuses a dead-letter subject
  that no stream stores, or that this consumer would read back.
* **No client-side reconnect**: a lost connection closes the client; calls then raise
  ``SourceError`` and the loop calls ``start`` again, which always builds a fresh connection and
  subscription. Messages that were in flight come back after AckWait.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import api
from nats.js.client import JetStreamContext

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

ACK_WAIT_SLACK = 10.0  # seconds on top of the worst case: network, the invoker's own overhead
CONCURRENCY = 64  # acknowledgements / dead-letter publishes in flight at once
MIN_FETCH_WAIT = 0.05  # seconds; a pull request needs a positive expiry
TRACKED_LIMIT = 10_000  # messages whose deliveries are remembered (those in flight, in practice)

# Headers a dead letter carries, besides the original message's own.
HEADER_REASON = "Lambdalet-Dead-Letter-Reason"
HEADER_STREAM = "Lambdalet-Source-Stream"
HEADER_SEQUENCE = "Lambdalet-Source-Sequence"
HEADER_RECEIVE_COUNT = "Lambdalet-Receive-Count"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ack_wait_seconds(*, function_timeout: float, batch_window: float, hold_timeout: float) -> float:
    """The AckWait of a consumer: the longest a message can be in flight, plus slack.

    A message received first in a batch waits out the window, then the activator may hold the
    invocation while an instance starts, then the Function runs to its timeout. E.g. a 30 s
    timeout, a 5 s window and a 60 s hold: 5 + 60 + 30 + 10 = 105 s.
    """
    return batch_window + hold_timeout + function_timeout + ACK_WAIT_SLACK


def consumer_config(name: str, subject: str | None, ack_wait: float) -> api.ConsumerConfig:
    """The durable pull consumer ``start`` creates, or updates to (see the module docstring)."""
    return api.ConsumerConfig(
        name=name,
        durable_name=name,
        deliver_policy=api.DeliverPolicy.ALL,
        ack_policy=api.AckPolicy.EXPLICIT,
        ack_wait=ack_wait,
        max_deliver=-1,
        filter_subject=subject,
    )


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether the literal ``subject`` falls under ``pattern`` ('*' one token, '>' the rest)."""
    want, have = pattern.split("."), subject.split(".")
    for index, token in enumerate(want):
        if token == ">":
            return len(have) > index
        if index >= len(have) or (token != "*" and token != have[index]):
            return False
    return len(want) == len(have)


def to_message(msg: Msg, delivery: Delivery) -> Message:
    """A JetStream delivery as a ``Message``; its reply subject carries the metadata."""
    meta = msg.metadata
    return Message(
        id=str(meta.sequence.stream),
        body=msg.data,
        receive_count=delivery.receive_count,
        sent_at_ms=(meta.timestamp - _EPOCH) // timedelta(milliseconds=1),
        first_received_at_ms=delivery.first_received_at_ms,
        attributes=dict(msg.headers or {}),
        handle=msg,
    )


def dead_letter_headers(message: Message, stream: str, reason: str) -> dict[str, str]:
    """The original headers without NATS' own (an expected-sequence header would make the
    publish fail), plus where the message came from and why it is here."""
    own = {k: v for k, v in message.attributes.items() if not k.lower().startswith("nats-")}
    return own | {
        "Nats-Msg-Id": f"{stream}:{message.id}",
        HEADER_REASON: reason,
        HEADER_STREAM: stream,
        HEADER_SEQUENCE: message.id,
        HEADER_RECEIVE_COUNT: str(message.receive_count),
    }


@dataclass(frozen=True)
class Delivery:
    """What this source saw of one message: its first delivery and its latest."""

    first_received_at_ms: int  # JetStream does not record it
    delivery_sequence: int  # the consumer's sequence of the latest delivery
    receive_count: int


class Deliveries:
    """The messages this source received and has not finished, by stream sequence; bounded,
    the least recently received go first.

    Why: JetStream has no first-delivery time, and nats-server before 2.10.14 can send a
    redelivery with a delivery count of 1 again after a delivery to an expired pull request
    failed (nats-server#5305, #5338; Debian's 2.9 has it). A new delivery (a new consumer
    sequence) of a message seen before counts at least one more than last time, so
    ``receive_count`` never goes backwards while this source runs.
    """

    def __init__(self, limit: int = TRACKED_LIMIT) -> None:
        self._limit = limit
        self._seen: dict[int, Delivery] = {}

    def note(
        self, sequence: int, delivery_sequence: int, num_delivered: int, now_ms: int
    ) -> Delivery:
        known = self._seen.pop(sequence, None)
        if known is None:
            seen = Delivery(now_ms, delivery_sequence, num_delivered)
        else:
            again = int(delivery_sequence != known.delivery_sequence)
            count = max(num_delivered, known.receive_count + again)
            seen = Delivery(known.first_received_at_ms, delivery_sequence, count)
        if len(self._seen) >= self._limit:
            del self._seen[next(iter(self._seen))]
        self._seen[sequence] = seen
        return seen

    def forget(self, sequence: int) -> None:
        self._seen.pop(sequence, None)

    def clear(self) -> None:
        self._seen.clear()

    def __len__(self) -> int:
        return len(self._seen)


class NatsSource:
    """A ``Source`` reading ``stream`` through the durable pull consumer ``consumer``."""

    def __init__(
        self,
        url: str,
        stream: str,
        *,
        subject: str | None,
        consumer: str,
        dead_letter_subject: str | None,
        ack_wait: float,
        retry_delay: float = 0.0,
        request_timeout: float = 5.0,
        arn: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._url = url
        self._servers = url.split(",")
        self._stream = stream
        self._subject = subject
        self._consumer = consumer
        self._dead_letter_subject = dead_letter_subject
        self._ack_wait = ack_wait
        self._retry_delay = retry_delay
        self._timeout = request_timeout
        self._arn = arn or f"arn:aws:sqs:us-east-1:000000000000:{stream}"
        self._clock = clock
        self._deliveries = Deliveries()
        self._consumer_created: datetime | None = None
        self._carry: list[Msg] = []  # fetched beyond max_messages; handed out next time
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._sub: JetStreamContext.PullSubscription | None = None

    @property
    def arn(self) -> str:
        return self._arn

    async def start(self) -> None:
        """A fresh connection; check the stream and dead-letter target; create or update the
        consumer; bind a pull subscription to it."""
        await self.close()
        try:
            nc = await asyncio.wait_for(
                nats.connect(
                    self._servers,
                    name="lambdalet-dispatcher",
                    allow_reconnect=False,
                    connect_timeout=max(1, round(self._timeout)),
                    error_cb=_log_error,
                ),
                self._timeout * (len(self._servers) + 1),
            )
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise SourceError(f"cannot connect to NATS at {self._url}: {exc!r}") from exc
        self._nc = nc
        js = nc.jetstream(timeout=self._timeout)
        try:
            await self._prepare(js)
        except BaseException:
            await self.close()
            raise
        self._js = js

    async def _prepare(self, js: JetStreamContext) -> None:
        with _setup_errors(f"stream {self._stream!r}"):
            await js.stream_info(self._stream)
        target = self._dead_letter_subject
        if target is not None:
            where = f"dead-letter subject {target!r}"
            if "*" in target or ">" in target:
                raise SourceConfigError(f"{where} must not contain wildcards")
            with _setup_errors(where):
                try:
                    owner = await js.find_stream_name_by_subject(target)
                except nats.js.errors.NotFoundError as exc:
                    raise SourceConfigError(f"{where}: no stream stores it") from exc
            if owner == self._stream and (
                self._subject is None or subject_matches(self._subject, target)
            ):
                raise SourceConfigError(f"{where}: dead letters would come back to this consumer")
        with _setup_errors(f"consumer {self._consumer!r} of stream {self._stream!r}"):
            config = consumer_config(self._consumer, self._subject, self._ack_wait)
            info = await js.add_consumer(self._stream, config)
            if info.created != self._consumer_created:  # a new consumer: sequences start over
                self._deliveries.clear()
                self._consumer_created = info.created
            self._sub = await js.pull_subscribe_bind(durable=self._consumer, stream=self._stream)

    async def receive(self, max_messages: int, wait_seconds: float) -> list[Message]:
        if not self._carry:
            self._carry = await self._fetch(max_messages, max(wait_seconds, MIN_FETCH_WAIT))
        taken, self._carry = self._carry[:max_messages], self._carry[max_messages:]
        now_ms = int(self._clock() * 1000)
        messages = []
        for msg in taken:
            meta = msg.metadata
            seen = self._deliveries.note(
                meta.sequence.stream, meta.sequence.consumer, meta.num_delivered, now_ms
            )
            messages.append(to_message(msg, seen))
        return messages

    async def _fetch(self, batch: int, wait: float) -> list[Msg]:
        """One pull request. nats-py first hands over what an earlier, timed-out pull left in
        the inbox, all of it: more than ``batch`` is possible, hence ``_carry``."""
        if self._sub is None:
            raise SourceError("the NATS source is not started")
        limit = asyncio.timeout(wait + self._timeout)
        try:
            async with limit:
                return await self._sub.fetch(batch=batch, timeout=wait)
        except nats.errors.TimeoutError:
            return []  # nothing came within ``wait``
        except TimeoutError as exc:
            if not limit.expired():
                # nats-py's own: ``wait`` ran out before its waiting pull was sent (its first,
                # no-wait pull took all of it on a busy machine). Nothing came, as above.
                return []
            raise SourceError(f"fetch from {self._stream!r}: no answer: {exc!r}") from exc
        except (nats.errors.Error, OSError) as exc:
            raise SourceError(f"fetch from {self._stream!r}: {exc!r}") from exc

    async def ack(self, messages: Sequence[Message]) -> None:
        await self._each(messages, lambda message: self._settle(message, Msg.Ack.Ack))

    async def retry(self, messages: Sequence[Message]) -> None:
        nak = Msg.Ack.Nak
        if self._retry_delay > 0:
            nak += b" " + json.dumps({"delay": int(self._retry_delay * 1e9)}).encode()
        await self._each(messages, lambda message: self._settle(message, nak, forget=False))

    async def dead_letter(self, messages: Sequence[Message], reason: str) -> None:
        """Publish each message to the dead-letter subject, then ack it. Without a dead-letter
        subject the messages are dropped: terminated, which the server reports as an advisory
        ($JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.<stream>.<consumer>)."""
        target = self._dead_letter_subject
        if target is None:
            log.warning("dropping %d messages of %s: %s", len(messages), self._stream, reason)
            await self._each(messages, lambda message: self._settle(message, Msg.Ack.Term))
            return
        await self._each(messages, lambda message: self._move(message, target, reason))

    async def _move(self, message: Message, target: str, reason: str) -> None:
        js = self._js
        if js is None:
            raise SourceError("the NATS source is not started")
        headers = dead_letter_headers(message, self._stream, reason)
        try:
            await js.publish(target, message.body, timeout=self._timeout, headers=headers)
        except nats.js.errors.NoStreamResponseError as exc:
            raise SourceConfigError(f"no stream stores dead-letter subject {target!r}") from exc
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise SourceError(f"dead-letter to {target!r}: {exc!r}") from exc
        await self._settle(message, Msg.Ack.Ack)

    async def _settle(self, message: Message, verdict: bytes, *, forget: bool = True) -> None:
        """Send ``verdict`` for one message and wait for the server to have applied it."""
        nc, msg = self._nc, message.handle
        if nc is None:
            raise SourceError("the NATS source is not started")
        if not isinstance(msg, Msg) or not msg.reply:
            raise TypeError(f"message {message.id} was not received from a NatsSource")
        try:
            await nc.request(msg.reply, verdict, timeout=self._timeout)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            what = f"{verdict.decode()} of {self._stream}:{message.id}"
            raise SourceError(f"{what}: {exc!r}") from exc
        if forget:
            self._deliveries.forget(msg.metadata.sequence.stream)

    async def _each(
        self, messages: Sequence[Message], action: Callable[[Message], Awaitable[None]]
    ) -> None:
        """``action`` on every message, ``CONCURRENCY`` at a time; every one is tried, and the
        first failure is raised after all have finished (a config error before others)."""
        failures: list[BaseException] = []
        for start in range(0, len(messages), CONCURRENCY):
            chunk = messages[start : start + CONCURRENCY]
            results = await asyncio.gather(*(action(m) for m in chunk), return_exceptions=True)
            failures.extend(r for r in results if isinstance(r, BaseException))
        if failures:
            config = [f for f in failures if isinstance(f, SourceConfigError)]
            first = (config or failures)[0]
            if len(failures) > 1:
                log.warning("%d of %d messages failed: %s", len(failures), len(messages), first)
            raise first

    async def depth(self) -> int | None:
        """Messages not yet delivered to the consumer, plus those in flight or awaiting retry."""
        js = self._js
        if js is None:
            raise SourceError("the NATS source is not started")
        try:
            info = await js.consumer_info(self._stream, self._consumer, timeout=self._timeout)
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            raise SourceError(f"consumer info of {self._consumer!r}: {exc!r}") from exc
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)

    async def close(self) -> None:
        """Close the connection. Undelivered inbox messages come back after AckWait."""
        nc, self._nc, self._js, self._sub, self._carry = self._nc, None, None, None, []
        if nc is None or nc.is_closed:
            return
        try:
            async with asyncio.timeout(self._timeout):
                await nc.close()
        except (nats.errors.Error, OSError, TimeoutError) as exc:
            log.warning("closing the NATS connection: %r", exc)


async def _log_error(exc: Exception) -> None:
    """nats-py's asynchronous errors (a lost connection, mostly); calls raise their own."""
    log.warning("NATS: %r", exc)


@contextmanager
def _setup_errors(where: str) -> Iterator[None]:
    """Errors of ``start`` mapped once: what only a changed EventSource (or server) can fix is a
    ``SourceConfigError`` with the server's reason; the rest is transient."""
    try:
        yield
    except nats.js.errors.NotFoundError as exc:
        raise SourceConfigError(f"{where} not found on the NATS server") from exc
    except nats.js.errors.ServiceUnavailableError as exc:
        if exc.code is None:  # no responders: nobody serves the JetStream API
            raise SourceConfigError("JetStream is not enabled on the NATS server") from exc
        raise SourceError(f"{where}: {exc}") from exc
    except nats.js.errors.BadRequestError as exc:
        raise SourceConfigError(f"{where}: {exc.description}") from exc
    except ValueError as exc:  # nats-py's check of stream and consumer names
        raise SourceConfigError(f"{where}: {exc}") from exc
    except (nats.errors.Error, OSError, TimeoutError) as exc:
        raise SourceError(f"{where}: {exc!r}") from exc


async def build(request: Build) -> list[Source]:
    """One source per poller for an EventSource's ``natsJetStream``: pull subscribers of the same
    durable consumer."""
    block = request.spec.nats_jet_stream
    assert block is not None
    dead_letter_subject = dead_letter_target(
        request.spec.dead_letter, DeadLetterType.NATS_JET_STREAM, "a NATS JetStream"
    )
    ack_wait = ack_wait_seconds(
        function_timeout=request.function_timeout,
        batch_window=request.batch_window,
        hold_timeout=request.hold_timeout,
    )
    return [
        NatsSource(
            block.url,
            block.stream,
            subject=block.subject,
            consumer=block.consumer or f"lambdalet-{request.namespace}-{request.name}",
            dead_letter_subject=dead_letter_subject,
            ack_wait=ack_wait,
        )
        for _ in request.consumers
    ]
