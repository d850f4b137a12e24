"""asyncpolicy: what happens after each attempt, one row per case (no Redis, no clock)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from lambdalet.activator.asyncinvoke.policy import (
    AsyncEvent,
    Attempt,
    Condition,
    EventDecodeError,
    GiveUp,
    Outcome,
    Retry,
    RetryPolicy,
    Succeeded,
    after_attempt,
    classify,
    expired,
    function_arn,
    invocation_record,
    timestamp,
)
from lambdalet.contracts.invocation import InvokeRejected, InvokeResult

T0 = 1_700_000_000.0  # enqueued at
HOUR = 3600.0
POLICY = RetryPolicy()  # Lambda's: 60 s base for errors, throttles 1 s doubling to 300 s
EVENT = AsyncEvent("req-1", b'{"a": 1}', T0, {"X-Amzn-Trace-Id": "Root=1"})
ERROR = Attempt(200, b'{"errorMessage": "boom"}', "Unhandled")
THROTTLE = Attempt(429, b'{"errorType": "TooManyRequestsException"}')
OK = Attempt(200, b'"done"')
EXHAUSTED = Condition.RETRIES_EXHAUSTED


@pytest.mark.parametrize(
    ("answer", "outcome"),
    [
        (InvokeResult(200, b"{}", "r"), Outcome.SUCCESS),
        (InvokeResult(202, b"", "r"), Outcome.SUCCESS),
        (InvokeResult(200, b"{}", "r", function_error="Unhandled"), Outcome.FUNCTION_ERROR),
        (InvokeResult(502, b"{}", "r", function_error="Unhandled"), Outcome.FUNCTION_ERROR),
        (InvokeResult(502, b"{}", "r"), Outcome.FUNCTION_ERROR),
        (InvokeResult(500, b"{}", "r"), Outcome.FUNCTION_ERROR),
        (InvokeResult(400, b"{}", "r"), Outcome.FUNCTION_ERROR),
        (InvokeResult(429, b"{}", "r"), Outcome.THROTTLED),  # the pod's slots are all busy
        (InvokeResult(503, b"{}", "r"), Outcome.THROTTLED),  # the pod is stopping
        (InvokeResult(504, b"{}", "r", function_error="Unhandled"), Outcome.FUNCTION_ERROR),
        (InvokeRejected(429, "TooManyRequestsException", "reserved"), Outcome.THROTTLED),
        (InvokeRejected(503, "ServiceUnavailable", "buffer full"), Outcome.THROTTLED),
        (InvokeRejected(504, "ServiceUnavailable", "no pod in time"), Outcome.THROTTLED),
        (InvokeRejected(502, "ServiceException", "connection reset"), Outcome.FUNCTION_ERROR),
        (InvokeRejected(413, "RequestEntityTooLargeException", "big"), Outcome.FUNCTION_ERROR),
        (ConnectionResetError("reset"), Outcome.FUNCTION_ERROR),
        (TimeoutError(), Outcome.FUNCTION_ERROR),
    ],
)
def test_classify(answer: InvokeResult | InvokeRejected | Exception, outcome: Outcome) -> None:
    assert classify(answer) is outcome


def after(
    event: AsyncEvent,
    outcome: Outcome,
    *,
    now: float,
    max_retries: int = 2,
    max_age: float = 6 * HOUR,
    policy: RetryPolicy = POLICY,
) -> Retry | Succeeded | GiveUp:
    attempt = {Outcome.SUCCESS: OK, Outcome.FUNCTION_ERROR: ERROR, Outcome.THROTTLED: THROTTLE}
    return after_attempt(
        event,
        outcome,
        attempt[outcome],
        max_retries=max_retries,
        max_event_age=max_age,
        policy=policy,
        now=now,
    )


def counted(errors: int = 0, throttles: int = 0) -> AsyncEvent:
    return replace(EVENT, errors=errors, throttles=throttles, invokes=errors + throttles)


@pytest.mark.parametrize(
    ("name", "event", "outcome", "max_retries", "expected"),
    [
        # Function errors: 60 s, then 120 s, then the budget of 2 retries is spent.
        ("first error", counted(), Outcome.FUNCTION_ERROR, 2, ("retry", 60.0, 1, 0)),
        ("second error", counted(1), Outcome.FUNCTION_ERROR, 2, ("retry", 120.0, 2, 0)),
        ("third error", counted(2), Outcome.FUNCTION_ERROR, 2, ("give up", EXHAUSTED, 3, 0)),
        ("no retries", counted(), Outcome.FUNCTION_ERROR, 0, ("give up", EXHAUSTED, 1, 0)),
        ("one retry", counted(1), Outcome.FUNCTION_ERROR, 1, ("give up", EXHAUSTED, 2, 0)),
        # Throttles use up no retry, whatever the budget: 1, 2, 4, ... capped at 300 s.
        ("first throttle", counted(), Outcome.THROTTLED, 0, ("retry", 1.0, 0, 1)),
        ("third throttle", counted(0, 2), Outcome.THROTTLED, 0, ("retry", 4.0, 0, 3)),
        ("ninth throttle", counted(0, 8), Outcome.THROTTLED, 0, ("retry", 256.0, 0, 9)),
        ("tenth throttle", counted(0, 9), Outcome.THROTTLED, 0, ("retry", 300.0, 0, 10)),
        ("throttle 5000", counted(0, 5000), Outcome.THROTTLED, 0, ("retry", 300.0, 0, 5001)),
        ("throttle after errors", counted(2, 0), Outcome.THROTTLED, 2, ("retry", 1.0, 2, 1)),
        ("error after throttles", counted(0, 7), Outcome.FUNCTION_ERROR, 2, ("retry", 60.0, 1, 7)),
        # Success ends it, whatever came before.
        ("success", counted(), Outcome.SUCCESS, 2, ("done", None, 0, 0)),
        ("success on a retry", counted(2, 3), Outcome.SUCCESS, 2, ("done", None, 2, 3)),
    ],
)  # fmt: skip
def test_after_attempt(
    name: str,
    event: AsyncEvent,
    outcome: Outcome,
    max_retries: int,
    expected: tuple[str, object, int, int],
) -> None:
    now = T0 + 10
    action = after(event, outcome, now=now, max_retries=max_retries)
    kind, detail, errors, throttles = expected
    if kind == "retry":
        assert isinstance(action, Retry)
        assert action.due_at == now + detail  # type: ignore[operator]
    elif kind == "give up":
        assert isinstance(action, GiveUp)
        assert action.condition is detail
    else:
        assert isinstance(action, Succeeded)
    assert (action.event.errors, action.event.throttles) == (errors, throttles)
    assert action.event.invokes == event.invokes + 1  # every attempt counts as an invocation
    assert action.event.last is not None


@pytest.mark.parametrize(
    ("name", "now", "outcome", "max_age", "expected"),
    [
        ("retry due before the age limit", T0 + 100, Outcome.FUNCTION_ERROR, 161.0, Retry),
        ("retry due at the age limit", T0 + 100, Outcome.FUNCTION_ERROR, 160.0, GiveUp),
        ("throttle retry past the limit", T0 + 59.5, Outcome.THROTTLED, 60.0, GiveUp),
        ("throttle retry inside the limit", T0 + 58.5, Outcome.THROTTLED, 60.0, Retry),
        ("success at the limit", T0 + 60, Outcome.SUCCESS, 60.0, Succeeded),
    ],
)
def test_after_attempt_stops_at_event_age(
    name: str, now: float, outcome: Outcome, max_age: float, expected: type
) -> None:
    action = after(EVENT, outcome, now=now, max_age=max_age)
    assert isinstance(action, expected)
    if isinstance(action, GiveUp):
        assert action.condition is Condition.EVENT_AGE_EXCEEDED


@pytest.mark.parametrize(
    ("now", "max_age", "gives_up"),
    [(T0, 60.0, False), (T0 + 59.999, 60.0, False), (T0 + 60, 60.0, True), (T0 + HOUR, 60.0, True)],
)
def test_expired(now: float, max_age: float, gives_up: bool) -> None:
    result = expired(EVENT, max_event_age=max_age, now=now)
    assert (result is not None) == gives_up
    if result is not None:
        assert result == GiveUp(EVENT, Condition.EVENT_AGE_EXCEEDED)


def test_small_policy_scales_the_delays() -> None:
    fast = RetryPolicy(retry_base_delay=0.1, throttle_base_delay=0.01, throttle_max_delay=0.05)
    second = after(counted(1), Outcome.FUNCTION_ERROR, now=T0, policy=fast)
    throttled = after(counted(0, 6), Outcome.THROTTLED, now=T0, policy=fast)
    assert isinstance(second, Retry)
    assert second.due_at == pytest.approx(T0 + 0.2)
    assert isinstance(throttled, Retry)
    assert throttled.due_at == pytest.approx(T0 + 0.05)


@pytest.mark.parametrize(
    "event",
    [
        EVENT,
        replace(EVENT, payload=b"\xff\x00binary", headers={}),
        replace(EVENT, errors=2, throttles=7, invokes=9, last=ERROR),
        replace(EVENT, last=Attempt(502, b"init", "Unhandled", "7")),
        replace(EVENT, last=THROTTLE, enqueued_at=0.1 + 0.2),
    ],
)
def test_event_round_trip(event: AsyncEvent) -> None:
    assert AsyncEvent.decode(event.encode()) == event


@pytest.mark.parametrize(
    ("change", "missing"),
    [
        ({b"headers": b"[1]"}, None),
        ({b"headers": b'{"a": 1}'}, None),
        ({b"enqueuedAt": b"nan"}, None),
        ({b"errors": b"x"}, None),
        ({b"requestId": b"\xff"}, None),
        ({}, b"payload"),
        ({}, b"enqueuedAt"),
    ],
)
def test_event_decode_rejects_malformed(change: dict[bytes, bytes], missing: bytes | None) -> None:
    fields = {**EVENT.encode(), **change}
    if missing is not None:
        del fields[missing]
    with pytest.raises(EventDecodeError):
        AsyncEvent.decode(fields)


def test_attempt_from_answers() -> None:
    result = InvokeResult(
        200, b"{}", "r", function_error="Unhandled", headers={"X-Amz-Executed-Version": "3"}
    )
    assert Attempt.from_result(result) == Attempt(200, b"{}", "Unhandled", "3")
    rejected = Attempt.from_rejection(InvokeRejected(429, "TooManyRequestsException", "busy"))
    assert rejected.status == 429
    assert json.loads(rejected.body) == {
        "errorType": "TooManyRequestsException",
        "errorMessage": "busy",
    }


ARN = function_arn("eu-west-1", "hello")


def test_record_after_retries() -> None:
    event = replace(EVENT, errors=3, invokes=3, last=ERROR)
    record = invocation_record(
        GiveUp(event, Condition.RETRIES_EXHAUSTED), function_arn=ARN, now=T0 + 180.25
    )
    assert record == {
        "version": "1.0",
        "timestamp": "2023-11-14T22:16:20.250Z",
        "requestContext": {
            "requestId": "req-1",
            "functionArn": "arn:aws:lambda:eu-west-1:000000000000:function:hello:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": {"a": 1},
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled",
        },
        "responsePayload": {"errorMessage": "boom"},
    }


@pytest.mark.parametrize(
    ("event", "payload", "context", "response"),
    [
        # Never tried (aged out in the queue): no response at all.
        (EVENT, {"a": 1}, None, None),
        # Throttled to the end: the last rejection, without functionError.
        (
            replace(EVENT, throttles=4, invokes=4, last=THROTTLE),
            {"a": 1},
            {"statusCode": 429, "executedVersion": "$LATEST"},
            {"errorType": "TooManyRequestsException"},
        ),
        # A payload that is not JSON is carried as text.
        (
            replace(EVENT, payload=b"plain text", invokes=1, last=OK),
            "plain text",
            {"statusCode": 200, "executedVersion": "$LATEST"},
            "done",
        ),
    ],
)
def test_record_after_event_age(
    event: AsyncEvent, payload: object, context: object, response: object
) -> None:
    record = invocation_record(
        GiveUp(event, Condition.EVENT_AGE_EXCEEDED), function_arn=ARN, now=T0
    )
    assert record["requestContext"]["condition"] == "EventAgeExceeded"
    assert record["requestContext"]["approximateInvokeCount"] == event.invokes
    assert record["requestPayload"] == payload
    assert record.get("responseContext") == context
    assert record.get("responsePayload") == response


@pytest.mark.parametrize(
    ("now", "text"),
    [(0.0, "1970-01-01T00:00:00.000Z"), (T0 + 0.0999, "2023-11-14T22:13:20.099Z")],
)
def test_timestamp(now: float, text: str) -> None:
    assert timestamp(now) == text
