"""The worker of the asynchronous queue: reads events, invokes them, and moves them on.

Where it sits: ``AsyncQueue.run`` (``queue``, which states the guarantees) runs one per
activator replica, all in one consumer group. Each turn of the loop: move due retries back into
their streams (when one of this worker's is due, and at every scan for the others'), look for
new Functions (every ``poll_interval``), now and then take over entries that dead workers left
idle, and block in XREADGROUP for new entries until the next of these is due. Each entry gets
a task; a semaphore of ``max_concurrency`` slots bounds how many are handled at once, and the
loop reads no more than there are free slots. A task invokes the event, asks ``policy``
what next, and makes the one atomic move of ``store`` that acknowledges the entry:
deleted, delayed for a retry, or recorded at the failure destination.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field

from redis.exceptions import RedisError

from lambdalet.activator.asyncinvoke.options import AsyncQueueOptions, ConfigLookup
from lambdalet.activator.asyncinvoke.policy import (
    AsyncEvent,
    Attempt,
    EventDecodeError,
    GiveUp,
    Retry,
    Succeeded,
    after_attempt,
    classify,
    expired,
    function_arn,
    invocation_record,
)
from lambdalet.activator.asyncinvoke.store import FULL, AsyncStore, Entry
from lambdalet.activator.model import FunctionConfig
from lambdalet.api.function import DestinationType
from lambdalet.contracts.invocation import Invoker, InvokeRejected, InvokeResult
from lambdalet.contracts.keys import Key
from lambdalet.outcomes import Outcome, of_answer, of_refusal

log = logging.getLogger(__name__)


def honour_cancellation() -> None:
    """Raise CancelledError if this task was cancelled but the cancellation got lost.

    redis-py sends every command through ``asyncio.wait_for`` when the client has a
    ``socket_timeout``, and on Python 3.11 ``wait_for`` drops a cancellation that arrives as
    the command completes (CPython gh-86296, fixed in 3.12). The request stays counted in
    ``Task.cancelling()``, so the worker checks it at every turn and before every invocation.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


