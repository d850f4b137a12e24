"""Which messages of a batch are acknowledged, retried, dead-lettered or dropped: Lambda's rules."""

from __future__ import annotations

import json

import pytest

from lambdalet.contracts.invocation import InvokeResult
from lambdalet.dispatcher.delivery.outcome import (
    Answer,
    FailureKind,
    InvokeFailed,
    Plan,
    Policy,
    batch_item_failures,
    decide,
    too_large,
)
from lambdalet.dispatcher.sources.source import Message


def message(id: str, receive_count: int = 1) -> Message:
    return Message(id, b"x", receive_count, sent_at_ms=1, first_received_at_ms=2)


BATCH = (message("a"), message("b", 2), message("c", 3))
RBIF = Policy(max_retries=2, dead_letter=True, report_batch_item_failures=True)
PLAIN = Policy(max_retries=2, dead_letter=True)
NO_DLQ = Policy(max_retries=2, dead_letter=False, report_batch_item_failures=True)


def ok(body: object = None, *, raw: bytes | None = None) -> InvokeResult:
    payload = raw if raw is not None else json.dumps(body).encode()
    return InvokeResult(status=200, body=payload, request_id="r")


def failures(*ids: object) -> InvokeResult:
    return ok({"batchItemFailures": [{"itemIdentifier": i} for i in ids]})


ERROR = InvokeResult(
    status=200,
    body=b'{"errorMessage": "boom", "errorType": "ValueError"}',
    request_id="r",
    function_error="Unhandled",
)
INIT_ERROR = InvokeResult(status=502, body=b"{}", request_id="r", function_error="Unhandled")


def ids(messages: tuple[Message, ...]) -> str:
    return "".join(m.id for m in messages)


# Each row: answer, policy -> ack, retry, dead letter, drop (message ids), reason prefix.
# Receive counts: a 1, b 2, c 3; maxRetries 2, so c is on its last delivery.
ROWS = [
    pytest.param(ok(None), RBIF, "abc", "", "", "", "", id="null-response"),
    pytest.param(ok(raw=b""), RBIF, "abc", "", "", "", "", id="empty-body"),
    pytest.param(ok({}), RBIF, "abc", "", "", "", "", id="empty-object"),
    pytest.param(ok({"ok": True}), RBIF, "abc", "", "", "", "", id="object-without-key"),
    pytest.param(ok({"batchItemFailures": []}), RBIF, "abc", "", "", "", "", id="empty-list"),
    pytest.param(ok({"batchItemFailures": None}), RBIF, "abc", "", "", "", "", id="null-list"),
    pytest.param(failures("a"), RBIF, "bc", "a", "", "", "BatchItemFailure", id="one-failed"),
    pytest.param(failures("b", "c"), RBIF, "a", "b", "c", "", "BatchItemFailure", id="last-try"),
    pytest.param(failures("c", "c"), RBIF, "ab", "", "c", "", "BatchItemFailure", id="duplicate"),
    pytest.param(failures("c"), NO_DLQ, "ab", "", "", "c", "BatchItemFailure", id="no-target"),
    pytest.param(failures(""), RBIF, "", "ab", "c", "", "MalformedResponse", id="empty-id"),
    pytest.param(failures(None), RBIF, "", "ab", "c", "", "MalformedResponse", id="null-id"),
    pytest.param(failures("zz"), RBIF, "", "ab", "c", "", "MalformedResponse", id="unknown-id"),
    pytest.param(failures(7), RBIF, "", "ab", "c", "", "MalformedResponse", id="number-id"),
    pytest.param(
        ok({"batchItemFailures": [{"itemidentifier": "a"}]}),
        RBIF,
        "",
        "ab",
        "c",
        "",
        "MalformedResponse",
        id="misspelt-key",
    ),
    pytest.param(
        ok({"batchItemFailures": ["a"]}),
        RBIF,
        "",
        "ab",
        "c",
        "",
        "MalformedResponse",
        id="bare-ids",
    ),
    pytest.param(
        ok({"batchItemFailures": "a"}),
        RBIF,
        "",
        "ab",
        "c",
        "",
        "MalformedResponse",
        id="not-a-list",
    ),
    pytest.param(ok(["a"]), RBIF, "", "ab", "c", "", "MalformedResponse", id="a-list"),
    pytest.param(ok("a"), RBIF, "", "ab", "c", "", "MalformedResponse", id="a-string"),
    pytest.param(ok(raw=b"{oops"), RBIF, "", "ab", "c", "", "MalformedResponse", id="not-json"),
    # Without ReportBatchItemFailures the answer's content is not read.
    pytest.param(failures("a"), PLAIN, "abc", "", "", "", "", id="not-enabled"),
    pytest.param(ok(raw=b"{oops"), PLAIN, "abc", "", "", "", "", id="not-enabled-junk"),
    pytest.param(
        ERROR,
        RBIF,
        "",
        "ab",
        "c",
        "",
        "FunctionError: Unhandled: ValueError: boom",
        id="function-error",
    ),
    pytest.param(ERROR, NO_DLQ, "", "ab", "", "c", "FunctionError", id="function-error-drop"),
    pytest.param(INIT_ERROR, PLAIN, "", "ab", "c", "", "FunctionError: Unhandled", id="init-error"),
    pytest.param(
        InvokeResult(status=413, body=b"", request_id="r"),
        PLAIN,
        "",
        "ab",
        "c",
        "",
        "InvokeError: status 413",
        id="pod-status",
    ),
    # Never answered: retried whatever the count, never dead-lettered.
    pytest.param(
        InvokeFailed(FailureKind.THROTTLED, "slow down", 429),
        RBIF,
        "",
        "abc",
        "",
        "",
        "NotInvoked: Throttled",
        id="throttled",
    ),
    pytest.param(
        InvokeFailed(FailureKind.UNREACHABLE, "refused"),
        NO_DLQ,
        "",
        "abc",
        "",
        "",
        "NotInvoked: Unreachable",
        id="unreachable",
    ),
]


