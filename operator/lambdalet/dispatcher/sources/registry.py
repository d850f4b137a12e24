"""Every queue kind an EventSource can name, and the ``build`` that makes its sources: the one list.

A kind is a block of the EventSource's spec (``redisStreams``, ``rabbitmq``, ``natsJetStream``,
``sqs``) and one module of this package behind the ``Source`` contract (``source``). The queue
runner (``lambdalet.dispatcher.replica.runners``) asks ``builder`` for the spec's kind and knows
nothing else about brokers; a new kind is a module with a ``build`` and a row in ``KINDS``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lambdalet.api.eventsource import EventSourceSpec
from lambdalet.dispatcher.sources import nats, rabbitmq, redis_streams, sqs
from lambdalet.dispatcher.sources.source import Build, Source, SourceConfigError

Builder = Callable[[Build], Awaitable[list[Source]]]


@dataclass(frozen=True)
class Kind:
    field: str  # the EventSourceSpec attribute of the kind's block
    build: Builder


KINDS: tuple[Kind, ...] = (
    Kind("redis_streams", redis_streams.build),
    Kind("rabbitmq", rabbitmq.build),
    Kind("nats_jet_stream", nats.build),
    Kind("sqs", sqs.build),
)


def builder(spec: EventSourceSpec) -> Builder:
    """The ``build`` of the queue kind the spec sets (the schema allows one source block)."""
    for kind in KINDS:
        if getattr(spec, kind.field) is not None:
            return kind.build
    raise SourceConfigError("the EventSource sets no queue")
