"""The work queue's promises: one entry per key, never two workers on one key, nothing lost."""

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
