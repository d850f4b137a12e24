"""The status a Function should show, as a pure function of what the operator observed.

Conditions (kstatus-style, so Argo CD, Flux and ``kubectl wait`` can read them):

    Ready   Unknown  Reconciling     first pass, children not created yet
            Unknown  Deploying       the Deployment controller has not caught up with a change
            False    <problem>       the spec cannot be satisfied; the message says what to fix
            False    DeploymentFailed  the Deployment reports ReplicaFailure / ProgressDeadline
            True     Ready           children match the spec (a function at zero is Ready)
    Active  True     Serving         at least one instance is ready
            False    ScaledToZero    no instances (requests wake it through the activator)
            False    Activating      instances requested, none ready yet
            Unknown  Reconciling     no Deployment yet

A condition keeps its ``lastTransitionTime`` while its status does not change, so recomputing the
status of an unchanged Function yields an identical object and the operator writes nothing.

``lastColdStartSeconds`` has its own writer (``lambdalet.controller.functions.coldstarts``): the
reconciler carries the stored value over and never writes it, so the two never undo each other.
``cold_start_update`` decides whether a reported cold start changes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from lambdalet.api.common import Condition, ConditionStatus
from lambdalet.api.conditions import ConditionType, FunctionActiveReason, FunctionReadyReason
from lambdalet.api.function import FunctionStatus
from lambdalet.contracts.deployments import DeploymentState
from lambdalet.contracts.problems import Problem

TRUE, FALSE, UNKNOWN = ConditionStatus.TRUE, ConditionStatus.FALSE, ConditionStatus.UNKNOWN


def function_status(
    *,
    generation: int,
    url: str | None,
    problem: Problem | None,
    deployment: DeploymentState | None,
    previous: FunctionStatus | None,
    now: datetime,
) -> FunctionStatus:
    previous_conditions = previous.conditions if previous else ()
    ready = _ready(problem, deployment)
    active = _active(deployment)
    return FunctionStatus(
        conditions=(
            _condition(ConditionType.READY, *ready, generation, previous_conditions, now),
            _condition(ConditionType.ACTIVE, *active, generation, previous_conditions, now),
        ),
        observed_generation=generation,
        replicas=deployment.replicas if deployment else 0,
        ready_replicas=deployment.ready_replicas if deployment else 0,
        url=url,
        last_cold_start_seconds=previous.last_cold_start_seconds if previous else None,
    )


# status.lastColdStartSeconds is kept to this many decimals (10 ms): finer figures are noise
# between the activators that see the same cold start, and would only cost writes.
COLD_START_DECIMALS = 2


def cold_start_update(reported: float, stored: float | None) -> float | None:
    """The ``lastColdStartSeconds`` to write for a cold start of ``reported`` seconds, or None
    when the status already says so. E.g. 1.2345 over 0.8 -> 1.23; 1.2345 over 1.23 -> None."""
    value = round(reported, COLD_START_DECIMALS)
    return None if stored == value else value


def _ready(
    problem: Problem | None, deployment: DeploymentState | None
) -> tuple[ConditionStatus, str, str]:
    if problem is not None:
        return FALSE, problem.reason, problem.message
    if deployment is None:
        return (
            UNKNOWN,
            FunctionReadyReason.RECONCILING,
            "Creating the function's Deployment and Service.",
        )
    if deployment.failure:
        return FALSE, FunctionReadyReason.DEPLOYMENT_FAILED, deployment.failure
    if deployment.observed_generation < deployment.generation:
        return (
            UNKNOWN,
            FunctionReadyReason.DEPLOYING,
            "Waiting for the Deployment controller to see the change.",
        )
    if deployment.updated_replicas < deployment.replicas:
        return (
            UNKNOWN,
            FunctionReadyReason.DEPLOYING,
            f"Rolling out: {deployment.updated_replicas}/{deployment.replicas} instances updated.",
        )
    return TRUE, FunctionReadyReason.READY, "The function is deployed and can be invoked."


def _active(deployment: DeploymentState | None) -> tuple[ConditionStatus, str, str]:
    if deployment is None:
        return UNKNOWN, FunctionActiveReason.RECONCILING, "No Deployment yet."
    if deployment.ready_replicas > 0:
        return TRUE, FunctionActiveReason.SERVING, f"{deployment.ready_replicas} instance(s) ready."
    if deployment.replicas == 0:
        return (
            FALSE,
            FunctionActiveReason.SCALED_TO_ZERO,
            "No instances; the next invocation starts one.",
        )
    return FALSE, FunctionActiveReason.ACTIVATING, f"{deployment.replicas} instance(s) starting."


def _condition(
    kind: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int,
    previous: Sequence[Condition],
    now: datetime,
) -> Condition:
    before = next((c for c in previous if c.type == kind), None)
    since = (
        before.last_transition_time
        if before is not None and before.status == status and before.last_transition_time
        else now.replace(microsecond=0)
    )
    return Condition(
        type=kind,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
