"""One runner per EventSource this replica owns: builds its source from the spec and runs it.

Where it sits: the ``supervisor`` starts a runner for every EventSource whose
``status.assignedReplica`` is this replica (and whose Function exists), stops it when that
changes, and asks queue runners for their depth. A runner reads the Secrets its spec names when
it starts (a rotated credential takes effect when the EventSource changes or moves), and keeps
the EventSource's ``Polling`` condition (``status.SourceStatus``).

    queues (redisStreams, rabbitmq, natsJetStream, sqs)   delivery.Delivery over the source
    schedule                                              scheduler.Scheduler, the claim and
                                                          last tick kept in the status
    s3                                                    s3.notifications.ensure: the bucket's
                                                          events go to this dispatcher's S3
                                                          receiver (every replica serves it)

Every time a source's in-flight work can take is derived from the Function's timeout: the
invocation's deadline (``invoker.invoke_timeout``: the activator's cold-start hold, the timeout
and a margin) and, from it, how long a broker must leave a received message to us (Redis
reclaim idle time, NATS AckWait, SQS visibility timeout).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Protocol

from lambdalet.api.conditions import PollingReason
from lambdalet.api.eventsource import EventSourceSpec
from lambdalet.api.schedule import ScheduleError, parse
from lambdalet.backoff import backoff
from lambdalet.contracts.invocation import InvokeResult
from lambdalet.contracts.keys import Key
from lambdalet.dispatcher.delivery.invoker import (
    ACTIVATOR_HOLD_SECONDS,
    ActivatorInvoker,
    invoke_timeout,
)
from lambdalet.dispatcher.delivery.loop import Delivery, DeliverySettings, DeliveryStats
from lambdalet.dispatcher.replica.status import SourceStatus
from lambdalet.dispatcher.s3 import notifications
from lambdalet.dispatcher.schedules.loop import Scheduler
from lambdalet.dispatcher.schedules.plan import Rule
from lambdalet.dispatcher.sources import registry, sqs
from lambdalet.dispatcher.sources.source import Build, Source, SourceConfigError, SourceError
from lambdalet.k8s import KubeClient, KubeError, NotFound

log = logging.getLogger("lambdalet.dispatcher")

RETRY_SETUP_SECONDS = 30.0  # before building a source again after a missing Secret
S3_RECHECK_SECONDS = 60.0  # between checks that the bucket's notification is still set up
S3_RETRY_FIRST_SECONDS = 2.0  # after an S3 server fails, doubling up to RETRY_SETUP_SECONDS


class SecretMissing(Exception):
    """A Secret the EventSource names does not exist or lacks the key."""


@dataclass(frozen=True)
class Assignment:
    """An EventSource this replica runs, with what its runner needs besides the spec."""

    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime
    spec: EventSourceSpec
    function_timeout: float  # seconds, the Function's timeoutSeconds
    stored: dict[str, Any]  # the object as last seen, for the status already written

    @property
    def function(self) -> Key:
        return (self.namespace, self.spec.function.name)

    @property
    def fingerprint(self) -> tuple[str, int, float]:
        """What a running runner was built from: a change means a new runner."""
        return (self.uid, self.generation, self.function_timeout)


class Runner(Protocol):
    kind: str  # queue, schedule, s3: for metrics

    async def run(self) -> None: ...

    def stop(self) -> None: ...

    async def depth(self) -> int | None: ...

    def stats(self) -> DeliveryStats | None: ...


def webhook_token(key: bytes, namespace: str, name: str, uid: str) -> str:
    """The bearer token of an S3 EventSource's webhook: derived, so every replica knows it
    without storing it, and a re-created EventSource (new uid) gets a new one."""
    digest = hmac.new(key, f"{namespace}/{name}/{uid}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


async def secret_value(client: KubeClient, namespace: str, name: str, key: str) -> str:
    try:
        secret = await client.get("v1", "Secret", namespace, name)
    except NotFound as exc:
        raise SecretMissing(f"Secret {namespace}/{name} does not exist") from exc
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        raise SecretMissing(f"Secret {namespace}/{name} has no key {key}")
    try:
        return base64.b64decode(raw, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise SecretMissing(f"Secret {namespace}/{name} key {key} is not UTF-8 text") from exc


@dataclass(frozen=True)
class Context:
    """What every runner shares."""

    client: KubeClient
    invoker: ActivatorInvoker
    replica: str
    s3_url: str | None
    webhook_key: bytes
    s3_queue_dir: str | None = None
    s3_allow_restart: bool = False
    hold: float = ACTIVATOR_HOLD_SECONDS


class _Base:
    kind = ""

    def __init__(self, context: Context, assignment: Assignment) -> None:
        self._context = context
        self._assignment = assignment
        self._stopping = asyncio.Event()
        self.status = SourceStatus(
            context.client,
            assignment.namespace,
            assignment.name,
            replica=context.replica,
            generation=assignment.generation,
            stored=assignment.stored,
        )

    def stop(self) -> None:
        self._stopping.set()

    async def depth(self) -> int | None:
        return None

    def stats(self) -> DeliveryStats | None:
        return None

    async def _starting(self) -> None:
        """Say this replica has the source now: a Polling condition another replica wrote
        before the source moved here must not stand for this one."""
        await self._report(
            None, PollingReason.STARTING, f"event dispatcher {self._context.replica} starts"
        )

    async def _report(self, ok: bool | None, reason: PollingReason, message: str) -> None:
        try:
            await self.status.polling(ok, reason, message)
        except KubeError as exc:
            a = self._assignment
            log.warning("status of EventSource %s/%s: %s", a.namespace, a.name, exc)

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds`` or until stopped; True when stopped."""
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True


