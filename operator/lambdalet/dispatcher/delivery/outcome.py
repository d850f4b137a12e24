"""What becomes of each message of a batch once the Function has answered: pure decisions.

Where it sits: ``delivery`` invokes the Function with a batch (``invoker``) and hands the answer
to ``decide``; the ``Plan`` it gets back says which messages the source acknowledges, releases
for a retry, dead-letters or drops. Lambda's rules for SQS event source mappings:

* A function error (the handler raised, timed out, or its runtime could not start) fails the
  whole batch, as does an answer with a status of 300 or more.
* With ``reportBatchItemFailures``, a successful answer ``{"batchItemFailures": [{"itemIdentifier":
  "<messageId>"}, ...]}`` fails just those messages. An empty list, a null list, an object
  without the key, or null (the handler returned None) means all succeeded. An identifier that is
  empty, null, missing (a misspelt key) or not a message of the batch, or an answer that is not
  such an object (a list, a string, not JSON), fails the whole batch: a handler that cannot say
  precisely what failed must not lose anything. Without ``reportBatchItemFailures`` any
  successful answer succeeds the whole batch, as in Lambda.
* A failed message is retried while it has retries left; it is dead-lettered once its receive
  count exceeds ``maxRetries`` (after ``maxRetries`` retries), e.g. maxRetries 2: deliveries 1
  and 2 fail -> retry, delivery 3 fails -> dead letter. Without a dead-letter target it is
  dropped: acknowledged, with a warning (the API's documented behaviour).

An invocation the Function never answered (``InvokeFailed``: throttled, activator or pod
unreachable, invoke rejected) is not the Function's failure: it is retried whatever the receive
count, never dead-lettered. ``delivery`` first re-invokes the batch itself for a while.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from lambdalet.contracts.invocation import InvokeResult
from lambdalet.dispatcher.sources.source import Message

REASON_DETAIL_LIMIT = 200  # characters of the function's error kept in a reason


class FailureKind(StrEnum):
    """Why an invocation got no answer from the Function."""

    THROTTLED = "Throttled"  # 429 / 503 / 504: no capacity now (reserved concurrency, cold start)
    UNREACHABLE = "Unreachable"  # transport error, timeout, or the pod's connection broke (502)
    REJECTED = "Rejected"  # the activator refused it (no such function, unauthorised, ...)


@dataclass(frozen=True)
class InvokeFailed:
    """An invocation that did not produce the Function's answer."""

    kind: FailureKind
    message: str
    status: int | None = None  # the activator's HTTP status, when it answered


Answer = InvokeResult | InvokeFailed


class Reason(StrEnum):
    """Why messages failed: the first word of a dead-letter reason and of the log line."""

    FUNCTION_ERROR = "FunctionError"
    INVOKE_ERROR = "InvokeError"
    BATCH_ITEM_FAILURE = "BatchItemFailure"
    MALFORMED_RESPONSE = "MalformedResponse"
    NOT_INVOKED = "NotInvoked"
    RECORD_TOO_LARGE = "RecordTooLarge"


@dataclass(frozen=True)
class Policy:
    """The delivery fields of an EventSource that decide outcomes."""

    max_retries: int = 2
    dead_letter: bool = False  # a dead-letter target is configured
    report_batch_item_failures: bool = False


@dataclass(frozen=True)
class Plan:
    """Each message of a batch in exactly one of the four tuples."""

    ack: tuple[Message, ...] = ()
    retry: tuple[Message, ...] = ()
    dead_letter: tuple[Message, ...] = ()
    drop: tuple[Message, ...] = ()  # acknowledged with a warning: failed for good, no target
    reason: str = ""  # why the failed ones failed; empty when none did

    @property
    def failed(self) -> int:
        return len(self.retry) + len(self.dead_letter) + len(self.drop)


def decide(batch: Sequence[Message], answer: Answer, policy: Policy) -> Plan:
    """The plan for ``batch`` after ``answer`` (see the module docstring for the rules)."""
    if isinstance(answer, InvokeFailed):
        return Plan(
            retry=tuple(batch),
            reason=f"{Reason.NOT_INVOKED}: {answer.kind}: {_short(answer.message)}",
        )
    if answer.function_error is not None:
        return _fail(batch, set(range(len(batch))), policy, _function_error(answer))
    if answer.status >= 300:
        return _fail(
            batch, set(range(len(batch))), policy, f"{Reason.INVOKE_ERROR}: status {answer.status}"
        )
    if not policy.report_batch_item_failures:
        return Plan(ack=tuple(batch))
    failed_ids = batch_item_failures(answer.body, {message.id for message in batch})
    if isinstance(failed_ids, str):
        return _fail(batch, set(range(len(batch))), policy, failed_ids)
    failed = {index for index, message in enumerate(batch) if message.id in failed_ids}
    return _fail(batch, failed, policy, Reason.BATCH_ITEM_FAILURE.value)


def too_large(message: Message, policy: Policy, size: int, limit: int) -> Plan:
    """A message whose record alone exceeds the payload limit can never be delivered: it is
    dead-lettered (or dropped) at once, retries would not change it."""
    reason = f"{Reason.RECORD_TOO_LARGE}: record of {size} bytes, limit {limit}"
    if policy.dead_letter:
        return Plan(dead_letter=(message,), reason=reason)
    return Plan(drop=(message,), reason=reason)


def batch_item_failures(body: bytes, ids: set[str]) -> set[str] | str:
    """The message ids a ReportBatchItemFailures answer names, or the reason it fails the whole
    batch (a str starting with MalformedResponse)."""
    malformed = f"{Reason.MALFORMED_RESPONSE}: "
    text = body.strip()
    if not text:
        return set()
    try:
        doc = json.loads(text)
    except ValueError:
        return malformed + "not JSON"
    if doc is None:
        return set()
    if not isinstance(doc, dict):
        return malformed + f"a JSON {type(doc).__name__}, not an object"
    items = doc.get("batchItemFailures")
    if items is None:
        return set()
    if not isinstance(items, list):
        return malformed + "batchItemFailures is not a list"
    failed: set[str] = set()
    for item in items:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or not identifier:
            return malformed + f"item without an itemIdentifier: {_short(json.dumps(item))}"
        if identifier not in ids:
            return malformed + f"itemIdentifier {_short(identifier)} is not in the batch"
        failed.add(identifier)
    return failed


def _fail(batch: Sequence[Message], failed: set[int], policy: Policy, reason: str) -> Plan:
    if not failed:
        return Plan(ack=tuple(batch))
    ack: list[Message] = []
    retry: list[Message] = []
    dead: list[Message] = []
    drop: list[Message] = []
    for index, message in enumerate(batch):
        if index not in failed:
            ack.append(message)
        elif message.receive_count <= policy.max_retries:
            retry.append(message)
        elif policy.dead_letter:
            dead.append(message)
        else:
            drop.append(message)
    return Plan(tuple(ack), tuple(retry), tuple(dead), tuple(drop), reason)


def _function_error(answer: InvokeResult) -> str:
    """``FunctionError: Unhandled: ValueError: boom`` from Lambda's error document, when any."""
    detail = ""
    try:
        doc = json.loads(answer.body)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        kind, message = doc.get("errorType"), doc.get("errorMessage")
        detail = ": ".join(str(part) for part in (kind, message) if part)
    reason = f"{Reason.FUNCTION_ERROR}: {answer.function_error}"
    return f"{reason}: {_short(detail)}" if detail else reason


def _short(text: str) -> str:
    return text if len(text) <= REASON_DETAIL_LIMIT else text[:REASON_DETAIL_LIMIT] + "..."
