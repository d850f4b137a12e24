"""function_status: the conditions, counts and URL a Function shows for what the operator saw."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lambdalet.api.common import Condition, ConditionStatus
from lambdalet.api.function import FunctionStatus
from lambdalet.contracts.deployments import DeploymentState
from lambdalet.contracts.problems import Problem
from lambdalet.controller.functions.status import cold_start_update, function_status

TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN
NOW = datetime(2024, 5, 1, 12, 30, 15, 987654, tzinfo=UTC)
NOW_SECONDS = datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC)
EARLIER = datetime(2024, 4, 1, 8, 0, 0, tzinfo=UTC)
URL = "http://lambdalet-activator.lambdalet-system.svc/fn/team/hello"


def dep(
    *,
    generation: int = 2,
    observed_generation: int = 2,
    replicas: int = 0,
    ready: int = 0,
    updated: int | None = None,
    failure: str | None = None,
) -> DeploymentState:
    """A Deployment the Deployment controller has caught up with, unless told otherwise."""
    return DeploymentState(
        name="fn-hello",
        owner_uid="uid",
        applied_hash="0123456789abcdef",
        generation=generation,
        observed_generation=observed_generation,
        replicas=replicas,
        ready_replicas=ready,
        updated_replicas=replicas if updated is None else updated,
        failure=failure,
    )


def status(
    *,
    problem: Problem | None = None,
    deployment: DeploymentState | None = None,
    previous: FunctionStatus | None = None,
    generation: int = 3,
    url: str | None = URL,
    now: datetime = NOW,
) -> FunctionStatus:
    return function_status(
        generation=generation,
        url=url,
        problem=problem,
        deployment=deployment,
        previous=previous,
        now=now,
    )


def condition(result: FunctionStatus, kind: str) -> Condition:
    [found] = [c for c in result.conditions if c.type == kind]
    return found


def previous_with(*conditions: Condition) -> FunctionStatus:
    return FunctionStatus(conditions=conditions, observed_generation=2)


CODE_NOT_FOUND = Problem("CodeNotFound", "ConfigMap hello-code named in spec.code.configMap ...")
INVALID = Problem("InvalidSpec", "The Function's spec is invalid: spec.memoryMiB: ...")

# (id, problem, deployment, (Ready status, reason, message), (Active status, reason, message))
SITUATIONS = [
    (
        "first-pass",
        None,
        None,
        (UNKNOWN, "Reconciling", "Creating the function's Deployment and Service."),
        (UNKNOWN, "Reconciling", "No Deployment yet."),
    ),
    (
        "deployment-controller-behind",
        None,
        dep(generation=3, observed_generation=2, replicas=1, ready=1),
        (UNKNOWN, "Deploying", "Waiting for the Deployment controller to see the change."),
        (TRUE, "Serving", "1 instance(s) ready."),
    ),
    (
        "rolling-out",
        None,
        dep(replicas=3, ready=2, updated=1),
        (UNKNOWN, "Deploying", "Rolling out: 1/3 instances updated."),
        (TRUE, "Serving", "2 instance(s) ready."),
    ),
    (
        "problem",
        CODE_NOT_FOUND,
        dep(replicas=1, ready=1),
        (FALSE, "CodeNotFound", CODE_NOT_FOUND.message),
        (TRUE, "Serving", "1 instance(s) ready."),
    ),
    (
        "problem-before-any-deployment",
        INVALID,
        None,
        (FALSE, "InvalidSpec", INVALID.message),
        (UNKNOWN, "Reconciling", "No Deployment yet."),
    ),
    (
        "problem-outranks-deployment-failure",
        CODE_NOT_FOUND,
        dep(replicas=1, failure="ReplicaSet has timed out progressing."),
        (FALSE, "CodeNotFound", CODE_NOT_FOUND.message),
        (FALSE, "Activating", "1 instance(s) starting."),
    ),
    (
        "deployment-failed",
        None,
        dep(replicas=1, failure='pods "fn-hello-1" is forbidden: exceeded quota'),
        (FALSE, "DeploymentFailed", 'pods "fn-hello-1" is forbidden: exceeded quota'),
        (FALSE, "Activating", "1 instance(s) starting."),
    ),
    (
        "ready-at-zero",
        None,
        dep(replicas=0),
        (TRUE, "Ready", "The function is deployed and can be invoked."),
        (FALSE, "ScaledToZero", "No instances; the next invocation starts one."),
    ),
    (
        "serving",
        None,
        dep(replicas=2, ready=2),
        (TRUE, "Ready", "The function is deployed and can be invoked."),
        (TRUE, "Serving", "2 instance(s) ready."),
    ),
    (
        "activating",
        None,
        dep(replicas=1, ready=0),
        (TRUE, "Ready", "The function is deployed and can be invoked."),
        (FALSE, "Activating", "1 instance(s) starting."),
    ),
]


@pytest.mark.parametrize(
    ("problem", "deployment", "ready", "active"),
    [s[1:] for s in SITUATIONS],
    ids=[s[0] for s in SITUATIONS],
)
def test_conditions_for_each_situation(
    problem: Problem | None,
    deployment: DeploymentState | None,
    ready: tuple[ConditionStatus, str, str],
    active: tuple[ConditionStatus, str, str],
) -> None:
    result = status(problem=problem, deployment=deployment)

    assert [c.type for c in result.conditions] == ["Ready", "Active"]
    for kind, expected in (("Ready", ready), ("Active", active)):
        got = condition(result, kind)
        assert (got.status, got.reason, got.message) == expected


@pytest.mark.parametrize(
    ("before", "deployment", "since"),
    [
        # No earlier status, or an earlier one without a time: the transition is now.
        (None, dep(replicas=0), NOW_SECONDS),
        (Condition(type="Ready", status=TRUE), dep(replicas=0), NOW_SECONDS),
        # Same status: the time stays, even when reason and message change.
        (
            Condition(type="Ready", status=TRUE, reason="Ready", last_transition_time=EARLIER),
            dep(replicas=0),
            EARLIER,
        ),
        (
            Condition(
                type="Ready", status=UNKNOWN, reason="Reconciling", last_transition_time=EARLIER
            ),
            dep(generation=3, observed_generation=2),
            EARLIER,
        ),
        # Another status: the time is now, to the second.
        (
            Condition(type="Ready", status=UNKNOWN, last_transition_time=EARLIER),
            dep(replicas=0),
            NOW_SECONDS,
        ),
        (
            Condition(type="Ready", status=TRUE, last_transition_time=EARLIER),
            dep(replicas=1, failure="exceeded quota"),
            NOW_SECONDS,
        ),
        # The time of another condition type is not borrowed.
        (
            Condition(type="Active", status=TRUE, last_transition_time=EARLIER),
            dep(replicas=0),
            NOW_SECONDS,
        ),
    ],
    ids=[
        "no-previous",
        "previous-without-time",
        "unchanged",
        "unchanged-status-new-reason",
        "unknown-to-true",
        "true-to-false",
        "other-type",
    ],
)
def test_ready_transition_time(
    before: Condition | None, deployment: DeploymentState, since: datetime
) -> None:
    previous = previous_with(before) if before else None

    result = status(deployment=deployment, previous=previous)

    assert condition(result, "Ready").last_transition_time == since


def test_each_condition_keeps_its_own_transition_time() -> None:
    previous = previous_with(
        Condition(type="Ready", status=TRUE, last_transition_time=EARLIER),
        Condition(type="Active", status=FALSE, last_transition_time=EARLIER),
    )

    result = status(deployment=dep(replicas=1, ready=1), previous=previous)

    assert condition(result, "Ready").last_transition_time == EARLIER
    assert condition(result, "Active").last_transition_time == NOW_SECONDS


@pytest.mark.parametrize(
    ("deployment"),
    [None, dep(replicas=0), dep(replicas=3, ready=1, updated=2)],
    ids=["no-deployment", "at-zero", "rolling-out"],
)
def test_recomputing_an_unchanged_function_gives_the_same_status(
    deployment: DeploymentState | None,
) -> None:
    first = status(deployment=deployment)

    again = status(deployment=deployment, previous=first, now=NOW + timedelta(minutes=5))

    assert again == first


@pytest.mark.parametrize(("generation"), [1, 7])
def test_observed_generation_on_status_and_conditions(generation: int) -> None:
    result = status(deployment=dep(), generation=generation)

    assert result.observed_generation == generation
    assert [c.observed_generation for c in result.conditions] == [generation, generation]


@pytest.mark.parametrize(
    ("deployment", "replicas", "ready_replicas"),
    [
        (None, 0, 0),
        (dep(replicas=0), 0, 0),
        (dep(replicas=4, ready=3, updated=4), 4, 3),
    ],
    ids=["no-deployment", "at-zero", "scaled"],
)
def test_replica_counts_come_from_the_deployment(
    deployment: DeploymentState | None, replicas: int, ready_replicas: int
) -> None:
    result = status(deployment=deployment)

    assert (result.replicas, result.ready_replicas) == (replicas, ready_replicas)


@pytest.mark.parametrize(("url"), [URL, None], ids=["url", "no-url"])
def test_url_is_shown_as_given(url: str | None) -> None:
    assert status(deployment=dep(), url=url).url == url


@pytest.mark.parametrize(
    ("previous", "cold_start"),
    [
        (None, None),
        (FunctionStatus(), None),
        (FunctionStatus(last_cold_start_seconds=1.25), 1.25),
    ],
    ids=["no-previous", "never-measured", "measured"],
)
def test_last_cold_start_is_carried_over(
    previous: FunctionStatus | None, cold_start: float | None
) -> None:
    result = status(deployment=dep(replicas=1, ready=1), previous=previous)

    assert result.last_cold_start_seconds == cold_start


@pytest.mark.parametrize(
    ("reported", "stored", "written"),
    [
        (1.2345, None, 1.23),  # the first cold start
        (1.2345, 0.8, 1.23),  # a new one
        (1.2345, 1.23, None),  # the same figure (another activator saw the same cold start)
        (1.2261, 1.23, None),  # within 10 ms of it: rounds to the same
        (0.004, None, 0.0),
        (61.0, 1.23, 61.0),
    ],
)
def test_cold_start_update(reported: float, stored: float | None, written: float | None) -> None:
    assert cold_start_update(reported, stored) == written