def poller_consumer(replica: str, index: int) -> str:
    """The broker-side consumer name of poller ``index`` of a queue EventSource on ``replica``:
    poller 0 keeps the replica's name, so what an earlier life of this replica (or a runner with
    one poller) left pending is still its own; the others add their index."""
    return replica if index == 0 else f"{replica}-{index}"


def total_stats(stats: Sequence[DeliveryStats]) -> DeliveryStats:
    """The pollers' counts added up, field by field."""
    total = DeliveryStats()
    for one in stats:
        for item in fields(DeliveryStats):
            name = item.name
            setattr(total, name, getattr(total, name) + getattr(one, name))
    return total


class QueueRunner(_Base):
    """A queue EventSource: ``maxConcurrency`` pollers, each a ``Delivery`` over a ``Source`` of
    its own (a source is not safe for concurrent receives), all invoking through the shared
    invoker. Each poller holds at most one batch, so at most ``maxConcurrency`` batches are in
    flight (and at most the invoker's connections, ``LAMBDALET_MAX_INVOCATIONS``, of all
    EventSources together at the activator); with one poller a queue's order holds where the
    broker keeps one.

    Per broker, the pollers of one queue are: Redis Streams, consumers ``poller_consumer`` of
    the one group (entries a poller that no longer exists left pending, e.g. after
    ``maxConcurrency`` went down, are reclaimed by the others after their idle time); RabbitMQ,
    a connection each with its own prefetch of two batches (``rabbitmq.default_prefetch``); NATS
    JetStream, pull subscribers of the same durable consumer; SQS, independent receivers.

    ``depth`` is poller 0's, not a sum: every poller's source reports the whole queue. RabbitMQ
    counts into it the messages its own consumer holds (prefetched, unsettled) but cannot tell
    the other pollers' apart from the queue's ready count, so those are left out: low by at most
    (N - 1) x prefetch, and only while those pollers are handling a batch, which the activator
    reports as in flight (a poller's buffer is never the only trace of work). ``stats`` adds
    the pollers' counts up. The Polling condition follows the pollers' health reports, the
    latest change winning.
    """

    kind = "queue"

    def __init__(self, context: Context, assignment: Assignment) -> None:
        super().__init__(context, assignment)
        self._deliveries: list[Delivery] = []

    def stop(self) -> None:
        super().stop()
        for delivery in self._deliveries:
            delivery.stop()

    async def depth(self) -> int | None:
        return await self._deliveries[0].depth() if self._deliveries else None

    def stats(self) -> DeliveryStats | None:
        if not self._deliveries:
            return None
        return total_stats([delivery.stats for delivery in self._deliveries])

    async def run(self) -> None:
        a = self._assignment
        settings = DeliverySettings.from_spec(
            a.spec, a.namespace, function_timeout=a.function_timeout, hold=self._context.hold
        )
        await self._starting()
        while not self._stopping.is_set():
            try:
                sources = await self._sources(settings, a.spec.max_concurrency)
            except SecretMissing as exc:
                await self._report(False, PollingReason.SECRET_NOT_FOUND, str(exc))
            except SourceConfigError as exc:
                await self._report(False, PollingReason.SOURCE_MISCONFIGURED, str(exc))
            else:
                self._deliveries = [
                    Delivery(source, self._context.invoker, settings, on_health=self._health)
                    for source in sources
                ]
                if self._stopping.is_set():
                    for delivery in self._deliveries:
                        delivery.stop()
                # A poller that fails unexpectedly cancels the others; cancelling cancels all.
                async with asyncio.TaskGroup() as pollers:
                    for delivery in self._deliveries:
                        pollers.create_task(delivery.run())
                return
            if await self._pause(RETRY_SETUP_SECONDS):
                return

    async def _health(self, error: SourceError | None) -> None:
        if error is None:
            await self._report(True, PollingReason.POLLING, "receiving from the source")
        elif isinstance(error, SourceConfigError):
            await self._report(False, PollingReason.SOURCE_MISCONFIGURED, str(error))
        else:
            await self._report(False, PollingReason.SOURCE_UNAVAILABLE, str(error))

    async def _sources(self, settings: DeliverySettings, count: int) -> list[Source]:
        """``count`` sources of the EventSource's queue, one per poller (Secrets read once)."""
        a, context = self._assignment, self._context

        async def secret(name: str, key: str) -> str:
            return await secret_value(context.client, a.namespace, name, key)

        build = registry.builder(a.spec)
        return await build(
            Build(
                namespace=a.namespace,
                name=a.name,
                spec=a.spec,
                consumers=tuple(poller_consumer(context.replica, i) for i in range(count)),
                # The longest a received message is in our hands: the batch window, the
                # invocation (hold + timeout + margin) and the re-invocations of an unanswered
                # batch.
                held=settings.batch_window + settings.invoke_timeout + settings.failure_hold,
                function_timeout=a.function_timeout,
                batch_window=settings.batch_window + settings.failure_hold,
                hold_timeout=context.hold,
                secret=secret,
            )
        )


