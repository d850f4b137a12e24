"""What happens to an asynchronous event after each attempt: the pure core of ``queue``.

Where it sits: the activator takes an ``Event`` invocation onto a Redis stream (``queue``); a
worker reads it back as an ``AsyncEvent``, asks ``expired`` whether it may still be tried, invokes
it, ``classify``-ies the answer and asks ``after_attempt`` what to do next: acknowledge it
(``Succeeded``), put it back for later (``Retry``) or give up (``GiveUp``) and send Lambda's
invocation record (``invocation_record``) to the failure destination. Nothing here does I/O or
reads a clock: ``now`` is wall-clock seconds (``time.time()``), because replicas on different
nodes share the queue and an event's age must mean the same to all of them.

Lambda's rules (docs: "How Lambda handles errors and retries with asynchronous invocation"):

- A *function error* (the handler raised, timed out, the runtime could not start, the pod's
  connection failed) uses up one of ``max_retries`` retries (0-2); retry k waits
  ``retry_base_delay x 2^(k-1)``: 60 s, then 120 s.
- A *throttle* (429 reserved concurrency, 503 buffer full or no such function, 504 no pod in
  time) uses up no retry; it is tried again after ``throttle_base_delay x 2^(n-1)`` capped at
  ``throttle_max_delay``: 1 s, 2 s, 4 s, ... 300 s.
- Either stops when the event is ``max_event_age_seconds`` old: a retry due after that is not
  scheduled, and an event read after that is not invoked (``EventAgeExceeded``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from lambdalet.backoff import backoff
from lambdalet.contracts.invocation import InvokeRejected, InvokeResult

MAX_ASYNC_PAYLOAD = 262_144  # bytes; Lambda's limit for asynchronous invocations (256 KiB)
LATEST = "$LATEST"
THROTTLE_STATUSES = frozenset({429, 503, 504})


class Outcome(StrEnum):
    SUCCESS = "success"
    FUNCTION_ERROR = "function_error"
    THROTTLED = "throttled"


class Condition(StrEnum):
    """``requestContext.condition`` of an invocation record."""

    RETRIES_EXHAUSTED = "RetriesExhausted"
    EVENT_AGE_EXCEEDED = "EventAgeExceeded"


class EventDecodeError(ValueError):
    """A stream entry is not an event ``AsyncEvent.encode`` wrote."""


@dataclass(frozen=True)
class Attempt:
    """The answer of the last attempt, kept on the event for the invocation record."""

    status: int
    body: bytes
    function_error: str | None = None
    executed_version: str = LATEST

    @classmethod
    def from_result(cls, result: InvokeResult) -> Attempt:
        version = next(
            (v for k, v in result.headers.items() if k.lower() == "x-amz-executed-version"),
            LATEST,
        )
        return cls(result.status, result.body, result.function_error, version)

    @classmethod
    def from_rejection(cls, exc: InvokeRejected) -> Attempt:
        body = json.dumps({"errorType": exc.error_type, "errorMessage": exc.message})
        return cls(exc.status, body.encode())


@dataclass(frozen=True)
class AsyncEvent:
    """One queued asynchronous invocation and what has happened to it so far."""

    request_id: str
    payload: bytes
    enqueued_at: float  # wall-clock seconds
    headers: Mapping[str, str]
    errors: int = 0  # function-error attempts so far: they use up max_retries
    throttles: int = 0  # throttled attempts so far: they set the throttle backoff only
    invokes: int = 0  # attempts so far, of any outcome (approximateInvokeCount)
    last: Attempt | None = None

    def encode(self) -> dict[bytes, bytes]:
        """The stream entry's fields; readable with XRANGE (JSON headers, decimal counters)."""
        fields = {
            b"requestId": self.request_id.encode(),
            b"payload": self.payload,
            b"enqueuedAt": repr(self.enqueued_at).encode(),
            b"headers": json.dumps(dict(self.headers), separators=(",", ":")).encode(),
            b"errors": b"%d" % self.errors,
            b"throttles": b"%d" % self.throttles,
            b"invokes": b"%d" % self.invokes,
        }
        if self.last is not None:
            fields[b"lastStatus"] = b"%d" % self.last.status
            fields[b"lastBody"] = self.last.body
            fields[b"lastVersion"] = self.last.executed_version.encode()
            if self.last.function_error is not None:
                fields[b"lastFunctionError"] = self.last.function_error.encode()
        return fields

    @classmethod
    def decode(cls, fields: Mapping[bytes, bytes]) -> AsyncEvent:
        try:
            headers = json.loads(fields[b"headers"])
            if not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
            ):
                raise EventDecodeError("headers is not a JSON object of strings")
            last = None
            if b"lastStatus" in fields:
                error = fields.get(b"lastFunctionError")
                last = Attempt(
                    status=int(fields[b"lastStatus"]),
                    body=fields.get(b"lastBody", b""),
                    function_error=error.decode() if error is not None else None,
                    executed_version=fields.get(b"lastVersion", LATEST.encode()).decode(),
                )
            enqueued_at = float(fields[b"enqueuedAt"])
            if not math.isfinite(enqueued_at):
                raise EventDecodeError("enqueuedAt is not a finite number")
            return cls(
                request_id=fields[b"requestId"].decode(),
                payload=fields[b"payload"],
                enqueued_at=enqueued_at,
                headers=headers,
                errors=int(fields[b"errors"]),
                throttles=int(fields[b"throttles"]),
                invokes=int(fields[b"invokes"]),
                last=last,
            )
        except (KeyError, ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, EventDecodeError):
                raise
            raise EventDecodeError(f"malformed asynchronous event: {exc!r}") from exc


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff of retries; the defaults are Lambda's, tests shrink them."""

    retry_base_delay: float = 60.0
    throttle_base_delay: float = 1.0
    throttle_max_delay: float = 300.0


