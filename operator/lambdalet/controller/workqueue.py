"""A deduplicating work queue of keys, between kopf's event handlers and the workers, that also
owns their retries.

Events only mark an object as needing reconciliation; a fixed pool of workers does the work.
However many events arrive for one object, it waits in the queue once, and an object being
reconciled while new events arrive is queued again when its worker finishes — so the queue holds
at most one entry per object (its bound), no two workers ever handle the same object, and kopf's
per-object event queues drain at once instead of holding a backlog of full objects.

A worker whose attempt must be tried again later (a transient API error, a problem only
something outside the watch can fix) calls ``retry_later``: the key comes back after the
``lambdalet.backoff`` delay for the number of its retries since its last ``reset`` (``first``,
``2 * first``, ... up to ``max_delay``), and a key has at most one delayed re-queue pending.
``reset`` after an attempt that needs no retry; ``forget`` when the object is gone. ``serve`` is
the loop of one worker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from lambdalet.backoff import backoff

K = TypeVar("K", bound=Hashable)

log = logging.getLogger("lambdalet.operator")

RETRY_MAX_SECONDS = 300.0


class WorkQueue(Generic[K]):
    def __init__(
        self,
        *,
        max_delay: float = RETRY_MAX_SECONDS,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._waiting: set[K] = set()  # in _ready
        self._active: set[K] = set()  # taken by a worker
        self._again: set[K] = set()  # active, and added meanwhile
        self._forced: set[K] = set()
        self._max_delay = max_delay
        self._sleep = sleep
        self._retries: dict[K, int] = {}  # retries of the key since its last reset
        self._later: dict[K, asyncio.Task[None]] = {}  # its pending delayed re-queue

    def add(self, key: K, *, force: bool = False) -> None:
        if force:
            self._forced.add(key)
        if key in self._active:
            self._again.add(key)
        elif key not in self._waiting:
            self._waiting.add(key)
            self._ready.put_nowait(key)

    async def get(self) -> tuple[K, bool]:
        """The next key and whether a forced reconciliation was asked for; call ``done`` after."""
        key = await self._ready.get()
        self._waiting.discard(key)
        self._active.add(key)
        force = key in self._forced
        self._forced.discard(key)
        return key, force

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    def retry_later(self, key: K, *, first: float) -> float:
        """Queue ``key`` again after the next delay of its backoff, and return that delay.

        E.g. with ``first=0.5``: 0.5, 1, 2, 4, ... 256, then 300 (``max_delay``) for every
        later retry until ``reset``. While a re-queue is pending, the delay still grows but no
        second one is scheduled: the pending one comes first anyway.
        """
        retries = self._retries[key] = self._retries.get(key, 0) + 1
        delay = backoff(retries, first, self._max_delay)
        pending = self._later.get(key)
        if pending is None or pending.done():
            self._later[key] = asyncio.create_task(self._add_after(key, delay))
        return delay

    def reset(self, key: K) -> None:
        """The key's last attempt needs no retry: its next ``retry_later`` starts at ``first``."""
        self._retries.pop(key, None)

    def forget(self, key: K) -> None:
        """Drop a queued repeat and any pending retry (the object is gone); a worker holding the
        key finishes normally."""
        self._again.discard(key)
        self._forced.discard(key)
        self._retries.pop(key, None)
        pending = self._later.pop(key, None)
        if pending is not None:
            pending.cancel()

    async def serve(
        self,
        handle: Callable[[K, bool], Awaitable[None]],
        *,
        retry: type[Exception] | tuple[type[Exception], ...],
        first: float,
        idle: Callable[[], None],
        what: str = "reconciliation",
    ) -> None:
        """One worker: ``handle(key, force)`` each key taken, until cancelled.

        A ``retry`` error puts the key back with ``retry_later``; any other error is logged (a
        bug must not kill the worker); ``idle`` is called whenever the queue runs dry, once per
        burst of work.
        """
        while True:
            key, force = await self.get()
            try:
                await handle(key, force)
            except retry as exc:
                delay = self.retry_later(key, first=first)
                log.warning("%s: %s; retrying in %.1fs", _named(key), exc, delay)
            except Exception:
                log.exception("%s: %s failed", _named(key), what)
            finally:
                self.done(key)
                if self.idle:
                    idle()

    async def _add_after(self, key: K, delay: float) -> None:
        await self._sleep(delay)
        self._later.pop(key, None)
        self.add(key)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being worked on."""
        return not self._waiting and not self._active

    def __len__(self) -> int:
        return len(self._waiting)


def _named(key: Hashable) -> str:
    """``namespace/name`` for a (namespace, name) key."""
    return "/".join(map(str, key)) if isinstance(key, tuple) else str(key)
