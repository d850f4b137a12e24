"""Argo CD health checks for Function and EventSource (gitops/argocd/*.lua), run in a real Lua 5.1
(lupa's embedded interpreter; Argo CD's gopher-lua speaks 5.1) the way Argo CD runs them: ``obj``
set to the object, the script's returned table read as the health. Each reason the operator
writes (operator/lambdalet/controller/status.py, eventsource_status.py) has a row; the ConfigMap
patch must carry exactly the .lua files' text."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51  # type: ignore[import-untyped]

from tests.kit.paths import REPO

ARGOCD = REPO / "gitops" / "argocd"
SCRIPTS = {
    "Function": ARGOCD / "health-function.lua",
    "EventSource": ARGOCD / "health-eventsource.lua",
}
GENERATION = 3


def health(kind: str, obj: dict[str, Any]) -> tuple[str, str]:
    """(status, message) as Argo CD would read them from the script's result."""
    lua = lua51.LuaRuntime(unpack_returned_tuples=False)
    assert lua.eval("_VERSION") == "Lua 5.1"
    lua.globals().obj = lua.table_from(obj, recursive=True)
    hs = lua.execute(SCRIPTS[kind].read_text())
    result = dict(hs.items())
    assert set(result) == {"status", "message"}, result
    return str(result["status"]), str(result["message"])


def body(
    kind: str,
    ready: dict[str, Any] | None = None,
    *,
    observed: int | None = GENERATION,
    condition_generation: int | None = GENERATION,
    extra: tuple[dict[str, Any], ...] = (),
) -> dict[str, Any]:
    """An object at GENERATION with a status that observed ``observed`` and carries ``ready``
    (type, status, reason, message given; None: no Ready condition) after ``extra``."""
    obj: dict[str, Any] = {
        "apiVersion": "lambdalet.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "apps", "generation": GENERATION},
        "spec": {},
    }
    conditions = list(extra)
    if ready is not None:
        condition = {"type": "Ready", "lastTransitionTime": "2026-01-01T00:00:00Z", **ready}
        if condition_generation is not None:
            condition["observedGeneration"] = condition_generation
        conditions.append(condition)
    status: dict[str, Any] = {"conditions": conditions}
    if observed is not None:
        status["observedGeneration"] = observed
    obj["status"] = status
    return obj