@dataclass(frozen=True)
class Succeeded:
    event: AsyncEvent


@dataclass(frozen=True)
class Retry:
    event: AsyncEvent  # with the attempt counted
    due_at: float  # wall-clock seconds


@dataclass(frozen=True)
class GiveUp:
    event: AsyncEvent
    condition: Condition


Action = Succeeded | Retry | GiveUp


def classify(answer: InvokeResult | InvokeRejected | Exception) -> Outcome:
    """Sort an attempt's answer into Lambda's three kinds (see the module docstring).

    A result without a function error but with 429/503/504 is the pod refusing work (all its
    slots busy, stopping), a throttle; any other exception is a transport failure, which may
    have reached the handler, so it counts as a function error.
    """
    if isinstance(answer, InvokeResult):
        if not answer.failed:
            return Outcome.SUCCESS
        if answer.function_error is None and answer.status in THROTTLE_STATUSES:
            return Outcome.THROTTLED
        return Outcome.FUNCTION_ERROR
    if isinstance(answer, InvokeRejected) and answer.status in THROTTLE_STATUSES:
        return Outcome.THROTTLED
    return Outcome.FUNCTION_ERROR


def expires_at(event: AsyncEvent, max_event_age: float) -> float:
    return event.enqueued_at + max_event_age


def expired(event: AsyncEvent, *, max_event_age: float, now: float) -> GiveUp | None:
    """Before an attempt: an event as old as ``max_event_age`` is not invoked any more."""
    if now >= expires_at(event, max_event_age):
        return GiveUp(event, Condition.EVENT_AGE_EXCEEDED)
    return None


def after_attempt(
    event: AsyncEvent,
    outcome: Outcome,
    attempt: Attempt,
    *,
    max_retries: int,
    max_event_age: float,
    policy: RetryPolicy,
    now: float,
) -> Action:
    """The next step for ``event`` after an attempt ended in ``outcome``.

    E.g. max_retries 2, base 60 s: errors 1 -> retry at now + 60; errors 2 -> now + 120;
    errors 3 -> RetriesExhausted. Throttles 1, 2, 3 -> now + 1, + 2, + 4, never more than 300.
    """
    counted = replace(event, invokes=event.invokes + 1, last=attempt)
    if outcome is Outcome.SUCCESS:
        return Succeeded(counted)
    if outcome is Outcome.FUNCTION_ERROR:
        counted = replace(counted, errors=counted.errors + 1)
        if counted.errors > max_retries:
            return GiveUp(counted, Condition.RETRIES_EXHAUSTED)
        delay = backoff(counted.errors, policy.retry_base_delay, math.inf)
    else:
        counted = replace(counted, throttles=counted.throttles + 1)
        delay = backoff(counted.throttles, policy.throttle_base_delay, policy.throttle_max_delay)
    due_at = now + delay
    if due_at >= expires_at(counted, max_event_age):
        return GiveUp(counted, Condition.EVENT_AGE_EXCEEDED)
    return Retry(counted, due_at)


def function_arn(region: str, name: str) -> str:
    """The ARN the agent gives the function (runtime-images/agent/config.go), plus $LATEST."""
    return f"arn:aws:lambda:{region}:000000000000:function:{name}:{LATEST}"


def payload_value(body: bytes) -> Any:
    """A payload as a record carries it: the JSON value if it is JSON, else the text."""
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")


def timestamp(now: float) -> str:
    """Lambda's record timestamp, e.g. 2019-11-14T18:16:05.568Z."""
    moment = datetime.fromtimestamp(now, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def invocation_record(give_up: GiveUp, *, function_arn: str, now: float) -> dict[str, Any]:
    """Lambda's invocation record for an event that failed (destination, DLQ).

    ``responseContext`` and ``responsePayload`` describe the last attempt; an event that was
    never tried (it aged out in the queue) has neither.
    """
    event = give_up.event
    record: dict[str, Any] = {
        "version": "1.0",
        "timestamp": timestamp(now),
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": function_arn,
            "condition": give_up.condition.value,
            "approximateInvokeCount": event.invokes,
        },
        "requestPayload": payload_value(event.payload),
    }
    if event.last is not None:
        context: dict[str, Any] = {
            "statusCode": event.last.status,
            "executedVersion": event.last.executed_version,
        }
        if event.last.function_error is not None:
            context["functionError"] = event.last.function_error
        record["responseContext"] = context
        record["responsePayload"] = payload_value(event.last.body)
    return record
