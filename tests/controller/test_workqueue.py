"""The work queue's promises: one entry per key, never two workers on one key, nothing lost, and
retries that back off per key until reset or forgotten."""

from __future__ import annotations

import asyncio

import pytest

from lambdalet.controller.workqueue import WorkQueue


async def test_a_key_added_many_times_is_queued_once() -> None:
    queue: WorkQueue[str] = WorkQueue()
    for key in ["a", "b", "a", "a", "b", "c"]:
        queue.add(key)
    assert len(queue) == 3
    taken = [(await queue.get())[0] for _ in range(3)]
    assert taken == ["a", "b", "c"]
    assert len(queue) == 0


async def test_a_key_added_while_active_comes_back_once_after_done() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    key, _ = await queue.get()
    queue.add("a")
    queue.add("a")
    assert len(queue) == 0  # not handed to a second worker while the first has it
    queue.done(key)
    assert len(queue) == 1
    assert not queue.idle
    assert await queue.get() == ("a", False)
    assert not queue.idle
    queue.done("a")
    assert len(queue) == 0
    assert queue.idle


@pytest.mark.parametrize(
    ("adds", "expected_force"),
    [
        ([False], False),
        ([True], True),
        ([False, True, False], True),
    ],
)
async def test_force_is_kept_until_the_key_is_taken(adds: list[bool], expected_force: bool) -> None:
    queue: WorkQueue[str] = WorkQueue()
    for force in adds:
        queue.add("a", force=force)
    assert await queue.get() == ("a", expected_force)
    queue.done("a")
    queue.add("a")
    assert await queue.get() == ("a", False)


async def test_forget_drops_a_pending_repeat() -> None:
    queue: WorkQueue[str] = WorkQueue()
    queue.add("a")
    await queue.get()
    queue.add("a")
    queue.forget("a")
    queue.done("a")
    assert len(queue) == 0


async def test_get_waits_for_a_key() -> None:
    queue: WorkQueue[str] = WorkQueue()
    waiter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    queue.add("x")
    assert await asyncio.wait_for(waiter, 1) == ("x", False)


class Sleeps:
    """The queue's sleep, on simulated time: records each delay, returns when ``wake`` is called."""

    def __init__(self) -> None:
        self.asked: list[float] = []
        self._gates: list[asyncio.Event] = []

    async def __call__(self, delay: float) -> None:
        self.asked.append(delay)
        gate = asyncio.Event()
        self._gates.append(gate)
        await gate.wait()

    async def wake(self) -> None:
        for gate in self._gates:
            gate.set()
        self._gates.clear()
        for _ in range(3):  # let the woken re-queues run
            await asyncio.sleep(0)


@pytest.mark.parametrize(
    ("first", "retries", "delays"),
    [
        (0.5, 4, [0.5, 1.0, 2.0, 4.0]),
        (5.0, 3, [5.0, 10.0, 20.0]),
        (100.0, 4, [100.0, 200.0, 300.0, 300.0]),  # at most max_delay
    ],
)
async def test_retry_delays_double_from_first_up_to_the_maximum(
    first: float, retries: int, delays: list[float]
) -> None:
    sleeps = Sleeps()
    queue: WorkQueue[str] = WorkQueue(sleep=sleeps)
    assert [queue.retry_later("a", first=first) for _ in range(retries)] == delays


async def test_a_retried_key_comes_back_after_its_delay() -> None:
    sleeps = Sleeps()
    queue: WorkQueue[str] = WorkQueue(sleep=sleeps)
    queue.retry_later("a", first=0.5)
    await asyncio.sleep(0)
    assert sleeps.asked == [0.5]
    assert len(queue) == 0
    await sleeps.wake()
    assert len(queue) == 1
    assert await queue.get() == ("a", False)


async def test_a_key_has_one_pending_retry_at_a_time() -> None:
    sleeps = Sleeps()
    queue: WorkQueue[str] = WorkQueue(sleep=sleeps)
    queue.retry_later("a", first=0.5)
    queue.retry_later("a", first=0.5)  # the backoff grows, no second re-queue
    await asyncio.sleep(0)
    assert sleeps.asked == [0.5]
    await sleeps.wake()
    assert len(queue) == 1
    assert queue.retry_later("a", first=0.5) == 2.0  # the next one may be scheduled again
    await asyncio.sleep(0)
    assert sleeps.asked == [0.5, 2.0]


async def test_reset_starts_the_backoff_again_at_first() -> None:
    queue: WorkQueue[str] = WorkQueue(sleep=Sleeps())
    queue.retry_later("a", first=0.5)
    queue.retry_later("a", first=0.5)
    queue.retry_later("b", first=0.5)
    queue.reset("a")
    assert queue.retry_later("a", first=5.0) == 5.0
    assert queue.retry_later("b", first=0.5) == 1.0  # other keys keep theirs


async def test_forget_cancels_a_pending_retry_and_the_backoff() -> None:
    sleeps = Sleeps()
    queue: WorkQueue[str] = WorkQueue(sleep=sleeps)
    queue.retry_later("a", first=0.5)
    queue.retry_later("a", first=0.5)
    await asyncio.sleep(0)
    queue.forget("a")
    await sleeps.wake()
    assert len(queue) == 0
    assert queue.retry_later("a", first=0.5) == 0.5


class Flaky(Exception):
    pass


async def test_serve_retries_a_retry_error_survives_a_bug_and_reports_idle() -> None:
    sleeps = Sleeps()
    queue: WorkQueue[str] = WorkQueue(sleep=sleeps)
    handled: list[tuple[str, bool]] = []
    idles: list[int] = []
    failures = {"flaky": 1, "buggy": 1}

    async def handle(key: str, force: bool) -> None:
        handled.append((key, force))
        if failures.get(key, 0) > 0:
            failures[key] -= 1
            raise Flaky() if key == "flaky" else RuntimeError("a bug")

    worker = asyncio.create_task(
        queue.serve(handle, retry=Flaky, first=0.5, idle=lambda: idles.append(len(handled)))
    )
    try:
        queue.add("flaky", force=True)
        queue.add("buggy")
        for _ in range(5):
            await asyncio.sleep(0)
        assert handled == [("flaky", True), ("buggy", False)]
        assert sleeps.asked == [0.5]  # only the retry error is tried again
        assert idles == [2]
        await sleeps.wake()
        for _ in range(3):
            await asyncio.sleep(0)
        assert handled[2:] == [("flaky", False)]
        assert idles == [2, 3]
        assert queue.idle
    finally:
        worker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await worker
