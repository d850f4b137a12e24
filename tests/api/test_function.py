"""The Function model: valid manifests parse with Lambda's defaults, invalid ones are rejected."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from lambdalet.api import (
    Code,
    Condition,
    ConditionStatus,
    Function,
    FunctionSpec,
    FunctionStatus,
    ObjectMeta,
    Runtime,
)
from lambdalet.api.function import AuthType, EventFormat, Exposure
from tests.api.cases import INVALID_FUNCTIONS, VALID_FUNCTIONS, function


@pytest.mark.parametrize(
    ("manifest"), [m for _, m in VALID_FUNCTIONS], ids=[i for i, _ in VALID_FUNCTIONS]
)
def test_valid_manifest_parses(manifest: dict[str, Any]) -> None:
    fn = Function.model_validate(manifest)

    assert fn.metadata.name == manifest["metadata"]["name"]
    assert fn.spec.runtime == manifest["spec"]["runtime"]


def test_defaults_are_lambdas() -> None:
    spec = Function.model_validate(function()).spec

    assert (spec.timeout_seconds, spec.memory_mib) == (3, 128)
    assert spec.concurrency.per_instance == 1
    assert spec.concurrency.reserved is None
    assert (spec.scaling.min_scale, spec.scaling.max_scale) == (0, 10)
    assert spec.scaling.target_concurrency is None
    assert spec.scaling.scale_to_zero_after_seconds == 60
    assert spec.http.exposure is Exposure.CLUSTER_LOCAL
    assert spec.http.auth.type is AuthType.NONE
    assert spec.http.event_format is EventFormat.V2
    assert (spec.async_.max_retries, spec.async_.max_event_age_seconds) == (2, 21600)
    assert spec.environment == {}
    assert spec.env_from == ()


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [(manifest, expected) for _, manifest, expected, _ in INVALID_FUNCTIONS],
    ids=[case_id for case_id, *_ in INVALID_FUNCTIONS],
)
def test_invalid_manifest_is_rejected(manifest: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as error:
        Function.model_validate(manifest)

    assert expected in str(error.value)


def test_there_are_enough_invalid_cases() -> None:
    assert len(INVALID_FUNCTIONS) >= 12
    assert len({case_id for case_id, *_ in INVALID_FUNCTIONS}) == len(INVALID_FUNCTIONS)


def test_wire_round_trip() -> None:
    fn = Function.model_validate(function(memoryMiB=256, **{"async": {"maxRetries": 0}}))

    wire = fn.to_wire()

    assert wire["spec"]["memoryMiB"] == 256
    assert wire["spec"]["async"]["maxRetries"] == 0
    assert "handler" in wire["spec"]
    assert "status" not in wire
    assert Function.model_validate(wire) == fn


def test_fields_populate_by_python_name() -> None:
    spec = FunctionSpec(
        runtime=Runtime.PROVIDED,
        code=Code.model_validate({"image": {"image": "echo:1"}}),
        memory_mib=512,
    )
    fn = Function(metadata=ObjectMeta(name="echo"), spec=spec)

    assert fn.api_version == "lambdalet.dev/v1alpha1"
    assert fn.kind == "Function"
    assert fn.to_wire()["spec"]["memoryMiB"] == 512


def test_models_are_frozen() -> None:
    spec = Function.model_validate(function()).spec

    with pytest.raises(ValidationError):
        spec.timeout_seconds = 10  # type: ignore[misc]


def test_metadata_ignores_fields_it_does_not_read() -> None:
    manifest = function()
    manifest["metadata"] = {
        "name": "hello",
        "namespace": "team-a",
        "uid": "1234",
        "generation": 3,
        "resourceVersion": "99",
        "managedFields": [{"manager": "kubectl"}],
        "labels": {"app": "hello"},
    }

    meta = Function.model_validate(manifest).metadata

    assert (meta.namespace, meta.uid, meta.generation) == ("team-a", "1234", 3)
    assert meta.labels == {"app": "hello"}


def test_status_parses_and_ignores_foreign_fields() -> None:
    manifest = function()
    manifest["status"] = {
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Ready",
                "lastTransitionTime": "2024-05-01T12:00:00Z",
                "observedGeneration": 2,
            }
        ],
        "observedGeneration": 2,
        "replicas": 1,
        "readyReplicas": 1,
        "url": "http://activator.lambdalet/fn/default/hello",
        "lastColdStartSeconds": 0.42,
        "kopf": {"progress": {}},
    }

    status = Function.model_validate(manifest).status

    assert status is not None
    (ready,) = status.conditions
    assert ready.status is ConditionStatus.TRUE
    assert ready.last_transition_time == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert status.last_cold_start_seconds == 0.42


def test_status_serialises_for_a_patch() -> None:
    status = FunctionStatus(
        conditions=(
            Condition(
                type="Ready",
                status=ConditionStatus.FALSE,
                reason="CodeUnavailable",
                last_transition_time=datetime(2024, 5, 1, 12, tzinfo=UTC),
            ),
        ),
        replicas=0,
    )

    assert status.to_wire() == {
        "conditions": [
            {
                "type": "Ready",
                "status": "False",
                "reason": "CodeUnavailable",
                "lastTransitionTime": "2024-05-01T12:00:00Z",
            }
        ],
        "replicas": 0,
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("lastTransitionTime", "2024-05-01T12:00:00"),
        ("lastTransitionTime", "yesterday"),
        ("status", "true"),
    ],
)
def test_condition_rejects_what_the_api_server_would(field: str, value: str) -> None:
    condition = {"type": "Ready", "status": "True", field: value}

    with pytest.raises(ValidationError, match=field):
        Condition.model_validate(condition)
