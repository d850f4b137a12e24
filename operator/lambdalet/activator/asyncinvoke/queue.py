"""Asynchronous invocations (Lambda's ``Event`` invocation type) on Redis Streams.

Where it sits: for ``X-Amz-Invocation-Type: Event`` the activator calls ``AsyncQueue.enqueue``,
which stores the event (XADD) before it returns, and answers 202 with the request id. Every
activator replica runs ``AsyncQueue.run``: a worker in one consumer group that reads events,
invokes them through the same ``Invoker`` as synchronous requests (so reserved concurrency, the
cold-start buffer and the per-pod limits apply), and acts on ``policy``'s decision:
acknowledge, retry later, or send Lambda's invocation record to ``onFailure`` (a Redis stream,
or another Function as a new asynchronous event), or, without one, to the Function's
dead-letter stream. ``store`` holds the key names and the atomic moves.

Guarantees:

- At least once. An entry leaves its stream only in the same atomic step that acknowledges it
  and puts it where it goes next; a worker that dies holding entries leaves them pending, and
  another worker takes them over (XAUTOCLAIM) once idle for ``placement_wait + timeout +
  claim_margin``. The worker itself abandons an attempt at ``placement_wait + timeout +
  claim_margin / 2``, so a live worker's entries are never taken over. E.g. with the defaults
  and a 3 s function: abandoned after 60 + 3 + 15 = 78 s, taken over after 93 s idle.
- Bounded: at most ``max_events_per_function`` events per Function (waiting + in progress +
  delayed; the next enqueue gets 429, nothing is ever trimmed), payloads up to 256 KiB (413),
  at most ``max_concurrency`` events handled at once per worker.
- No busy waiting: the worker blocks in XREADGROUP until an event arrives, the next delayed
  retry is due, or ``poll_interval`` passes (when it also notices Functions enqueued for the
  first time).

Failure records: an entry of a ``redisStream`` destination or a dead-letter stream
(``lambdalet:dlq:<namespace>:<name>``) has the fields ``record`` (the JSON invocation record),
``requestId``, ``condition`` and ``function`` (``namespace/name``). A ``function`` destination
gets the record as the payload of a new event with a new request id; when that Function is
unknown or its queue is full, the record goes to the dead-letter stream instead. An event of a
Function the config lookup does not know (deleted, or not seen yet after a restart) is still
offered to the invoker, which rejects it (503, a throttle): it waits for the Function to come
back until it is too old.

The Redis client must return bytes (``decode_responses=False``, the default), and its
``socket_timeout`` must exceed ``poll_interval``, the longest blocking read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from lambdalet.activator.asyncinvoke.options import AsyncQueueOptions, ConfigLookup
from lambdalet.activator.asyncinvoke.policy import MAX_ASYNC_PAYLOAD, AsyncEvent
from lambdalet.activator.asyncinvoke.store import FULL, AsyncStore
from lambdalet.activator.asyncinvoke.worker import AsyncWorker
from lambdalet.activator.model import FunctionConfig
from lambdalet.contracts.invocation import Invoker, InvokeRejected
from lambdalet.contracts.keys import Key
from lambdalet.outcomes import Outcome


class AsyncMetrics:
    """lambdalet_activator_async_events_total{namespace,function,outcome}."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._events = Counter(
            "lambdalet_activator_async_events",
            "Asynchronous events by what happened to them: enqueued, rejected, succeeded, "
            "retried, throttled, retries_exhausted, event_age_exceeded, malformed.",
            ["namespace", "function", "outcome"],
            registry=registry,
        )

    def count(self, key: Key, outcome: str) -> None:
        self._events.labels(key[0], key[1], outcome).inc()


class AsyncQueue:
    """Enqueue asynchronous events (``enqueue``, ``depth``) and work them off (``run``)."""

    def __init__(
        self,
        client: Redis,
        invoker: Invoker,
        configs: ConfigLookup,
        *,
        consumer: str,
        options: AsyncQueueOptions | None = None,
        clock: Callable[[], float] = time.time,
        metrics: AsyncMetrics | None = None,
        attempted: Callable[[Key, Outcome], None] | None = None,
    ) -> None:
        """``attempted`` hears the outcome of every attempt the worker makes (the activator's
        ``Metrics.attempted``)."""
        self._attempted = attempted
        self._options = options or AsyncQueueOptions()
        self._store = AsyncStore(client, prefix=self._options.prefix, group=self._options.group)
        self._invoker = invoker
        self._configs = configs
        self._consumer = consumer
        self._clock = clock
        self._metrics = metrics

    async def enqueue(
        self,
        config: FunctionConfig,
        payload: bytes,
        *,
        request_id: str,
        headers: Mapping[str, str],
    ) -> None:
        """Store an event durably; raises InvokeRejected (413 too large, 429 full, 503 down)."""
        if len(payload) > MAX_ASYNC_PAYLOAD:
            self._count(config.key, "rejected")
            raise InvokeRejected(
                413,
                "RequestEntityTooLargeException",
                f"{len(payload)} byte payload is too large for the Event invocation type "
                f"(limit {MAX_ASYNC_PAYLOAD} bytes)",
            )
        event = AsyncEvent(request_id, payload, self._clock(), dict(headers))
        limit = self._options.max_events_per_function
        try:
            async with asyncio.timeout(self._options.redis_timeout):
                added = await self._store.add(
                    self._store.stream(config.key),
                    event.encode(),
                    limit=limit,
                    function_stream=True,
                )
        except (RedisError, OSError, TimeoutError) as exc:
            raise InvokeRejected(
                503, "ServiceException", f"the asynchronous event queue is unavailable: {exc}"
            ) from exc
        if added == FULL:
            self._count(config.key, "rejected")
            raise InvokeRejected(
                429,
                "TooManyRequestsException",
                f"the asynchronous event queue of {config.namespace}/{config.name} is full "
                f"({limit} events waiting); retry later",
            )
        self._count(config.key, "enqueued")

    async def depth(self, key: Key) -> int:
        """Events of a Function waiting, in progress or delayed (the autoscaler's queue depth)."""
        async with asyncio.timeout(self._options.redis_timeout):
            return await self._store.depth(key)

    async def run(self) -> None:
        """Work off events until cancelled; entries in hand when cancelled stay pending."""
        worker = AsyncWorker(
            self._store,
            self._invoker,
            self._configs,
            consumer=self._consumer,
            options=self._options,
            clock=self._clock,
            count=self._count,
            attempted=self._attempted or _ignore,
        )
        await worker.run()

    def _count(self, key: Key, outcome: str) -> None:
        if self._metrics is not None:
            self._metrics.count(key, outcome)


def _ignore(key: Key, outcome: Outcome) -> None:
    pass