@pytest.mark.parametrize(("answer", "policy", "ack", "retry", "dead", "drop", "reason"), ROWS)
def test_decide(
    answer: Answer, policy: Policy, ack: str, retry: str, dead: str, drop: str, reason: str
) -> None:
    plan = decide(BATCH, answer, policy)

    assert (ids(plan.ack), ids(plan.retry), ids(plan.dead_letter), ids(plan.drop)) == (
        ack,
        retry,
        dead,
        drop,
    )
    assert plan.reason.startswith(reason)
    assert bool(plan.reason) == bool(reason)
    # Every message in exactly one place.
    everything = plan.ack + plan.retry + plan.dead_letter + plan.drop
    assert sorted(m.id for m in everything) == ["a", "b", "c"]
    assert plan.failed == len(retry + dead + drop)


@pytest.mark.parametrize(
    ("max_retries", "receive_count", "verdict"),
    [
        (0, 1, "dead"),  # no retries: the first failure is the last
        (1, 1, "retry"),
        (1, 2, "dead"),
        (2, 2, "retry"),
        (2, 3, "dead"),
        (2, 9, "dead"),  # counted up by throttles meanwhile
        (185, 185, "retry"),
        (185, 186, "dead"),
    ],
)
def test_dead_lettered_after_max_retries(
    max_retries: int, receive_count: int, verdict: str
) -> None:
    policy = Policy(max_retries=max_retries, dead_letter=True)
    plan = decide([message("m", receive_count)], ERROR, policy)

    failed = (message("m", receive_count),)
    expected = (failed, ()) if verdict == "retry" else ((), failed)
    assert (plan.retry, plan.dead_letter) == expected


def test_duplicate_ids_in_a_batch_fail_together() -> None:
    batch = [message("a"), message("a", 2), message("b")]
    plan = decide(batch, failures("a"), RBIF)

    assert plan.retry == (message("a"), message("a", 2))
    assert plan.ack == (message("b"),)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (PLAIN, Plan(dead_letter=(message("a"),), reason="x")),
        (NO_DLQ, Plan(drop=(message("a"),), reason="x")),
    ],
)
def test_a_record_too_large_alone_fails_for_good_at_once(policy: Policy, expected: Plan) -> None:
    plan = too_large(message("a"), policy, size=7_000_000, limit=6_291_456)

    assert (plan.dead_letter, plan.drop, plan.retry, plan.ack) == (
        expected.dead_letter,
        expected.drop,
        (),
        (),
    )
    assert plan.reason == "RecordTooLarge: record of 7000000 bytes, limit 6291456"


def test_batch_item_failures_reads_ids_and_explains_malformed_answers() -> None:
    assert batch_item_failures(b' {"batchItemFailures": [{"itemIdentifier": "a"}]} ', {"a"}) == {
        "a"
    }
    assert batch_item_failures(b"null", {"a"}) == set()
    reason = batch_item_failures(b'{"batchItemFailures": [{"itemIdentifier": "q"}]}', {"a"})
    assert reason == "MalformedResponse: itemIdentifier q is not in the batch"


def test_long_error_messages_are_shortened_in_the_reason() -> None:
    error = InvokeResult(
        status=200,
        body=json.dumps({"errorType": "E", "errorMessage": "x" * 10_000}).encode(),
        request_id="r",
        function_error="Unhandled",
    )
    plan = decide([message("a")], error, PLAIN)

    assert plan.reason.startswith("FunctionError: Unhandled: E: xxx")
    assert len(plan.reason) < 300
