"""The words of the status conditions: their types and reasons, as ``kubectl`` shows them.

These values are API: users, ``kubectl wait --for=condition=Ready``, Argo CD's health check
(``gitops/``) and alerts match on them, so a value never changes once released. Each status
module says when each reason is given (``lambdalet.controller.functions.status``,
``lambdalet.controller.eventsources.status``, ``lambdalet.dispatcher.replica.status``); here is
only the vocabulary, shared by the operator, which writes ``Ready`` and ``Active``, and the event
dispatcher, which writes ``Polling``.
"""

from __future__ import annotations

from enum import StrEnum


class ConditionType(StrEnum):
    READY = "Ready"  # Function and EventSource, written by the operator
    ACTIVE = "Active"  # Function: whether instances run
    POLLING = "Polling"  # EventSource, written by the event dispatcher


class FunctionReadyReason(StrEnum):
    RECONCILING = "Reconciling"
    DEPLOYING = "Deploying"
    DEPLOYMENT_FAILED = "DeploymentFailed"
    READY = "Ready"
    # Problems (Ready=False), each also posted as a Warning Event.
    INVALID_SPEC = "InvalidSpec"
    CODE_NOT_FOUND = "CodeNotFound"
    NAME_CONFLICT = "NameConflict"
    APPLY_REJECTED = "ApplyRejected"


class FunctionActiveReason(StrEnum):
    RECONCILING = "Reconciling"  # Unknown: no Deployment yet
    SERVING = "Serving"  # True: an instance is ready
    SCALED_TO_ZERO = "ScaledToZero"  # False: none asked for
    ACTIVATING = "Activating"  # False: asked for, none ready yet


class EventSourceReadyReason(StrEnum):
    """The operator's own reasons; Ready=False also carries Polling's reason when it is False."""

    INVALID_SPEC = "InvalidSpec"
    FUNCTION_NOT_FOUND = "FunctionNotFound"
    INVALID_SCHEDULE = "InvalidSchedule"
    NO_DISPATCHER = "NoDispatcher"
    PAUSED = "Paused"
    DELIVERING = "Delivering"
    STARTING = "Starting"
    NOT_POLLING = "NotPolling"  # Polling=False without a reason


class PollingReason(StrEnum):
    POLLING = "Polling"  # True
    STARTING = "Starting"  # Unknown; the others are False
    SOURCE_UNAVAILABLE = "SourceUnavailable"
    SOURCE_MISCONFIGURED = "SourceMisconfigured"
    SECRET_NOT_FOUND = "SecretNotFound"
