"""The words of the status conditions are API: users, `kubectl wait`, Argo CD's health checks
and alerts match on them. This table pins every value; changing one is a breaking change."""

from __future__ import annotations

from enum import StrEnum

import pytest

from lambdalet.api.conditions import (
    ConditionType,
    EventSourceReadyReason,
    FunctionActiveReason,
    FunctionReadyReason,
    PollingReason,
)


@pytest.mark.parametrize(
    ("words", "values"),
    [
        (ConditionType, ["Ready", "Active", "Polling"]),
        (
            FunctionReadyReason,
            [
                "Reconciling",
                "Deploying",
                "DeploymentFailed",
                "Ready",
                "InvalidSpec",
                "CodeNotFound",
                "NameConflict",
                "ApplyRejected",
            ],
        ),
        (FunctionActiveReason, ["Reconciling", "Serving", "ScaledToZero", "Activating"]),
        (
            EventSourceReadyReason,
            [
                "InvalidSpec",
                "FunctionNotFound",
                "InvalidSchedule",
                "NoDispatcher",
                "Paused",
                "Delivering",
                "Starting",
                "NotPolling",
            ],
        ),
        (
            PollingReason,
            ["Polling", "Starting", "SourceUnavailable", "SourceMisconfigured", "SecretNotFound"],
        ),
    ],
)
def test_the_values_users_see(words: type[StrEnum], values: list[str]) -> None:
    assert [member.value for member in words] == values
    assert all(f"{member}" == member.value for member in words)  # str() and f-strings too
