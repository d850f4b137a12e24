"""The operator's part of an EventSource's status, as a pure function of what it observed.

Two writers share the status, each applying only its own fields (server-side apply): the
operator writes the ``Ready`` condition, ``observedGeneration`` and ``assignedReplica``; the
event dispatcher writes the ``Polling`` condition, ``lastScheduleTime`` and ``firing``. Ready
reads, first match wins:

    Ready  False  InvalidSpec          the stored spec cannot be read by this version
           False  FunctionNotFound     spec.function names no Function in the namespace
           False  InvalidSchedule      the schedule expression or time zone cannot be used
           False  NoDispatcher         no live event dispatcher replica (assignedReplica unset)
           True   Paused               spec.enabled is false (still assigned)
           False  <Polling's reason>   the dispatcher reports Polling=False for this generation
           True   Delivering           the dispatcher reports Polling=True for this generation
           False  Starting             assigned; the dispatcher has not reported on it yet

``assignedReplica`` is the rendezvous owner among the live replicas (``lambdalet.sharding``)
whatever Ready says, so that a source moves between replicas only when membership changes.
A condition keeps its ``lastTransitionTime`` while its status does not change, so recomputing
the status of an unchanged EventSource yields an identical object and the operator writes nothing.
"""

from __future__ import annotations

from datetime import datetime

from lambdalet.api.common import Condition, ConditionStatus
from lambdalet.api.conditions import ConditionType, EventSourceReadyReason
from lambdalet.api.eventsource import EventSourceSpec, EventSourceStatus
from lambdalet.api.schedule import ScheduleError, parse
from lambdalet.contracts.problems import Problem

TRUE, FALSE = ConditionStatus.TRUE, ConditionStatus.FALSE


def schedule_error(spec: EventSourceSpec, created: datetime) -> str | None:
    """Why the spec's schedule cannot be used, or None (also when it has no schedule);
    ``created``: the EventSource's creationTimestamp, the origin of rate() schedules."""
    if spec.schedule is None:
        return None
    try:
        parse(spec.schedule.expression, spec.schedule.time_zone, created)
    except ScheduleError as exc:
        return str(exc)
    return None


def eventsource_status(
    *,
    namespace: str,
    generation: int,
    spec: EventSourceSpec | Problem,
    function_exists: bool,
    schedule_error: str | None,
    replica: str | None,
    dispatcher_namespace: str,
    previous: EventSourceStatus | None,
    now: datetime,
) -> EventSourceStatus:
    """The operator's fields; ``spec`` is the InvalidSpec problem when the spec is unreadable,
    ``replica`` the owner among the live dispatcher replicas, ``previous`` the stored status
    (both writers' fields: the dispatcher's Polling condition is read from it)."""
    status, reason, message = _ready(
        namespace,
        generation,
        spec,
        function_exists,
        schedule_error,
        replica,
        dispatcher_namespace,
        previous,
    )
    before = condition(previous, ConditionType.READY)
    since = (
        before.last_transition_time
        if before is not None and before.status == status and before.last_transition_time
        else now.replace(microsecond=0)
    )
    ready = Condition(
        type=ConditionType.READY,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    return EventSourceStatus(
        conditions=(ready,), observed_generation=generation, assigned_replica=replica
    )


def operator_fields(stored: EventSourceStatus | None) -> EventSourceStatus | None:
    """The operator's part of a stored status, to compare with ``eventsource_status``."""
    if stored is None:
        return None
    ready = condition(stored, ConditionType.READY)
    return EventSourceStatus(
        conditions=(ready,) if ready is not None else (),
        observed_generation=stored.observed_generation,
        assigned_replica=stored.assigned_replica,
    )


def problem(status: EventSourceStatus | None) -> Problem | None:
    """The reason and message of a Ready=False worth a Warning Event (not ``Starting``)."""
    ready = condition(status, ConditionType.READY)
    if ready is None or ready.status != FALSE or ready.reason is None:
        return None
    if ready.reason == EventSourceReadyReason.STARTING:  # every source passes through it
        return None
    return Problem(ready.reason or "", ready.message or "")


def condition(status: EventSourceStatus | None, kind: str) -> Condition | None:
    if status is None:
        return None
    return next((c for c in status.conditions if c.type == kind), None)


def _ready(
    namespace: str,
    generation: int,
    spec: EventSourceSpec | Problem,
    function_exists: bool,
    schedule_error: str | None,
    replica: str | None,
    dispatcher_namespace: str,
    previous: EventSourceStatus | None,
) -> tuple[ConditionStatus, str, str]:
    if isinstance(spec, Problem):
        return FALSE, spec.reason, spec.message
    function = spec.function.name
    if not function_exists:
        return (
            FALSE,
            EventSourceReadyReason.FUNCTION_NOT_FOUND,
            f"Function {function} does not exist in namespace {namespace}; "
            "create it or fix spec.function.name",
        )
    if schedule_error is not None:
        return FALSE, EventSourceReadyReason.INVALID_SCHEDULE, schedule_error
    if replica is None:
        return (
            FALSE,
            EventSourceReadyReason.NO_DISPATCHER,
            f"no event dispatcher replica is running in namespace {dispatcher_namespace}; "
            "install the chart's dispatcher (dispatcher.replicas >= 1)",
        )
    if not spec.enabled:
        return (
            TRUE,
            EventSourceReadyReason.PAUSED,
            f"delivery is paused (spec.enabled: false); assigned to event dispatcher {replica}",
        )
    polling = condition(previous, ConditionType.POLLING)
    if polling is not None and polling.observed_generation == generation:
        if polling.status == FALSE:
            return (
                FALSE,
                polling.reason or EventSourceReadyReason.NOT_POLLING,
                polling.message or f"event dispatcher {replica} cannot poll the source",
            )
        if polling.status == TRUE:
            return (
                TRUE,
                EventSourceReadyReason.DELIVERING,
                f"event dispatcher {replica} delivers the source's events to Function {function}",
            )
    return (
        FALSE,
        EventSourceReadyReason.STARTING,
        f"waiting for event dispatcher {replica} to start the source",
    )