async def aws_credentials(client: KubeClient, namespace: str, secret: str) -> sqs.Credentials:
    async def read(name: str, key: str) -> str:
        return await secret_value(client, namespace, name, key)

    return await sqs.credentials_from(read, secret)


class InvocationFailed(Exception):
    pass


class ScheduleRunner(_Base):
    """A schedule EventSource: a ``Scheduler`` whose last tick and claim live in the status."""

    kind = "schedule"

    async def run(self) -> None:
        a = self._assignment
        assert a.spec.schedule is not None
        await self._starting()
        try:
            timetable = parse(a.spec.schedule.expression, a.spec.schedule.time_zone, a.created)
        except ScheduleError as exc:
            await self._report(False, PollingReason.SOURCE_MISCONFIGURED, str(exc))
            return
        scheduler = Scheduler(
            timetable=timetable,
            rule=Rule(a.namespace, a.name),
            invoke=self._invoke,
            last_fired=self.status,
            invoke_timeout=invoke_timeout(a.function_timeout, self._context.hold),
        )
        await self._report(
            True,
            PollingReason.POLLING,
            f"scheduled: {a.spec.schedule.expression} ({a.spec.schedule.time_zone})",
        )
        task = asyncio.create_task(scheduler.run())
        stopped = asyncio.create_task(self._stopping.wait())
        try:
            # Stopping lets an invocation in progress finish (its tick is recorded); a schedule
            # between ticks is asleep and ends at once.
            await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            task.cancel()
            await asyncio.gather(task, stopped, return_exceptions=True)

    async def _invoke(self, payload: bytes) -> None:
        a = self._assignment
        answer = await self._context.invoker.invoke(
            a.function, payload, timeout=invoke_timeout(a.function_timeout, self._context.hold)
        )
        if not isinstance(answer, InvokeResult):
            raise InvocationFailed(f"{answer.kind}: {answer.message}")
        if answer.failed:
            raise InvocationFailed(f"function error: {answer.body[:200]!r}")


class S3Runner(_Base):
    """An S3 EventSource: the server sends the bucket's events to this dispatcher."""

    kind = "s3"

    async def run(self) -> None:
        spec = self._assignment.spec.s3
        assert spec is not None
        await self._starting()
        failures = 0  # of the server, in a row
        while not self._stopping.is_set():
            try:
                await self._ensure()
                await self._report(
                    True,
                    PollingReason.POLLING,
                    f"notifications of bucket {spec.bucket} are delivered",
                )
                # Checked again now and then: a rule or target removed on the server by hand
                # (or lost with a MinIO that keeps no config) is put back.
                delay, failures = S3_RECHECK_SECONDS, 0
            except SecretMissing as exc:
                await self._report(False, PollingReason.SECRET_NOT_FOUND, str(exc))
                delay, failures = RETRY_SETUP_SECONDS, 0
            except SourceConfigError as exc:
                await self._report(False, PollingReason.SOURCE_MISCONFIGURED, str(exc))
                delay, failures = RETRY_SETUP_SECONDS, 0
            except SourceError as exc:
                await self._report(False, PollingReason.SOURCE_UNAVAILABLE, str(exc))
                failures += 1
                delay = backoff(failures, S3_RETRY_FIRST_SECONDS, RETRY_SETUP_SECONDS)
            if await self._pause(delay):
                return

    async def _ensure(self) -> None:
        a, context = self._assignment, self._context
        spec = a.spec.s3
        assert spec is not None
        if not context.s3_url or not context.webhook_key:
            raise SourceConfigError(
                "this dispatcher has no S3 endpoint configured (LAMBDALET_DISPATCHER_S3_URL and "
                "LAMBDALET_DISPATCHER_WEBHOOK_KEY); install the chart's dispatcher"
            )
        credentials = None
        if spec.credentials_secret is not None:
            credentials = await aws_credentials(
                context.client, a.namespace, spec.credentials_secret.name
            )
        await notifications.ensure(
            spec,
            namespace=a.namespace,
            name=a.name,
            credentials=credentials,
            url=f"{context.s3_url}/s3/{a.namespace}/{a.name}",
            token=webhook_token(context.webhook_key, a.namespace, a.name, a.uid),
            queue_dir=context.s3_queue_dir,
            allow_restart=context.s3_allow_restart,
        )


def runner_for(context: Context, assignment: Assignment) -> Runner:
    spec = assignment.spec
    if spec.schedule is not None:
        return ScheduleRunner(context, assignment)
    if spec.s3 is not None:
        return S3Runner(context, assignment)
    return QueueRunner(context, assignment)
