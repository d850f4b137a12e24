"""The runners this replica has going, started and replaced so that two runners of one
EventSource never overlap here.

``converge`` is handed what should run (the supervisor's assignments) and brings the runners in
line: a runner whose ``Assignment.fingerprint`` changed (spec generation, uid, the Function's
timeout) is stopped, and a new one is started once the old one has finished; a runner that ended
by itself (a schedule past its last tick, an error) is not started again until its EventSource
or Function changes. Stopping is graceful: a queue runner settles the batch in hand and a
schedule finishes the invocation in progress, for up to ``STOP_SECONDS``; then the task is
cancelled (the broker redelivers whatever was in flight).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lambdalet.contracts.keys import Key
from lambdalet.dispatcher.delivery.loop import DeliveryStats
from lambdalet.dispatcher.replica.runners import Assignment, Context, Runner, runner_for

log = logging.getLogger("lambdalet.dispatcher")

STOP_SECONDS = 30.0
DEPTH_TIMEOUT = 2.0

Fingerprint = tuple[str, int, float]


@dataclass
class _Running:
    fingerprint: Fingerprint
    function: Key
    runner: Runner
    task: asyncio.Task[None]


class Runs:
    """The running, stopping and ended runners, by EventSource."""

    def __init__(self, context: Context, settled: Callable[[], None]) -> None:
        """``settled`` is called when a stopped runner has finished (a replacement may start)."""
        self._context = context
        self._settled = settled
        self._running: dict[Key, _Running] = {}
        self._stops: dict[Key, asyncio.Task[None]] = {}  # runners being stopped
        self._stopping: dict[Key, _Running] = {}
        self._ended: dict[Key, Fingerprint] = {}

    def converge(self, wanted: Mapping[Key, Assignment]) -> None:
        for key, running in list(self._running.items()):
            want = wanted.get(key)
            if want is None or want.fingerprint != running.fingerprint:
                self._stop(key)
        for key in self._ended.keys() - wanted.keys():
            del self._ended[key]
        for key, assignment in wanted.items():
            if key in self._running or key in self._stops:
                continue
            if self._ended.get(key) == assignment.fingerprint:
                continue
            self._ended.pop(key, None)
            self._start(key, assignment)

    async def stop(self) -> None:
        """Stop every runner gracefully (``STOP_SECONDS`` at most)."""
        for key in list(self._running):
            self._stop(key)
        pending = list(self._stops.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def running(self) -> set[Key]:
        return set(self._running)

    def snapshot(self) -> list[tuple[Key, str, DeliveryStats | None]]:
        """(EventSource, kind, delivery counts) of each source running or still stopping."""
        runs = [*self._running.items(), *self._stopping.items()]
        return [(key, r.runner.kind, r.runner.stats()) for key, r in runs]

    async def depths(self) -> dict[Key, int]:
        """Messages waiting per Function, over the queue sources that can tell."""
        running = list(self._running.values())

        async def one(item: _Running) -> tuple[Key, int | None]:
            try:
                depth = await asyncio.wait_for(item.runner.depth(), DEPTH_TIMEOUT)
            except Exception:
                depth = None
            return item.function, depth

        totals: dict[Key, int] = {}
        for function, depth in await asyncio.gather(*(one(item) for item in running)):
            if depth is not None:
                totals[function] = totals.get(function, 0) + depth
        return totals

    def _start(self, key: Key, assignment: Assignment) -> None:
        runner = runner_for(self._context, assignment)
        task = asyncio.create_task(self._run(key, runner), name=f"eventsource {key[0]}/{key[1]}")
        self._running[key] = _Running(assignment.fingerprint, assignment.function, runner, task)
        log.info("running EventSource %s/%s", *key)

    async def _run(self, key: Key, runner: Runner) -> None:
        try:
            await runner.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("EventSource %s/%s stopped with an error", *key)
        finally:
            running = self._running.get(key)
            if running is not None and running.runner is runner:
                del self._running[key]
                self._ended[key] = running.fingerprint

    def _stop(self, key: Key) -> None:
        running = self._running.pop(key)
        running.runner.stop()
        log.info("stopping EventSource %s/%s", *key)
        waiter = asyncio.create_task(_finish(running.task))
        # A new runner for the key waits until the old one has finished.
        self._stops[key] = waiter
        self._stopping[key] = running
        waiter.add_done_callback(lambda _: self._stop_done(key, waiter))

    def _stop_done(self, key: Key, waiter: asyncio.Task[None]) -> None:
        if self._stops.get(key) is waiter:
            del self._stops[key]
            del self._stopping[key]
            self._settled()


async def _finish(task: asyncio.Task[None]) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(task), STOP_SECONDS)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    except Exception:
        pass
