"""The delivery loop with an in-memory source and Function, in simulated time."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from lambdalet.api.eventsource import EventSourceSpec
from lambdalet.contracts.invocation import InvokeResult
from lambdalet.dispatcher.delivery.loop import Delivery, DeliverySettings
from lambdalet.dispatcher.delivery.outcome import Answer, FailureKind, InvokeFailed, Policy
from tests.dispatcher.fakes import FakeSource, Idle
from tests.kit.clock import FakeClock
from tests.kit.invokers import Call, RecordingInvoker, succeed

FUNCTION = ("team", "orders")


def fail_ids(*ids: str) -> Callable[[Call], Answer]:
    def answer(call: Call) -> Answer:
        failed = [{"itemIdentifier": i} for i in call.ids if i in ids]
        return InvokeResult(
            status=200, body=json.dumps({"batchItemFailures": failed}).encode(), request_id="r"
        )

    return answer


def counts(**states: int) -> dict[str, int]:
    return {state: n for state, n in states.items() if n}


def settings(**overrides: object) -> DeliverySettings:
    values: dict[str, object] = {"function": FUNCTION, "batch_size": 10, "receive_wait": 20.0}
    values.update(overrides)
    return DeliverySettings(**values)  # type: ignore[arg-type]


async def run_until_idle(
    source: FakeSource, answer: Callable[[Call], Answer], **overrides: object
) -> tuple[Delivery, RecordingInvoker]:
    invoker = RecordingInvoker(answer, clock=source.clock)
    delivery = Delivery(source, invoker, settings(**overrides), clock=source.clock)
    with pytest.raises(Idle):
        await delivery.run()
    assert source.closed
    return delivery, invoker


@pytest.fixture
def source() -> FakeSource:
    return FakeSource(FakeClock())


@pytest.mark.parametrize(
    ("produced", "batch_size", "batches"),
    [(25, 10, [10, 10, 5]), (1, 10, [1]), (3, 1, [1, 1, 1]), (20, 20, [20])],
)
async def test_batches_of_batch_size(
    source: FakeSource, produced: int, batch_size: int, batches: list[int]
) -> None:
    source.add(produced)

    delivery, invoker = await run_until_idle(source, succeed, batch_size=batch_size)

    assert [len(call.ids) for call in invoker.calls] == batches
    assert sorted(source.acks, key=lambda i: int(i[1:])) == [f"m{n}" for n in range(produced)]
    assert source.states() == {"acked": produced}
    assert delivery.stats.acked == delivery.stats.received == produced
    assert invoker.calls[0].function == FUNCTION
    assert invoker.calls[0].event["Records"][0]["eventSourceARN"] == source.arn


async def test_window_zero_delivers_what_one_receive_returned(source: FakeSource) -> None:
    source.add(2, at=0.0)
    source.add(2, at=1.0)

    _, invoker = await run_until_idle(source, succeed, batch_window=0.0)

    assert [(call.at, call.ids) for call in invoker.calls] == [
        (0.0, ["m0", "m1"]),
        (1.0, ["m2", "m3"]),
    ]


@pytest.mark.parametrize(
    ("arrivals", "batch_size", "window", "expected"),
    [
        # The window runs from the first message; later ones join until it closes.
        ([0, 1, 2, 10], 10, 5, [(5.0, 3), (15.0, 1)]),
        # A full batch goes at once, before the window closes.
        ([0, 1, 2, 3], 3, 100, [(2.0, 3), (103.0, 1)]),
        # Messages that arrive after the window start the next one.
        ([0, 5, 6], 10, 5, [(5.0, 2), (11.0, 1)]),
        # A receive's long wait is cut to what is left of the window.
        ([30], 10, 5, [(35.0, 1)]),
    ],
)
async def test_batch_window(
    source: FakeSource,
    arrivals: list[float],
    batch_size: int,
    window: float,
    expected: list[tuple[float, int]],
) -> None:
    for at in arrivals:
        source.add(1, at=at)

    _, invoker = await run_until_idle(
        source, succeed, batch_size=batch_size, batch_window=float(window)
    )

    assert [(call.at, len(call.ids)) for call in invoker.calls] == expected
    assert all(wait <= 20.0 for _, _, wait in source.receives)


async def test_partial_failures_are_retried_until_they_succeed(source: FakeSource) -> None:
    source.add(5)
    attempts: dict[str, int] = {}

    def flaky(call: Call) -> Answer:
        for i in call.ids:
            attempts[i] = attempts.get(i, 0) + 1
        # m1 fails twice, m3 once, then they succeed.
        limits = {"m1": 2, "m3": 1}
        failing = [i for i in call.ids if attempts[i] <= limits.get(i, 0)]
        return fail_ids(*failing)(call)

    delivery, invoker = await run_until_idle(
        source, flaky, policy=Policy(max_retries=2, report_batch_item_failures=True)
    )

    assert [call.ids for call in invoker.calls] == [
        ["m0", "m1", "m2", "m3", "m4"],
        ["m1", "m3"],
        ["m1"],
    ]
    receive_counts = [
        [int(r["attributes"]["ApproximateReceiveCount"]) for r in call.event["Records"]]
        for call in invoker.calls
    ]
    assert receive_counts == [[1, 1, 1, 1, 1], [2, 2], [3]]
    assert source.states() == {"acked": 5}
    assert (delivery.stats.acked, delivery.stats.retried) == (5, 3)


@pytest.mark.parametrize(
    ("dead_letter", "dead", "dropped"),
    [(True, ["m1"], 0), (False, [], 1)],
)
async def test_after_max_retries_dead_letter_or_drop(
    source: FakeSource, dead_letter: bool, dead: list[str], dropped: int
) -> None:
    source.add(3)
    policy = Policy(max_retries=2, dead_letter=dead_letter, report_batch_item_failures=True)

    delivery, invoker = await run_until_idle(source, fail_ids("m1"), policy=policy)

    # m1: deliveries 1 and 2 retried, delivery 3 is its last.
    assert [call.ids for call in invoker.calls] == [["m0", "m1", "m2"], ["m1"], ["m1"]]
    assert [i for i, _ in source.dead] == dead
    assert all(reason == "BatchItemFailure" for _, reason in source.dead)
    assert delivery.stats.dropped == dropped
    assert (delivery.stats.acked, delivery.stats.dead_lettered) == (2, len(dead))
    # Counted: every message ended, none lost.
    assert source.states() == counts(acked=3 - len(dead), dead=len(dead))


async def test_a_function_error_fails_the_whole_batch(source: FakeSource) -> None:
    source.add(2)
    error = InvokeResult(
        status=200,
        body=b'{"errorType": "ValueError", "errorMessage": "boom"}',
        request_id="r",
        function_error="Unhandled",
    )

    delivery, invoker = await run_until_idle(
        source, lambda call: error, policy=Policy(max_retries=1, dead_letter=True)
    )

    assert len(invoker.calls) == 2
    assert sorted(source.dead) == [
        ("m0", "FunctionError: Unhandled: ValueError: boom"),
        ("m1", "FunctionError: Unhandled: ValueError: boom"),
    ]
    assert delivery.stats.retried == 2


async def test_throttles_are_invoked_again_with_backoff_not_retried(source: FakeSource) -> None:
    source.add(2)
    answers: list[Answer] = [
        InvokeFailed(FailureKind.THROTTLED, "Rate Exceeded", 429),
        InvokeFailed(FailureKind.UNREACHABLE, "connection refused"),
        InvokeResult(status=200, body=b"null", request_id="r"),
    ]

    delivery, invoker = await run_until_idle(source, lambda call: answers.pop(0))

    assert [call.at for call in invoker.calls] == pytest.approx([0.0, 0.1, 0.3])
    assert source.states() == {"acked": 2}
    assert delivery.stats.retried == 0
    assert (delivery.stats.invocations, delivery.stats.not_answered) == (3, 2)


async def test_a_batch_never_answered_within_the_hold_is_released(source: FakeSource) -> None:
    source.add(1)
    throttled = InvokeFailed(FailureKind.THROTTLED, "Rate Exceeded", 429)
    answers: list[Answer] = [throttled] * 5 + [InvokeResult(200, b"null", "r")]

    delivery, invoker = await run_until_idle(
        source,
        lambda call: answers.pop(0),
        failure_hold=1.0,
        policy=Policy(max_retries=0, dead_letter=True),
    )

    # 0.1 + 0.2 + 0.4 = 0.7 s of backoff; the next (0.8 s) would pass the hold: released, then
    # received again (receive count 2, beyond maxRetries 0) and still not dead-lettered.
    assert [call.at for call in invoker.calls] == pytest.approx([0.0, 0.1, 0.3, 0.7, 0.7, 0.8])
    counts = [
        call.event["Records"][0]["attributes"]["ApproximateReceiveCount"] for call in invoker.calls
    ]
    assert counts == ["1"] * 4 + ["2"] * 2
    assert source.dead == []
    assert source.states() == {"acked": 1}
    assert delivery.stats.retried == 1


async def test_source_errors_back_off_and_start_again(source: FakeSource) -> None:
    source.add(3)
    source.fail = {"receive": 3, "start": 1}

    delivery, invoker = await run_until_idle(source, succeed, backoff_initial=0.5, backoff_max=1.5)

    # The first start fails, then receive 3 times: 0.5, 1.0, 1.5, 1.5 s (capped); after each
    # error the source is started again.
    assert source.clock.sleeps == [0.5, 1.0, 1.5, 1.5]
    assert (source.calls.count("start"), source.started) == (5, 4)
    assert source.states() == {"acked": 3}
    assert delivery.stats.source_errors == 4
    assert len(invoker.calls) == 1


async def test_a_failed_settle_step_is_done_again_not_the_whole_batch(source: FakeSource) -> None:
    source.add(3)
    source.fail = {"ack": 2}
    policy = Policy(max_retries=0, dead_letter=True, report_batch_item_failures=True)

    delivery, invoker = await run_until_idle(source, fail_ids("m1"), policy=policy)

    assert len(invoker.calls) == 1  # not invoked again
    assert source.dead == [("m1", "BatchItemFailure")]  # dead-lettered once
    assert source.states() == {"acked": 2, "dead": 1}
    assert source.calls.count("dead_letter") == 1
    assert source.calls.count("ack") == 3
    assert source.started == 3
    assert delivery.stats.acked == 2


async def test_receiving_waits_for_the_batch_to_be_settled(source: FakeSource) -> None:
    source.add(50)
    source.fail = {"ack": 1, "retry": 1}
    policy = Policy(max_retries=3, report_batch_item_failures=True)

    await run_until_idle(source, fail_ids("m3", "m17", "m40"), batch_size=7, policy=policy)

    assert source.most_in_flight <= 7
    assert source.states() == {"acked": 50}


async def test_a_batch_cut_short_by_a_source_error_is_still_delivered(
    source: FakeSource,
) -> None:
    source.add(1, at=0.0)
    source.add(1, at=1.0)
    source.fail_calls = {("receive", 3)}  # the window's second extra receive

    _, invoker = await run_until_idle(source, succeed, batch_window=5.0)

    assert [(call.at, call.ids) for call in invoker.calls] == [(1.0, ["m0", "m1"])]
    assert source.states() == {"acked": 2}
    assert source.started == 2


@pytest.mark.parametrize(
    ("bodies", "limit", "calls", "dead"),
    [
        # Records of ~560 bytes: two fit in 1,200 bytes, three do not.
        ([100, 100, 100, 100, 100], 1_200, [["m0", "m1"], ["m2", "m3"], ["m4"]], []),
        # m1 alone is too large: dead-lettered at once, the others go on.
        ([100, 5_000, 100], 1_200, [["m0"], ["m2"]], ["m1"]),
        ([5_000], 1_200, [], ["m0"]),
    ],
)
async def test_events_are_cut_to_the_payload_limit(
    source: FakeSource, bodies: list[int], limit: int, calls: list[list[str]], dead: list[str]
) -> None:
    source.add(len(bodies), body=lambda n: b"x" * bodies[n])

    delivery, invoker = await run_until_idle(
        source, succeed, payload_limit=limit, policy=Policy(dead_letter=True)
    )

    assert [call.ids for call in invoker.calls] == calls
    assert [i for i, _ in source.dead] == dead
    assert all(reason.startswith("RecordTooLarge") for _, reason in source.dead)
    assert source.most_in_flight <= 10
    assert delivery.stats.received == len(bodies)
    assert source.states() == counts(acked=len(bodies) - len(dead), dead=len(dead))


@pytest.mark.parametrize("limit", [None, 1_200])
async def test_stop_ends_the_loop_once_the_messages_in_hand_are_settled(
    source: FakeSource, limit: int | None
) -> None:
    source.add(30, body=lambda n: b"x" * 100)
    delivery: Delivery

    def stop_after_first(call: Call) -> Answer:
        delivery.stop()
        return succeed(call)

    invoker = RecordingInvoker(clock=source.clock, answer=stop_after_first)
    overrides = {"payload_limit": limit} if limit else {}
    delivery = Delivery(source, invoker, settings(**overrides), clock=source.clock)

    await delivery.run()

    # Without a limit one batch of 10; with it, the 10 received go in events of 2 (the carry).
    assert sum(len(call.ids) for call in invoker.calls) == 10
    assert source.states() == {"acked": 10, "waiting": 20}
    assert source.closed


async def test_paused_source_is_not_touched(source: FakeSource) -> None:
    source.add(1)
    invoker = RecordingInvoker(clock=source.clock, answer=succeed)
    delivery = Delivery(source, invoker, settings(enabled=False), clock=source.clock)

    await delivery.run()

    assert source.calls == []
    assert await delivery.depth() is None


async def test_depth_is_the_sources_once_started(source: FakeSource) -> None:
    source.add(4)
    invoker = RecordingInvoker(clock=source.clock, answer=succeed)
    delivery = Delivery(source, invoker, settings(), clock=source.clock)

    assert await delivery.depth() is None
    with pytest.raises(Idle):
        await delivery.run()
    source.add(2, at=source.clock.seconds + 100)
    assert await delivery.depth() == 2


async def test_invoke_timeout_is_passed_on(source: FakeSource) -> None:
    source.add(1)

    _, invoker = await run_until_idle(source, succeed, invoke_timeout=68.0)

    assert invoker.calls[0].timeout == 68.0


def test_settings_from_spec() -> None:
    spec = EventSourceSpec.model_validate(
        {
            "function": {"name": "orders"},
            "redisStreams": {"address": "redis:6379", "stream": "orders"},
            "batchSize": 100,
            "batchWindowSeconds": 2,
            "maxRetries": 4,
            "deadLetter": {"type": "redisStream", "target": "orders-dlq"},
            "reportBatchItemFailures": True,
            "enabled": False,
        }
    )

    got = DeliverySettings.from_spec(spec, "team", function_timeout=10.0, hold=60.0)

    assert got.function == ("team", "orders")
    assert (got.batch_size, got.batch_window, got.enabled) == (100, 2.0, False)
    assert got.policy == Policy(max_retries=4, dead_letter=True, report_batch_item_failures=True)
    assert got.invoke_timeout == 75.0  # hold 60 + function 10 + margin 5


async def test_health_is_told_on_each_change_not_each_turn(source: FakeSource) -> None:
    source.add(3)
    source.fail = {"receive": 2}
    heard: list[str | None] = []

    async def on_health(error: Exception | None) -> None:
        heard.append(None if error is None else str(error))

    delivery = Delivery(
        source,
        RecordingInvoker(clock=source.clock, answer=succeed),
        settings(backoff_initial=0.5),
        clock=source.clock,
        on_health=on_health,
    )
    with pytest.raises(Idle):
        await delivery.run()

    # The same error twice is told once; the recovery once, however many turns follow.
    assert heard == ["receive failed", None]
    assert source.states() == {"acked": 3}