def ready(status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {"status": status, "reason": reason, "message": message}


WAITING = "Waiting for the operator to observe the current spec"
DEPLOYED = "The function is deployed and can be invoked."
ACTIVE = {"type": "Active", "status": "False", "reason": "ScaledToZero", "message": "No instances"}


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
@pytest.mark.parametrize(
    "obj_of",
    [
        pytest.param(lambda k: {"kind": k, "metadata": {"generation": 1}}, id="no status"),
        pytest.param(lambda k: {**body(k), "status": {}}, id="empty status"),
        pytest.param(lambda k: body(k, None), id="no Ready condition"),
        pytest.param(
            lambda k: body(k, ready("True", "Ready", "ok"), observed=GENERATION - 1),
            id="status of an older generation",
        ),
        pytest.param(
            lambda k: body(k, ready("True", "Ready", "ok"), observed=None),
            id="status without observedGeneration",
        ),
        pytest.param(
            lambda k: body(k, ready("False", "NameConflict", "x"), condition_generation=1),
            id="Ready of an older generation",
        ),
    ],
)
def test_waiting_for_the_operator(kind: str, obj_of: Callable[[str], dict[str, Any]]) -> None:
    assert health(kind, obj_of(kind)) == ("Progressing", WAITING)


@pytest.mark.parametrize(
    ("ready_condition", "expected"),
    [
        (ready("True", "Ready", DEPLOYED), ("Healthy", DEPLOYED)),
        (ready("True", "Ready"), ("Healthy", "Ready")),
        (
            ready("Unknown", "Reconciling", "Creating the function's Deployment and Service."),
            ("Progressing", "Reconciling: Creating the function's Deployment and Service."),
        ),
        (
            ready("Unknown", "Deploying", "Rolling out: 0/1 instances updated."),
            ("Progressing", "Deploying: Rolling out: 0/1 instances updated."),
        ),
        # Transient reasons stay Progressing should they ever be written with False.
        (ready("False", "Deploying", "rolling"), ("Progressing", "Deploying: rolling")),
        (ready("False", "Reconciling", "first"), ("Progressing", "Reconciling: first")),
        (
            ready("False", "CodeNotFound", "ConfigMap code named in spec.code.configMap ..."),
            ("Degraded", "CodeNotFound: ConfigMap code named in spec.code.configMap ..."),
        ),
        (
            ready("False", "NameConflict", "Deployment fn-x already exists"),
            ("Degraded", "NameConflict: Deployment fn-x already exists"),
        ),
        (
            ready("False", "ApplyRejected", "The API server rejected a child"),
            ("Degraded", "ApplyRejected: The API server rejected a child"),
        ),
        (
            ready("False", "DeploymentFailed", "ProgressDeadlineExceeded"),
            ("Degraded", "DeploymentFailed: ProgressDeadlineExceeded"),
        ),
        (
            ready("False", "InvalidSpec", "The Function's spec is invalid: timeoutSeconds"),
            ("Degraded", "InvalidSpec: The Function's spec is invalid: timeoutSeconds"),
        ),
        (ready("False", "SomethingNew", ""), ("Degraded", "SomethingNew")),
        ({"status": "False"}, ("Degraded", "")),
    ],
)
def test_function(ready_condition: dict[str, Any], expected: tuple[str, str]) -> None:
    # Active (scaled to zero, activating) never changes the health: a Function at zero is fine.
    assert health("Function", body("Function", ready_condition, extra=(ACTIVE,))) == expected


@pytest.mark.parametrize(
    ("ready_condition", "expected"),
    [
        (
            ready("True", "Delivering", "event dispatcher d-0 delivers the source's events"),
            ("Healthy", "event dispatcher d-0 delivers the source's events"),
        ),
        (
            ready("True", "Paused", "delivery is paused (spec.enabled: false)"),
            ("Suspended", "Paused: delivery is paused (spec.enabled: false)"),
        ),
        (
            ready("False", "Starting", "waiting for event dispatcher d-0 to start the source"),
            ("Progressing", "Starting: waiting for event dispatcher d-0 to start the source"),
        ),
        (ready("Unknown", "Starting", "taking over"), ("Progressing", "Starting: taking over")),
        (
            ready("False", "NoDispatcher", "no event dispatcher replica is running"),
            ("Degraded", "NoDispatcher: no event dispatcher replica is running"),
        ),
        (
            ready("False", "FunctionNotFound", "Function f does not exist in namespace apps"),
            ("Degraded", "FunctionNotFound: Function f does not exist in namespace apps"),
        ),
        (
            ready("False", "InvalidSchedule", "cron(0 12 * * * *): day-of-month or ..."),
            ("Degraded", "InvalidSchedule: cron(0 12 * * * *): day-of-month or ..."),
        ),
        (
            ready("False", "SourceUnavailable", "connection refused"),
            ("Degraded", "SourceUnavailable: connection refused"),
        ),
        (
            ready("False", "SourceMisconfigured", "queue q does not exist"),
            ("Degraded", "SourceMisconfigured: queue q does not exist"),
        ),
        (
            ready("False", "SecretNotFound", "Secret creds has no key password"),
            ("Degraded", "SecretNotFound: Secret creds has no key password"),
        ),
        (
            ready("False", "InvalidSpec", "The EventSource's spec is invalid"),
            ("Degraded", "InvalidSpec: The EventSource's spec is invalid"),
        ),
        (ready("False", "NotPolling", "cannot poll"), ("Degraded", "NotPolling: cannot poll")),
    ],
)
def test_eventsource(ready_condition: dict[str, Any], expected: tuple[str, str]) -> None:
    # The dispatcher's Polling condition sits beside Ready; only Ready counts.
    polling = {"type": "Polling", "status": "True", "reason": "Polling", "message": "receiving"}
    assert health("EventSource", body("EventSource", ready_condition, extra=(polling,))) == (
        expected
    )


@pytest.mark.parametrize("kind", sorted(SCRIPTS))
def test_no_generation_in_metadata_trusts_the_status(kind: str) -> None:
    obj = body(kind, ready("False", "InvalidSpec", "bad"))
    del obj["metadata"]["generation"]
    assert health(kind, obj) == ("Degraded", "InvalidSpec: bad")


def test_the_two_scripts_differ_only_in_their_header_and_reason_sets() -> None:
    def body_of(path: Path) -> list[str]:
        lines = path.read_text().splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("local PROGRESSING"))
        return lines[start + 2 :]

    assert body_of(SCRIPTS["Function"]) == body_of(SCRIPTS["EventSource"])


def test_configmap_patch_carries_the_scripts() -> None:
    patch_file = ARGOCD / "argocd-cm-patch.yaml"
    patch = yaml.safe_load(patch_file.read_text())

    assert patch["apiVersion"] == "v1"
    assert patch["kind"] == "ConfigMap"
    assert patch["metadata"] == {"name": "argocd-cm"}
    assert patch["data"] == {
        f"resource.customizations.health.lambdalet.dev_{kind}": path.read_text()
        for kind, path in SCRIPTS.items()
    }
    generated = subprocess.run(
        [str(ARGOCD / "generate.sh")], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert generated == patch_file.read_text(), (
        "stale: run gitops/argocd/generate.sh > gitops/argocd/argocd-cm-patch.yaml"
    )
