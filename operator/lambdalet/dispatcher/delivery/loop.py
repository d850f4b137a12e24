"""The delivery loop of one queue EventSource: receive a batch, invoke, settle, repeat.

Where it sits: the dispatcher runs ``maxConcurrency`` of these per assigned queue EventSource
(``runners.QueueRunner``: one per poller), each with a ``Source`` of its own on the EventSource's
broker queue, the shared ``invoker`` and ``DeliverySettings`` made from the spec. One turn of the
loop:

1. gather a batch: one receive of up to ``batchSize`` messages that waits up to
   ``receive_wait`` for the first; with ``batchWindowSeconds`` > 0, receive again until the batch
   is full or the window (counted from the first message) has passed; with 0, deliver what the
   one receive returned;
2. shape it into an SQS event (``records``), cut to Lambda's 6 MiB payload limit (the messages
   that do not fit start the next batch; a record too large on its own is dead-lettered);
3. invoke the Function (``invoker``); an invocation the Function never answered (throttled,
   unreachable) is tried again with backoff for up to ``failure_hold`` seconds;
4. let ``outcome`` decide per message and carry it out on the source: dead letters first, then
   retries, then acknowledgements. A step that fails with ``SourceError`` is done again after
   the source has been started anew, before anything new is received.

At most one batch is held: nothing is received until the previous batch is settled. Errors of
the broker (``SourceError``) back off exponentially (``backoff_initial`` doubling to
``backoff_max``) and ``start`` the source again. ``enabled: false`` pauses: ``run`` returns at
once without touching the broker, and the dispatcher starts a new Delivery when the spec
changes. ``stop`` ends ``run`` once the batch in hand is settled; cancelling ``run`` may leave
a batch in flight at the broker, which redelivers it (Redis: reclaimed after its idle time; SQS:
visibility timeout).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from lambdalet.api.eventsource import EventSourceSpec
from lambdalet.backoff import backoff
from lambdalet.contracts.keys import Key
from lambdalet.dispatcher.delivery.invoker import ACTIVATOR_HOLD_SECONDS, invoke_timeout
from lambdalet.dispatcher.delivery.outcome import (
    Answer,
    InvokeFailed,
    Plan,
    Policy,
    decide,
    too_large,
)
from lambdalet.dispatcher.delivery.records import (
    PAYLOAD_LIMIT,
    encode_event,
    encode_record,
    fitting,
    region_of,
)
from lambdalet.dispatcher.sources.source import Message, Source, SourceConfigError, SourceError

log = logging.getLogger("lambdalet.dispatcher")

CLOSE_TIMEOUT = 10.0  # seconds for the source to close when the loop ends


class Clock(Protocol):
    """Monotonic time and sleeping: the loop's seam for simulated time in tests."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class LoopClock:
    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Invoke(Protocol):
    """What the loop needs of ``invoker.ActivatorInvoker``."""

    async def invoke(
        self,
        function: Key,
        payload: bytes,
        *,
        timeout: float,  # noqa: ASYNC109 - the HTTP call's deadline, passed to the client
    ) -> Answer: ...


@dataclass(frozen=True)
class DeliverySettings:
    function: Key
    batch_size: int = 10
    batch_window: float = 0.0  # seconds
    policy: Policy = field(default_factory=Policy)
    enabled: bool = True
    invoke_timeout: float = invoke_timeout(3.0)
    receive_wait: float = 20.0  # longest wait of one receive for a first message (long poll)
    failure_hold: float = 30.0  # seconds to keep re-invoking a batch the Function never answered
    backoff_initial: float = 0.1
    backoff_max: float = 30.0
    payload_limit: int = PAYLOAD_LIMIT

    @classmethod
    def from_spec(
        cls,
        spec: EventSourceSpec,
        namespace: str,
        *,
        function_timeout: float,
        hold: float = ACTIVATOR_HOLD_SECONDS,
    ) -> DeliverySettings:
        """Settings of an EventSource in ``namespace`` whose Function has ``function_timeout``."""
        return cls(
            function=(namespace, spec.function.name),
            batch_size=spec.batch_size,
            batch_window=float(spec.batch_window_seconds),
            policy=Policy(
                max_retries=spec.max_retries,
                dead_letter=spec.dead_letter is not None,
                report_batch_item_failures=spec.report_batch_item_failures,
            ),
            enabled=spec.enabled,
            invoke_timeout=invoke_timeout(function_timeout, hold),
        )