@dataclass(eq=False)
class AsyncWorker:
    """One consumer of the asynchronous queue (``consumer`` names it in the group)."""

    store: AsyncStore
    invoker: Invoker
    configs: ConfigLookup
    _: KW_ONLY
    consumer: str
    options: AsyncQueueOptions
    clock: Callable[[], float]
    count: Callable[[Key, str], None]  # hears what became of each event
    attempted: Callable[[Key, Outcome], None]  # hears how each attempt ended
    _slots: asyncio.Semaphore = field(init=False)
    _handlers: dict[tuple[str, str], asyncio.Task[None]] = field(init=False, default_factory=dict)
    _room: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _next_due: float | None = field(init=False, default=None)  # earliest delayed retry, last seen

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.options.max_concurrency)

    async def run(self) -> None:
        """Work off events until cancelled; entries in hand when cancelled stay pending."""
        options = self.options
        loop = asyncio.get_running_loop()
        own_pending, streams = True, list[str]()
        next_scan = next_claim = loop.time()
        try:
            while True:
                try:
                    async with asyncio.timeout(2 * options.poll_interval + options.redis_timeout):
                        honour_cancellation()
                        if loop.time() >= next_scan:  # new Functions, others' retries
                            streams = await self.store.streams()
                            await self._promote()
                            next_scan = loop.time() + options.poll_interval
                        elif self._next_due is not None and self.clock() >= self._next_due:
                            await self._promote()
                        if own_pending:  # entries this consumer held when it last stopped
                            await self._take(await self._read(streams, new=False, block=None))
                            own_pending = False
                        if loop.time() >= next_claim:
                            await self._reclaim(streams)
                            next_claim = loop.time() + options.claim_interval
                        await self._take(await self._read_new(streams, next_scan))
                except (RedisError, OSError, TimeoutError) as exc:
                    log.warning("asynchronous queue: %s; trying again", exc)
                    await asyncio.sleep(options.poll_interval)
        finally:
            handlers = list(self._handlers.values())
            for task in handlers:
                task.cancel()
            if handlers:
                _, stuck = await asyncio.wait(handlers, timeout=options.redis_timeout)
                if stuck:
                    log.warning("%d asynchronous events still winding down", len(stuck))

    async def _promote(self) -> None:
        """Move due retries back into their streams; note when the next one is due."""
        self._next_due = await self.store.promote(self.clock())

    async def _read_new(self, streams: list[str], next_scan: float) -> list[Entry]:
        """New entries, blocking until one arrives, a retry is due, or the next scan."""
        loop = asyncio.get_running_loop()
        if self._free() <= 0:  # nothing can be taken: wait for a handler to finish instead
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.poll_interval):
                    await self._room.wait()
            return []
        block = max(next_scan - loop.time(), 0.001)
        if self._next_due is not None:
            block = min(block, max(self._next_due - self.clock(), 0.001))
        if not streams:
            await asyncio.sleep(block)
            return []
        return await self._read(streams, new=True, block=block)

    def _free(self) -> int:
        return self.options.max_concurrency - len(self._handlers)

    async def _read(self, streams: list[str], *, new: bool, block: float | None) -> list[Entry]:
        if not streams or self._free() <= 0:
            return []
        block_ms = None if block is None else max(1, round(block * 1000))
        return await self.store.read(
            self.consumer, streams, count=self._free(), block_ms=block_ms, new=new
        )

    async def _reclaim(self, streams: list[str]) -> None:
        for stream in streams:
            if self._free() <= 0:
                return
            config = self._config(self.store.key_of(stream))
            idle = self.options.placement_wait + config.timeout_seconds
            idle += self.options.claim_margin
            await self._take(
                await self.store.claim_idle(
                    stream, self.consumer, min_idle_ms=round(idle * 1000), count=self._free()
                )
            )

    async def _take(self, entries: list[Entry]) -> None:
        loop = asyncio.get_running_loop()
        for entry in entries:
            handle = (entry.stream, entry.id)
            if handle in self._handlers:
                continue  # already ours (an XAUTOCLAIM of an entry still waiting for a slot)
            task = asyncio.create_task(self._handle(entry, loop.time()))
            self._handlers[handle] = task
            task.add_done_callback(functools.partial(self._done, handle))

    def _done(self, handle: tuple[str, str], _: asyncio.Task[None]) -> None:
        self._handlers.pop(handle, None)
        self._room.set()

    def _config(self, key: Key) -> FunctionConfig:
        # Unknown (deleted, or not seen yet after a restart): the invoker rejects it with 503,
        # a throttle, so the event waits until the Function is back or the event is too old.
        return self.configs(key) or FunctionConfig(namespace=key[0], name=key[1])

    async def _handle(self, entry: Entry, read_at: float) -> None:
        loop = asyncio.get_running_loop()
        waits = self._slots.locked()
        try:
            async with self._slots:
                # A read over several streams can bring more than there are slots; an entry
                # that waited may meanwhile have been taken over by another worker.
                min_idle_ms = int((loop.time() - read_at) * 1000)
                if waits and not await self.store.reconfirm(
                    entry, self.consumer, min_idle_ms=min_idle_ms
                ):
                    return
                await self._process(entry)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("asynchronous event %s left pending for another try: %s", entry.id, exc)
        except Exception:
            log.exception("asynchronous event %s left pending for another try", entry.id)

    async def _process(self, entry: Entry) -> None:
        config = self._config(self.store.key_of(entry.stream))
        try:
            event = AsyncEvent.decode(entry.fields)
        except EventDecodeError as exc:
            log.error("%s %s: %s; moved to the dead-letter stream", entry.stream, entry.id, exc)
            fields = {**entry.fields, b"error": str(exc).encode()}
            await self.store.add(self.store.dead_letter_stream(config.key), fields, source=entry)
            self.count(config.key, "malformed")
            return
        honour_cancellation()  # before the longest wait: the invocation
        max_age = config.max_event_age_seconds
        action: Succeeded | Retry | GiveUp | None
        action = expired(event, max_event_age=max_age, now=self.clock())
        if action is None:
            answer = await self._attempt(config, event)
            if isinstance(answer, InvokeResult):
                attempt = Attempt.from_result(answer)
                outcome = of_answer(answer.status, answer.function_error, answer.body)
            else:
                attempt = Attempt.from_rejection(answer)
                outcome = of_refusal(answer.status)
            self.attempted(config.key, outcome)
            action = after_attempt(
                event,
                classify(answer),
                attempt,
                max_retries=config.max_retries,
                max_event_age=max_age,
                policy=self.options.retry,
                now=self.clock(),
            )
        if isinstance(action, Succeeded):
            await self.store.ack(entry)
            self.count(config.key, "succeeded")
        elif isinstance(action, Retry):
            retry_id = uuid.uuid4().hex
            fields = action.event.encode()
            if await self.store.retry_later(entry, fields, due_at=action.due_at, retry_id=retry_id):
                due = self._next_due
                self._next_due = action.due_at if due is None else min(due, action.due_at)
            throttled = action.event.throttles > event.throttles
            self.count(config.key, "throttled" if throttled else "retried")
        else:
            await self._give_up(entry, config, action)

    async def _attempt(
        self, config: FunctionConfig, event: AsyncEvent
    ) -> InvokeResult | InvokeRejected:
        """One invocation; any failure to get an answer becomes an InvokeRejected."""
        options = self.options
        deadline = asyncio.get_running_loop().time() + options.placement_wait
        limit = options.placement_wait + config.timeout_seconds + options.claim_margin / 2
        try:
            async with asyncio.timeout(limit):
                return await self.invoker.invoke(
                    config.key,
                    event.payload,
                    request_id=event.request_id,
                    headers=event.headers,
                    deadline=deadline,
                )
        except InvokeRejected as exc:
            return exc
        except Exception as exc:  # the connection, or our own deadline: the handler may have run
            log.warning("asynchronous event %s: invocation failed: %r", event.request_id, exc)
            return InvokeRejected(502, "ServiceException", f"invocation failed: {exc!r}")

    async def _give_up(self, entry: Entry, config: FunctionConfig, give_up: GiveUp) -> None:
        """Send the invocation record to onFailure, else to the dead-letter stream."""
        now = self.clock()
        record = invocation_record(
            give_up, function_arn=function_arn(self.options.region, config.name), now=now
        )
        body = json.dumps(record, separators=(",", ":")).encode()
        destination = config.on_failure
        self.count(config.key, give_up.condition.name.lower())
        if destination is not None and destination.type is DestinationType.FUNCTION:
            target = self.configs((config.namespace, destination.name))
            if target is not None:
                event = AsyncEvent(str(uuid.uuid4()), body, now, {})
                added = await self.store.add(
                    self.store.stream(target.key),
                    event.encode(),
                    limit=self.options.max_events_per_function,
                    function_stream=True,
                    source=entry,
                )
                if added != FULL:
                    return
            log.warning(
                "onFailure function %s/%s is %s; record of %s goes to the dead-letter stream",
                config.namespace,
                destination.name,
                "unknown" if target is None else "full",
                give_up.event.request_id,
            )
        stream = self.store.dead_letter_stream(config.key)
        if destination is not None and destination.type is DestinationType.REDIS_STREAM:
            stream = destination.name
        fields = {
            b"record": body,
            b"requestId": give_up.event.request_id.encode(),
            b"condition": give_up.condition.value.encode(),
            b"function": f"{config.namespace}/{config.name}".encode(),
        }
        await self.store.add(stream, fields, source=entry)
