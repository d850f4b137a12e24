"""eventsource_status: the operator's part of an EventSource's status (Ready, observedGeneration,
assignedReplica) for what it observed, and the Polling condition the dispatcher reported."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from lambdalet.api.common import Condition, ConditionStatus
from lambdalet.api.eventsource import EventSourceSpec, EventSourceStatus
from lambdalet.contracts.problems import Problem
from lambdalet.controller.eventsources.status import (
    eventsource_status,
    operator_fields,
    problem,
    schedule_error,
)

TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
NOW = datetime(2024, 5, 1, 12, 30, 15, 987654, tzinfo=UTC)
NOW_SECONDS = datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC)
EARLIER = datetime(2024, 4, 1, 8, 0, 0, tzinfo=UTC)
GENERATION = 3


def spec(**fields: Any) -> EventSourceSpec:
    base: dict[str, Any] = {
        "function": {"name": "worker"},
        "redisStreams": {"address": "redis:6379", "stream": "orders"},
    }
    return EventSourceSpec.model_validate({**base, **fields})


def polling(status: ConditionStatus, reason: str, message: str, generation: int) -> Condition:
    return Condition(
        type="Polling",
        status=status,
        reason=reason,
        message=message,
        last_transition_time=EARLIER,
        observed_generation=generation,
    )


def stored(*conditions: Condition, replica: str | None = "d-1") -> EventSourceStatus:
    return EventSourceStatus(
        conditions=conditions, observed_generation=GENERATION, assigned_replica=replica
    )


def status(
    *,
    source: EventSourceSpec | Problem | None = None,
    function_exists: bool = True,
    schedule: str | None = None,
    replica: str | None = "d-1",
    previous: EventSourceStatus | None = None,
    now: datetime = NOW,
) -> EventSourceStatus:
    return eventsource_status(
        namespace="team",
        generation=GENERATION,
        spec=spec() if source is None else source,
        function_exists=function_exists,
        schedule_error=schedule,
        replica=replica,
        dispatcher_namespace="lambdalet-system",
        previous=previous,
        now=now,
    )


def ready(result: EventSourceStatus) -> tuple[ConditionStatus, str | None, str | None]:
    [condition] = result.conditions
    assert condition.type == "Ready"
    return condition.status, condition.reason, condition.message


INVALID = Problem("InvalidSpec", "The EventSource's spec is invalid: batchSize: ...")
BAD_SCHEDULE = "schedule 'cron(0 12 * * * *)': exactly one of day-of-month and day-of-week ..."
NOT_FOUND = (
    FALSE,
    "FunctionNotFound",
    "Function worker does not exist in namespace team; create it or fix spec.function.name",
)
NO_DISPATCHER = (
    FALSE,
    "NoDispatcher",
    "no event dispatcher replica is running in namespace lambdalet-system; "
    "install the chart's dispatcher (dispatcher.replicas >= 1)",
)
STARTING = (FALSE, "Starting", "waiting for event dispatcher d-1 to start the source")
DELIVERING = (
    TRUE,
    "Delivering",
    "event dispatcher d-1 delivers the source's events to Function worker",
)
PAUSED = (
    TRUE,
    "Paused",
    "delivery is paused (spec.enabled: false); assigned to event dispatcher d-1",
)
UNAVAILABLE = polling(FALSE, "SourceUnavailable", "redis:6379: connection refused", GENERATION)
POLLING_OK = polling(TRUE, "Polling", "reading stream orders", GENERATION)

# (id, keyword arguments of ``status``, expected Ready)
SITUATIONS: list[tuple[str, dict[str, Any], tuple[ConditionStatus, str, str]]] = [
    ("invalid-spec", {"source": INVALID}, (FALSE, "InvalidSpec", INVALID.message)),
    (
        "invalid-spec-outranks-all",
        {"source": INVALID, "replica": None},
        (FALSE, "InvalidSpec", INVALID.message),
    ),
    ("function-not-found", {"function_exists": False}, NOT_FOUND),
    (
        "function-not-found-outranks-schedule-and-dispatcher",
        {"function_exists": False, "schedule": BAD_SCHEDULE, "replica": None},
        NOT_FOUND,
    ),
    ("invalid-schedule", {"schedule": BAD_SCHEDULE}, (FALSE, "InvalidSchedule", BAD_SCHEDULE)),
    (
        "invalid-schedule-outranks-no-dispatcher",
        {"schedule": BAD_SCHEDULE, "replica": None},
        (FALSE, "InvalidSchedule", BAD_SCHEDULE),
    ),
    ("no-dispatcher", {"replica": None}, NO_DISPATCHER),
    (
        "no-dispatcher-outranks-paused-and-polling",
        {"replica": None, "source": spec(enabled=False), "previous": stored(POLLING_OK)},
        NO_DISPATCHER,
    ),
    ("paused", {"source": spec(enabled=False)}, PAUSED),
    (
        "paused-outranks-a-polling-failure",
        {"source": spec(enabled=False), "previous": stored(UNAVAILABLE)},
        PAUSED,
    ),
    (
        "polling-false-is-ready-false-with-its-reason",
        {"previous": stored(UNAVAILABLE)},
        (FALSE, "SourceUnavailable", "redis:6379: connection refused"),
    ),
    (
        "secret-not-found",
        {
            "previous": stored(
                polling(FALSE, "SecretNotFound", "Secret redis has no key password", 3)
            )
        },
        (FALSE, "SecretNotFound", "Secret redis has no key password"),
    ),
    ("polling-true-is-delivering", {"previous": stored(POLLING_OK)}, DELIVERING),
    (
        "polling-of-an-older-generation-is-not-read",
        {"previous": stored(polling(TRUE, "Polling", "reading stream orders", GENERATION - 1))},
        STARTING,
    ),
    (
        "polling-unknown",
        {"previous": stored(polling(UNKNOWN, "Connecting", "", GENERATION))},
        STARTING,
    ),
    ("starting", {}, STARTING),
    ("starting-with-no-stored-status", {"previous": None}, STARTING),
]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [row[1:] for row in SITUATIONS],
    ids=[row[0] for row in SITUATIONS],
)
def test_ready(kwargs: dict[str, Any], expected: tuple[ConditionStatus, str, str]) -> None:
    result = status(**kwargs)

    assert ready(result) == expected
    assert result.observed_generation == GENERATION
    assert result.conditions[0].observed_generation == GENERATION
    # Only the operator's fields: never the dispatcher's Polling, lastScheduleTime or firing.
    assert set(result.to_wire()) <= {"conditions", "observedGeneration", "assignedReplica"}


@pytest.mark.parametrize(
    ("kwargs", "replica"),
    [
        ({}, "d-1"),
        ({"replica": None}, None),
        ({"source": spec(enabled=False)}, "d-1"),
        # Assignment follows membership only; the dispatcher itself skips sources it cannot run.
        ({"function_exists": False}, "d-1"),
        ({"schedule": BAD_SCHEDULE}, "d-1"),
    ],
    ids=[
        "assigned",
        "none-live-none-assigned",
        "paused-still-assigned",
        "no-function",
        "bad-schedule",
    ],
)
def test_assigned_replica(kwargs: dict[str, Any], replica: str | None) -> None:
    result = status(**kwargs)
    assert result.assigned_replica == replica
    assert ("assignedReplica" in result.to_wire()) == (replica is not None)


def test_first_status_takes_now_to_the_second() -> None:
    [condition] = status().conditions
    assert condition.last_transition_time == NOW_SECONDS


def test_transition_time_is_kept_while_the_status_value_stays() -> None:
    before = status(previous=None, now=EARLIER)
    # Starting -> SourceUnavailable: both False, so the condition did not transition.
    after = status(previous=stored(*before.conditions, UNAVAILABLE), now=NOW)
    assert ready(after)[1] == "SourceUnavailable"
    assert after.conditions[0].last_transition_time == EARLIER


def test_transition_time_moves_when_the_status_value_changes() -> None:
    before = status(previous=None, now=EARLIER)
    after = status(previous=stored(*before.conditions, POLLING_OK), now=NOW)
    assert ready(after)[0] == TRUE
    assert after.conditions[0].last_transition_time == NOW_SECONDS


def test_recomputing_an_unchanged_source_gives_the_stored_fields() -> None:
    first = status(previous=stored(POLLING_OK), now=EARLIER)
    # The stored status as the API server returns it: both writers' fields.
    both = EventSourceStatus(
        conditions=(POLLING_OK, *first.conditions),
        observed_generation=first.observed_generation,
        assigned_replica=first.assigned_replica,
        last_schedule_time=EARLIER,
    )
    again = status(previous=both, now=NOW)
    assert again == operator_fields(both)
    assert again == first


@pytest.mark.parametrize(
    ("stored_status", "expected"),
    [
        (None, None),
        (EventSourceStatus(), EventSourceStatus()),
        (
            EventSourceStatus(conditions=(POLLING_OK,), last_schedule_time=EARLIER),
            EventSourceStatus(),
        ),
    ],
    ids=["nothing-stored", "empty", "only-the-dispatchers-fields"],
)
def test_operator_fields(
    stored_status: EventSourceStatus | None, expected: EventSourceStatus | None
) -> None:
    assert operator_fields(stored_status) == expected


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"function_exists": False}, "FunctionNotFound"),
        ({"replica": None}, "NoDispatcher"),
        ({"previous": stored(UNAVAILABLE)}, "SourceUnavailable"),
        ({}, None),  # Starting: every new source passes through it, nothing to warn about
        ({"previous": stored(POLLING_OK)}, None),
        ({"source": spec(enabled=False)}, None),
    ],
    ids=["not-found", "no-dispatcher", "polling-failed", "starting", "delivering", "paused"],
)
def test_problem_worth_a_warning(kwargs: dict[str, Any], expected: str | None) -> None:
    found = problem(status(**kwargs))
    assert (found.reason if found else None) == expected
    assert problem(None) is None


CREATED = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        (None, None),
        ({"expression": "*/5 * * * *"}, None),
        ({"expression": "rate(5 minutes)"}, None),
        ({"expression": "cron(0 12 * * ? *)", "timeZone": "Europe/Berlin"}, None),
        (
            # Passes the CRD's pattern; EventBridge wants exactly one of dom and dow to be "?".
            {"expression": "cron(0 12 * * * *)"},
            "schedule 'cron(0 12 * * * *)': exactly one of day-of-month and day-of-week must be ?",
        ),
        ({"expression": "61 * * * *"}, "minute value '61' is not in 0-59"),
        ({"expression": "0 0 31 2 *"}, "matches no date"),
        ({"expression": "@daily", "timeZone": "Mars/Base"}, "unknown time zone 'Mars/Base'"),
    ],
    ids=[
        "no-schedule",
        "cron",
        "rate",
        "eventbridge-cron",
        "dom-and-dow",
        "minute-out-of-range",
        "no-date",
        "unknown-zone",
    ],
)
def test_schedule_error(schedule: dict[str, str] | None, expected: str | None) -> None:
    if schedule is None:
        source = spec()
    else:
        source = EventSourceSpec.model_validate(
            {"function": {"name": "worker"}, "schedule": schedule}
        )
    found = schedule_error(source, CREATED)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert expected in found
