"""The InitError Events' words, names and pacing (the API server's side, one Event between two
activators and `kubectl describe`, is in tests/controlplane/test_announce.py)."""

from __future__ import annotations

from typing import Any

from lambdalet.activator.model import FunctionConfig
from lambdalet.activator.warnings import REPOST_SECONDS, InitErrorEvents, event_name, message

CONFIG = FunctionConfig(namespace="team", name="hello", uid="u-1")
ERROR = b'{"errorType": "Runtime.ImportModuleError", "errorMessage": "No module named \'x\'"}'


class RecordingClient:
    """Records the objects created (the Event seam of a KubeClient)."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        self.created.append(body)
        return body


def test_message_carries_the_pod_the_type_and_the_runtimes_words() -> None:
    assert message("p-1", "Runtime.ImportModuleError", ERROR) == (
        "pod p-1: Runtime.ImportModuleError: No module named 'x'"
    )
    assert message("p-1", "Runtime.ExitError", b"[1, 2]") == "pod p-1: Runtime.ExitError"
    assert message("p-1", "Runtime.ExitError", b"{}") == "pod p-1: Runtime.ExitError"


def test_event_name_is_shared_by_activators_and_distinct_per_pod_and_error() -> None:
    name = event_name(CONFIG, "p-1", "Runtime.ImportModuleError")
    assert name == event_name(CONFIG, "p-1", "Runtime.ImportModuleError")
    assert name.startswith("hello.init-error.")
    assert name != event_name(CONFIG, "p-2", "Runtime.ImportModuleError")
    assert name != event_name(CONFIG, "p-1", "Runtime.ExitError")


async def test_one_event_per_pod_and_error_every_ten_minutes() -> None:
    now = [1000.0]
    client = RecordingClient()
    events = InitErrorEvents(client, clock=lambda: now[0])  # type: ignore[arg-type]

    for _ in range(3):  # every failed round reports
        events.report(CONFIG, "p-1", "Runtime.ImportModuleError", ERROR)
    events.report(CONFIG, "p-2", "Runtime.ImportModuleError", ERROR)
    await events.flush()
    assert len(client.created) == 2

    now[0] += REPOST_SECONDS
    events.report(CONFIG, "p-1", "Runtime.ImportModuleError", ERROR)
    await events.flush()
    assert len(client.created) == 3

    event = client.created[0]
    assert event["metadata"] == {
        "name": event_name(CONFIG, "p-1", "Runtime.ImportModuleError"),
        "namespace": "team",
    }
    assert event["involvedObject"]["uid"] == "u-1"
    assert (event["type"], event["reason"]) == ("Warning", "InitError")
    await events.aclose()
