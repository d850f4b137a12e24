"""The manifests under examples/ are valid API objects (the models the CRDs are generated from);
tests/controlplane/test_examples.py sends them to a real API server as well."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from lambdalet.api.eventsource import EventSource
from lambdalet.api.function import Function
from lambdalet.api.schedule import parse

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MANIFESTS = sorted(EXAMPLES.glob("*/*.yaml"))
CREATED = datetime(2026, 11, 22, tzinfo=UTC)  # a schedule's origin: its creationTimestamp


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def test_there_are_examples_of_every_event_source_kind() -> None:
    kinds = set()
    for path in EXAMPLES.glob("event-sources/*.yaml"):
        for doc in documents(path):
            if doc["kind"] == "EventSource":
                kinds |= doc["spec"].keys() & {
                    "redisStreams", "rabbitmq", "natsJetStream", "sqs", "s3", "schedule"
                }  # fmt: skip
    assert kinds == {"redisStreams", "rabbitmq", "natsJetStream", "sqs", "s3", "schedule"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_example_is_a_valid_object(path: Path) -> None:
    for doc in documents(path):
        model = {"Function": Function, "EventSource": EventSource}[doc["kind"]]
        parsed = model.model_validate(doc)
        if isinstance(parsed, EventSource) and parsed.spec.schedule is not None:
            schedule = parsed.spec.schedule
            parse(schedule.expression, schedule.time_zone, CREATED)
