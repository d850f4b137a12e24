"""A deduplicating work queue of Function keys, between kopf's event handlers and the workers.

Events only mark a Function as needing reconciliation; a fixed pool of workers does the work.
However many events arrive for one Function, it waits in the queue once, and a Function being
reconciled while new events arrive is queued again when its worker finishes — so the queue holds
at most one entry per Function (its bound), no two workers ever handle the same Function, and
kopf's per-object event queues drain at once instead of holding a backlog of full objects.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._ready: asyncio.Queue[K] = asyncio.Queue()
        self._waiting: set[K] = set()  # in _ready
        self._active: set[K] = set()  # taken by a worker
        self._again: set[K] = set()  # active, and added meanwhile
        self._forced: set[K] = set()

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

    def forget(self, key: K) -> None:
        """Drop a queued key (its object is gone); a worker holding it finishes normally."""
        self._again.discard(key)
        self._forced.discard(key)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing being worked on."""
        return not self._waiting and not self._active

    def __len__(self) -> int:
        return len(self._waiting)
