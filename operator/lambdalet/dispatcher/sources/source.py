"""The seam between the delivery loop and one broker: ``Message`` and the ``Source`` protocol.

Every queue kind (Redis Streams, RabbitMQ, NATS JetStream, SQS-compatible) is one module with one
class implementing ``Source`` and a ``build`` that makes a poller's sources from the EventSource
(``Build``), listed in ``registry``; the delivery loop (``lambdalet.dispatcher.delivery``) knows
nothing else about brokers.
The contract, which each implementation's tests check against its real broker:

* ``receive`` returns at most ``max_messages`` messages, waiting at most ``wait_seconds`` for
  the first one (an empty list when none came). A received message is in flight: the broker must
  not hand it to another consumer until it is acknowledged, released or its lease runs out (the
  broker's own redelivery: Redis pending entries reclaimed, AMQP unacked on channel close, NATS
  AckWait, SQS visibility timeout).
* ``ack`` ends the messages: handled, never delivered again.
* ``retry`` releases them for redelivery, with ``receive_count`` one higher next time (a broker
  without a delivery counter must keep one).
* ``dead_letter`` puts each message on the configured dead-letter target *first*, then acks it:
  a crash in between duplicates a message, never loses it. ``reason`` goes along (a header or a
  field) for whoever reads the dead letters.
* ``depth`` is the number of messages waiting (plus in flight where the broker tells), for the
  autoscaler's queue-depth scaling; None when the broker cannot tell cheaply.
* Errors talking to the broker raise ``SourceError`` (transient: the loop backs off and calls
  again; ``start`` is called again after a connection was lost).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lambdalet.api.eventsource import DeadLetter, DeadLetterType, EventSourceSpec


class SourceError(Exception):
    """The broker could not be reached or refused a call; worth retrying after a backoff."""


class SourceConfigError(SourceError):
    """The source's settings cannot work (bad URL, missing stream and no right to create it):
    retrying will not help until the EventSource changes; shown in its status."""


@dataclass(frozen=True)
class Message:
    """One received message, broker-neutral (the fields an SQS record needs)."""

    id: str  # the broker's id of the message: the record's messageId
    body: bytes
    receive_count: int  # deliveries so far, this one included (ApproximateReceiveCount)
    sent_at_ms: int  # when the producer sent it, epoch ms (SentTimestamp)
    first_received_at_ms: int  # first delivery, epoch ms (ApproximateFirstReceiveTimestamp)
    sender: str = ""  # SenderId, where the broker knows one
    attributes: Mapping[str, str] = field(default_factory=dict)  # messageAttributes
    handle: object = None  # what the source needs to ack / retry this message; opaque


class Source(Protocol):
    """One broker queue, as the delivery loop uses it."""

    @property
    def arn(self) -> str:
        """The record's eventSourceARN, e.g. arn:aws:sqs:us-east-1:000000000000:orders."""
        ...

    async def start(self) -> None:
        """Connect; create the consumer group / durable consumer if missing."""
        ...

    async def receive(self, max_messages: int, wait_seconds: float) -> list[Message]: ...

    async def ack(self, messages: Sequence[Message]) -> None: ...

    async def retry(self, messages: Sequence[Message]) -> None: ...

    async def dead_letter(self, messages: Sequence[Message], reason: str) -> None: ...

    async def depth(self) -> int | None: ...

    async def close(self) -> None: ...


# Reads one key of a Secret in the EventSource's namespace: (Secret name, key) -> its text.
SecretReader = Callable[[str, str], Awaitable[str]]


@dataclass(frozen=True)
class Build:
    """What a queue kind's ``build`` is handed to make one source per poller."""

    namespace: str
    name: str
    spec: EventSourceSpec
    consumers: tuple[str, ...]  # one per poller: its broker-side consumer name
    held: float  # seconds: the longest a received message is in the dispatcher's hands
    function_timeout: float  # the Function's timeoutSeconds
    batch_window: float  # seconds a batch may gather and be held after a failure
    hold_timeout: float  # the activator's cold-start hold
    secret: SecretReader


def dead_letter_target(
    dead_letter: DeadLetter | None, kind: DeadLetterType, what: str
) -> str | None:
    """The dead-letter target of a ``what`` source, or None; a target of another kind is a
    configuration error."""
    if dead_letter is None:
        return None
    if dead_letter.type != kind:
        raise SourceConfigError(
            f"{what} source dead-letters to a {kind.value} target, not {dead_letter.type.value}"
        )
    return dead_letter.target