@dataclass
class DeliveryStats:
    """Counts since the loop started (messages, unless named otherwise)."""

    received: int = 0
    acked: int = 0  # succeeded
    retried: int = 0
    dead_lettered: int = 0
    dropped: int = 0  # failed for good without a dead-letter target (acknowledged)
    batches: int = 0  # invoked batches
    invocations: int = 0  # calls of the invoker, re-invocations included
    not_answered: int = 0  # invocations the Function never answered
    source_errors: int = 0


Step = tuple[Literal["dead_letter", "retry", "drop", "ack"], tuple[Message, ...], str]


class Delivery:
    def __init__(
        self,
        source: Source,
        invoker: Invoke,
        settings: DeliverySettings,
        *,
        clock: Clock | None = None,
        on_health: Callable[[SourceError | None], Awaitable[None]] | None = None,
    ) -> None:
        """``on_health`` hears whether the source works: None after the first turn that reached
        the broker and after a recovery, the error when a turn failed (once per change of
        error text), e.g. to keep the EventSource's Polling condition."""
        self._source = source
        self._invoker = invoker
        self._settings = settings
        self._clock = clock or LoopClock()
        self._started = False
        self._carry: list[Message] = []  # received, did not fit the last event: next batch
        self._steps: list[Step] = []  # settling still to do for the last batch
        self._stopping = False
        self._on_health = on_health
        self._health: str | None = "unknown"  # None: healthy; else the last error's text
        self.stats = DeliveryStats()

    def stop(self) -> None:
        """End ``run`` once the messages in hand are settled: within one receive's wait (or one
        backoff) while the broker answers, without leaving a batch in flight at the broker as
        cancelling may."""
        self._stopping = True

    async def depth(self) -> int | None:
        """Messages waiting (and in flight where the broker tells), for the autoscaler."""
        if not self._started:
            return None
        return await self._source.depth()

    async def run(self) -> None:
        """Deliver until stopped or cancelled (returns at once when the EventSource is paused)."""
        settings = self._settings
        if not settings.enabled:
            log.info("event source for %s/%s is paused", *settings.function)
            return
        failures = 0
        try:
            while not self._stopping or self._steps or self._carry:
                try:
                    await self._turn()
                    failures = 0
                    await self._tell(None)
                except SourceError as exc:
                    await self._tell(exc)
                    self.stats.source_errors += 1
                    self._started = False
                    config = isinstance(exc, SourceConfigError)
                    failures += 1
                    delay = (
                        settings.backoff_max
                        if config
                        else backoff(failures, settings.backoff_initial, settings.backoff_max)
                    )
                    log.warning(
                        "event source for %s/%s: %s; again in %.1f s",
                        *settings.function,
                        exc,
                        delay,
                    )
                    await self._clock.sleep(delay)
        finally:
            await self._close()

    async def _tell(self, error: SourceError | None) -> None:
        health = None if error is None else str(error)
        if health == self._health or self._on_health is None:
            self._health = health
            return
        self._health = health
        try:
            await self._on_health(error)
        except Exception:
            log.warning("reporting the health of %s/%s", *self._settings.function, exc_info=True)

    async def _turn(self) -> None:
        if not self._started:
            await self._source.start()
            self._started = True
        if self._steps:
            await self._settle()
            return
        batch, error = await self._gather()
        if batch:
            await self._deliver(batch)
        if error is not None:
            raise error

    async def _gather(self) -> tuple[list[Message], SourceError | None]:
        """The next batch, and the error that cut gathering short (the batch is still valid)."""
        settings = self._settings
        batch, self._carry = self._carry, []
        if not batch:
            batch = await self._source.receive(settings.batch_size, settings.receive_wait)
            self.stats.received += len(batch)
            if not batch:
                return [], None
        if settings.batch_window <= 0 or self._stopping:
            return batch, None
        deadline = self._clock.now() + settings.batch_window
        while len(batch) < settings.batch_size:
            remaining = deadline - self._clock.now()
            if remaining <= 0:
                break
            try:
                more = await self._source.receive(
                    settings.batch_size - len(batch), min(remaining, settings.receive_wait)
                )
            except SourceError as exc:
                return batch, exc
            self.stats.received += len(more)
            batch.extend(more)
        return batch, None

    async def _deliver(self, batch: list[Message]) -> None:
        settings = self._settings
        arn = self._source.arn
        region = region_of(arn)
        encoded = [encode_record(message, arn=arn, region=region) for message in batch]
        count = fitting([len(record) for record in encoded], settings.payload_limit)
        if count == 0:
            self._carry = batch[1:]
            plan = too_large(batch[0], settings.policy, len(encoded[0]), settings.payload_limit)
        else:
            self._carry = batch[count:]
            answer = await self._invoke(encode_event(encoded[:count]))
            plan = decide(batch[:count], answer, settings.policy)
            self.stats.batches += 1
        self._steps = _steps(plan)
        await self._settle()

    async def _invoke(self, payload: bytes) -> Answer:
        """The Function's answer; one it never gave is asked for again for ``failure_hold`` s."""
        settings = self._settings
        started = self._clock.now()
        failed = 0
        while True:
            answer = await self._invoker.invoke(
                settings.function, payload, timeout=settings.invoke_timeout
            )
            self.stats.invocations += 1
            if not isinstance(answer, InvokeFailed):
                return answer
            self.stats.not_answered += 1
            failed += 1
            delay = backoff(failed, settings.backoff_initial, settings.backoff_max)
            if self._clock.now() - started + delay > settings.failure_hold:
                return answer
            log.info(
                "invoking %s/%s: %s: %s; again in %.1f s",
                *settings.function,
                answer.kind,
                answer.message,
                delay,
            )
            await self._clock.sleep(delay)

    async def _settle(self) -> None:
        """Carry out the steps left for the last batch, each one once."""
        while self._steps:
            kind, messages, reason = self._steps[0]
            if kind == "dead_letter":
                await self._source.dead_letter(messages, reason)
                self.stats.dead_lettered += len(messages)
                log.warning(
                    "dead-lettered %d message(s) for %s/%s: %s",
                    len(messages),
                    *self._settings.function,
                    reason,
                )
            elif kind == "retry":
                await self._source.retry(messages)
                self.stats.retried += len(messages)
                log.info(
                    "retrying %d message(s) for %s/%s: %s",
                    len(messages),
                    *self._settings.function,
                    reason,
                )
            elif kind == "drop":
                await self._source.ack(messages)
                self.stats.dropped += len(messages)
                log.warning(
                    "dropped %d message(s) for %s/%s (no dead-letter target): %s",
                    len(messages),
                    *self._settings.function,
                    reason,
                )
            else:
                await self._source.ack(messages)
                self.stats.acked += len(messages)
            self._steps.pop(0)

    async def _close(self) -> None:
        try:
            await asyncio.wait_for(self._source.close(), CLOSE_TIMEOUT)
        except (SourceError, TimeoutError) as exc:
            log.warning("closing the event source for %s/%s: %s", *self._settings.function, exc)


def _steps(plan: Plan) -> list[Step]:
    """The source calls that carry out a plan: dead letters before anything is acknowledged."""
    steps: list[Step] = []
    if plan.dead_letter:
        steps.append(("dead_letter", plan.dead_letter, plan.reason))
    if plan.retry:
        steps.append(("retry", plan.retry, plan.reason))
    if plan.drop:
        steps.append(("drop", plan.drop, plan.reason))
    if plan.ack:
        steps.append(("ack", plan.ack, ""))
    return steps
