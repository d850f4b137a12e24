"""The EventSource model: one source per object, Lambda-like delivery defaults."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from lambdalet.api import EventSource
from tests.api.cases import DELETE, INVALID_EVENTSOURCES, VALID_EVENTSOURCES, event_source


@pytest.mark.parametrize(
    "manifest", [m for _, m in VALID_EVENTSOURCES], ids=[i for i, _ in VALID_EVENTSOURCES]
)
def test_valid_manifest_parses(manifest: dict[str, Any]) -> None:
    evs = EventSource.model_validate(manifest)

    assert evs.spec.function.name == manifest["spec"]["function"]["name"]


def test_delivery_defaults() -> None:
    spec = EventSource.model_validate(event_source()).spec

    assert spec.batch_size == 10
    assert spec.batch_window_seconds == 0
    assert spec.max_concurrency == 1
    assert spec.max_retries == 2
    assert spec.dead_letter is None
    assert spec.report_batch_item_failures is False
    assert spec.enabled is True
    assert spec.schedule is not None
    assert spec.schedule.time_zone == "UTC"


@pytest.mark.parametrize(
    ("source", "value", "defaults"),
    [
        ("redisStreams", {"url": "redis://r:6379", "stream": "s"}, {"consumer_group": "lambdalet"}),
        ("sqs", {"queueUrl": "https://sqs.test/1/q"}, {"region": "us-east-1"}),
        ("s3", {"endpoint": "http://m:9000", "bucket": "b"}, {"events": ("s3:ObjectCreated:*",)}),
    ],
)
def test_source_defaults(source: str, value: dict[str, Any], defaults: dict[str, Any]) -> None:
    spec = EventSource.model_validate(event_source(schedule=DELETE, **{source: value})).spec
    parsed = {
        "redisStreams": spec.redis_streams,
        "sqs": spec.sqs,
        "s3": spec.s3,
    }[source]

    assert parsed is not None
    for name, expected in defaults.items():
        assert getattr(parsed, name) == expected


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [(manifest, expected) for _, manifest, expected, _ in INVALID_EVENTSOURCES],
    ids=[case_id for case_id, *_ in INVALID_EVENTSOURCES],
)
def test_invalid_manifest_is_rejected(manifest: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as error:
        EventSource.model_validate(manifest)

    assert expected in str(error.value)


def test_wire_round_trip() -> None:
    evs = EventSource.model_validate(
        event_source(batchSize=50, maxConcurrency=4, reportBatchItemFailures=True)
    )

    wire = evs.to_wire()

    assert wire["spec"]["batchSize"] == 50
    assert wire["spec"]["maxConcurrency"] == 4
    assert wire["spec"]["reportBatchItemFailures"] is True
    assert wire["spec"]["schedule"] == {"expression": "*/5 * * * *", "timeZone": "UTC"}
    assert EventSource.model_validate(wire) == evs


def test_status_parses() -> None:
    manifest = event_source()
    manifest["status"] = {
        "conditions": [{"type": "Ready", "status": "False", "reason": "FunctionNotFound"}],
        "assignedReplica": "lambdalet-dispatcher-1",
        "lastScheduleTime": "2024-05-01T12:00:00.5Z",
        "firing": {
            "tick": "2024-05-01T12:05:00Z",
            "replica": "lambdalet-dispatcher-1",
            "since": "2024-05-01T12:05:00.2Z",
        },
    }

    status = EventSource.model_validate(manifest).status

    assert status is not None
    assert status.assigned_replica == "lambdalet-dispatcher-1"
    assert status.last_schedule_time is not None
    assert status.last_schedule_time.microsecond == 500000
    assert status.firing is not None
    assert status.firing.replica == "lambdalet-dispatcher-1"
