"""kopf handlers: gather what the operator observes, call the pure planner, carry the plan out.

Level-triggered and write-free at rest: every Function event (including the initial listing
after a restart) and every event of a child Deployment reconciles the Function from kopf's
indexes of its children. Children are applied only when their stamped hash differs from the
desired one, and status is patched only when it differs from what is stored, so an operator
restarted over unchanged Functions sends the API server nothing. Only ``on.event`` handlers and
indexes are used: kopf's change handlers, timers and daemons would add finalizers and
annotations to every Function (writes the operator must not make).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import kopf
from pydantic import ValidationError

from lambdalet import names
from lambdalet.api.common import GROUP, VERSION
from lambdalet.api.function import Function, FunctionStatus
from lambdalet.controller.reconcile import (
    ChildState,
    Observed,
    Plan,
    name_conflict,
    parse,
    plan,
)
from lambdalet.controller.status import DeploymentState, Problem, function_status
from lambdalet.k8s import KubeClient, NotFound, PermanentKubeError, TransientKubeError
from lambdalet.settings import Settings

log = logging.getLogger("lambdalet.operator")

MANAGED = {names.LABEL_MANAGED_BY: names.MANAGED_BY}
Key = tuple[str, str]  # (namespace, function name)
RETRY_DELAYS = (0.5, 1, 2, 4, 8, 16)
MAX_IN_FLIGHT = 16
REQUEUE_FIRST_SECONDS = 5.0
REQUEUE_MAX_SECONDS = 300.0
# Problems that can go away without any event the operator watches.
EXTERNAL_PROBLEMS = frozenset({"CodeNotFound", "NameConflict"})
# How long the operator trusts its own record of an apply over a kopf index that has not yet
# seen the resulting watch event.
APPLIED_MEMORY_SECONDS = 60.0


@dataclass
class OperatorState:
    """Shared by every handler (kopf's memo): configuration, the client, per-Function locks."""

    settings: Settings
    client: KubeClient
    locks: dict[Key, asyncio.Lock] = field(default_factory=dict)
    # Reconciliations in flight at once: a thousand Functions arriving together queue here
    # instead of racing each other into API timeouts.
    slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_IN_FLIGHT))
    # (kind, namespace, name) -> (hash, monotonic time) of the operator's own recent applies.
    applied: dict[tuple[str, str, str], tuple[str, float]] = field(default_factory=dict)
    functions: dict[Key, Mapping[str, Any]] = field(default_factory=dict)
    indexes: dict[str, Any] = field(default_factory=dict)
    # Functions waiting on something outside the operator's watch (a ConfigMap the user names):
    # the pending re-check and the current delay, doubling up to REQUEUE_MAX_SECONDS.
    requeues: dict[Key, asyncio.Task[None]] = field(default_factory=dict)
    requeue_delays: dict[Key, float] = field(default_factory=dict)

    def lock(self, key: Key) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())


# --------------------------------------------------------------------------- indexes


def _owner_uid(body: Mapping[str, Any]) -> str | None:
    for ref in body.get("metadata", {}).get("ownerReferences", []):
        if ref.get("kind") == "Function" and ref.get("controller"):
            uid = ref.get("uid")
            return str(uid) if uid else None
    return None


def _child_state(body: Mapping[str, Any]) -> ChildState:
    meta = body["metadata"]
    return ChildState(
        name=meta["name"],
        owner_uid=_owner_uid(body),
        applied_hash=meta.get("annotations", {}).get(names.ANNOTATION_APPLIED_HASH),
    )


def deployment_state(body: Mapping[str, Any]) -> DeploymentState:
    meta, spec, status = body["metadata"], body.get("spec", {}), body.get("status", {})
    failure = None
    for condition in status.get("conditions", []):
        kind, value = condition.get("type"), condition.get("status")
        if (kind == "ReplicaFailure" and value == "True") or (
            kind == "Progressing" and value == "False"
        ):
            failure = condition.get("message") or condition.get("reason")
    return DeploymentState(
        name=meta["name"],
        owner_uid=_owner_uid(body),
        applied_hash=meta.get("annotations", {}).get(names.ANNOTATION_APPLIED_HASH),
        generation=meta.get("generation", 0),
        observed_generation=status.get("observedGeneration", 0),
        replicas=spec.get("replicas", 0),
        ready_replicas=status.get("readyReplicas", 0),
        updated_replicas=status.get("updatedReplicas", 0),
        failure=failure,
    )


def _function_key(namespace: str | None, labels: Mapping[str, str]) -> Key | None:
    function = labels.get(names.LABEL_FUNCTION)
    return (namespace, function) if namespace and function else None


@kopf.index("apps", "v1", "deployments", labels=MANAGED)
async def function_deployments(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[Key, DeploymentState]:
    key = _function_key(namespace, labels)
    return {key: deployment_state(body)} if key else {}


@kopf.index("", "v1", "services", labels=MANAGED)
async def function_services(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[Key, ChildState]:
    key = _function_key(namespace, labels)
    return {key: _child_state(body)} if key else {}


@kopf.index("", "v1", "configmaps", labels=MANAGED)
async def function_config_maps(
    namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
) -> dict[Key, ChildState]:
    key = _function_key(namespace, labels)
    return {key: _child_state(body)} if key else {}


def _one(index: Any, key: Key, name: str) -> Any:
    """The indexed child of ``key`` named ``name`` (another with the same key is a stray)."""
    for value in index.get(key, ()):
        if value.name == name:
            return value
    return None


# --------------------------------------------------------------------------- handlers


@kopf.on.login()
def login(memo: kopf.Memo, **_: Any) -> kopf.ConnectionInfo:
    """kopf watches with the same credentials the operator's own client uses."""
    connection = memo.state.client.connection
    token = connection.token
    if connection.token_path:
        token = Path(connection.token_path).read_text().strip()
    return kopf.ConnectionInfo(
        server=connection.server,
        ca_path=connection.ca_path,
        ca_data=connection.ca_data,
        insecure=connection.insecure,
        token=token,
        certificate_path=connection.cert_path,
        private_key_path=connection.key_path,
        default_namespace=connection.default_namespace,
    )


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf posts its log messages as Kubernetes Events; keep that to warnings and errors, so a
    # healthy operator writes nothing.
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    logging.getLogger("httpx").setLevel(logging.WARNING)
    state: OperatorState = memo.state
    memo.resync = asyncio.create_task(_resync_forever(state))


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    memo.resync.cancel()
    await memo.state.client.aclose()


@kopf.on.event(GROUP, VERSION, "functions")
async def on_function(
    type: str,
    body: kopf.Body,
    namespace: str | None,
    name: str,
    memo: Any,
    **kwargs: Any,
) -> None:
    state: OperatorState = memo.state
    key = (namespace or "default", name)
    # kopf passes its (live) indexes to handlers only: keep them for the resync loop.
    state.indexes.update(
        deployments=kwargs["function_deployments"],
        services=kwargs["function_services"],
        config_maps=kwargs["function_config_maps"],
    )
    if type == "DELETED":
        # Children go with the Function through their ownerReferences.
        state.functions.pop(key, None)
        state.locks.pop(key, None)
        state.requeue_delays.pop(key, None)
        pending = state.requeues.pop(key, None)
        if pending is not None:
            pending.cancel()
        return
    state.functions[key] = dict(body)
    await reconcile(state, key)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
async def on_deployment(
    namespace: str | None, labels: Mapping[str, str], memo: kopf.Memo, **_: Any
) -> None:
    """A child Deployment changed (readiness, replicas, deletion): refresh its Function."""
    key = _function_key(namespace, labels)
    state: OperatorState = memo.state
    if key is not None and key in state.functions and state.indexes:
        await reconcile(state, key)


# --------------------------------------------------------------------------- reconciliation


async def reconcile(state: OperatorState, key: Key, *, force: bool = False) -> None:
    """Reconcile one Function, retrying transient API errors with backoff."""
    for attempt, delay in enumerate((*RETRY_DELAYS, None)):
        async with state.lock(key), state.slots:
            body = state.functions.get(key)
            if body is None:
                return
            try:
                await _reconcile_once(state, body, force=force)
                return
            except TransientKubeError as exc:
                if delay is None:
                    log.error("giving up on %s/%s for now: %s", *key, exc)
                    return
                log.warning("retrying %s/%s (attempt %d): %s", *key, attempt + 1, exc)
        await asyncio.sleep(delay)


async def _reconcile_once(state: OperatorState, body: Mapping[str, Any], *, force: bool) -> None:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    generation = int(meta.get("generation", 0))
    previous = _stored_status(body)
    parsed = parse(body)
    if isinstance(parsed, Problem):
        status = function_status(
            generation=generation,
            url=None,
            problem=parsed,
            deployment=_observed(state, namespace, name).deployment,
            previous=previous,
            now=datetime.now(UTC),
        )
        await _write_status(state, namespace, name, previous, status)
        return

    observed = _observed(state, namespace, name)
    if parsed.spec.code.config_map is not None:
        observed = Observed(
            deployment=observed.deployment,
            service=observed.service,
            code_config_map=observed.code_config_map,
            user_config_map_exists=await _exists(
                state, "ConfigMap", namespace, parsed.spec.code.config_map.name
            ),
        )
    decided = plan(parsed, state.settings, observed, force=force)
    problem = decided.problem
    if problem is None or problem.reason != "NameConflict":
        problem = await _carry_out(state, parsed, decided) or problem
    _requeue_if_waiting(state, (namespace, name), problem)
    deployment = observed.deployment
    if deployment is not None and any(a.manifest["kind"] == "Deployment" for a in decided.applies):
        # Just changed: the observed Deployment is a generation behind until its next event.
        deployment = replace(deployment, generation=deployment.generation + 1)
    status = function_status(
        generation=generation,
        url=state.settings.function_url(namespace, name),
        problem=problem,
        deployment=deployment,
        previous=previous,
        now=datetime.now(UTC),
    )
    await _write_status(state, namespace, name, previous, status)


async def _carry_out(state: OperatorState, function: Function, decided: Plan) -> Problem | None:
    namespace = function.metadata.namespace or "default"
    try:
        # The indexes see only managed objects, and a forced apply would take over an object of
        # the same name that someone else made: look before creating anything.
        for step in decided.applies:
            if step.create and await _foreign_owner(state, step.manifest, function.metadata.uid):
                return name_conflict(step.manifest["kind"], step.manifest["metadata"]["name"])
        for step in decided.applies:
            manifest = step.manifest
            await state.client.apply(manifest, field_manager=names.FIELD_MANAGER)
            if step.claim_replicas is not None:
                # Hand replicas to the autoscaler's field manager at once, so the operator's
                # later applies (which leave replicas out) do not reset it to the default.
                await state.client.apply_scale(
                    namespace,
                    manifest["metadata"]["name"],
                    step.claim_replicas,
                    field_manager=names.AUTOSCALER_FIELD_MANAGER,
                )
            stamp = manifest["metadata"]["annotations"][names.ANNOTATION_APPLIED_HASH]
            child = (manifest["kind"], namespace, manifest["metadata"]["name"])
            state.applied[child] = (stamp, time.monotonic())
            log.info("applied %s %s/%s", manifest["kind"], namespace, child[2])
        for delete in decided.deletes:
            with contextlib.suppress(NotFound):
                await state.client.delete(delete.api_version, delete.kind, namespace, delete.name)
            state.applied.pop((delete.kind, namespace, delete.name), None)
    except PermanentKubeError as exc:
        return Problem(
            "ApplyRejected", f"The API server rejected a child of this Function: {exc.message}"
        )
    return None


def _observed(state: OperatorState, namespace: str, name: str) -> Observed:
    key = (namespace, name)
    indexes = state.indexes
    deployment = _one(indexes["deployments"], key, names.deployment(name))
    service = _one(indexes["services"], key, names.service(name))
    config_map = _one(indexes["config_maps"], key, names.code_config_map(name))
    return Observed(
        deployment=_recent(state, "Deployment", namespace, deployment),
        service=_recent(state, "Service", namespace, service),
        code_config_map=_recent(state, "ConfigMap", namespace, config_map),
    )


def _recent(state: OperatorState, kind: str, namespace: str, child: Any) -> Any:
    """The indexed child, or the operator's own record of an apply the index has not seen."""
    if child is None:
        return None
    record = state.applied.get((kind, namespace, child.name))
    if record is None:
        return child
    stamp, at = record
    if child.applied_hash == stamp or time.monotonic() - at > APPLIED_MEMORY_SECONDS:
        state.applied.pop((kind, namespace, child.name), None)
        return child
    return replace(child, applied_hash=stamp)


async def _foreign_owner(
    state: OperatorState, manifest: Mapping[str, Any], uid: str | None
) -> bool:
    """Whether an object with the manifest's name exists and is not this Function's."""
    meta = manifest["metadata"]
    try:
        existing = await state.client.get(
            manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"], cached=True
        )
    except NotFound:
        return False
    return _owner_uid(existing) != uid


async def _exists(state: OperatorState, kind: str, namespace: str, name: str) -> bool:
    try:
        await state.client.get("v1", kind, namespace, name)
    except NotFound:
        return False
    return True


def _stored_status(body: Mapping[str, Any]) -> FunctionStatus | None:
    raw = body.get("status")
    if not raw:
        return None
    try:
        return FunctionStatus.model_validate(raw)
    except ValidationError:
        return None


async def _write_status(
    state: OperatorState,
    namespace: str,
    name: str,
    previous: FunctionStatus | None,
    status: FunctionStatus,
) -> None:
    if previous == status:
        return
    wire = status.to_wire()
    # A merge patch keeps keys it does not mention: clear the ones the new status dropped.
    for key in previous.to_wire() if previous else {}:
        wire.setdefault(key, None)
    with contextlib.suppress(NotFound):  # deleted meanwhile
        await state.client.patch_status(f"{GROUP}/{VERSION}", "Function", namespace, name, wire)


def _requeue_if_waiting(state: OperatorState, key: Key, problem: Problem | None) -> None:
    """Check again later when the Function waits on an object the operator does not watch."""
    if problem is None or problem.reason not in EXTERNAL_PROBLEMS:
        state.requeue_delays.pop(key, None)
        return
    pending = state.requeues.get(key)
    if pending is not None and not pending.done():
        return
    delay = state.requeue_delays.get(key, REQUEUE_FIRST_SECONDS / 2) * 2
    state.requeue_delays[key] = min(delay, REQUEUE_MAX_SECONDS)

    async def later() -> None:
        await asyncio.sleep(delay)
        state.requeues.pop(key, None)
        await reconcile(state, key)

    state.requeues[key] = asyncio.create_task(later())


async def _resync_forever(state: OperatorState) -> None:
    """Re-apply every Function's children now and then: undoes edits made by hand and retries
    whatever a run of transient errors left undone."""
    while True:
        await asyncio.sleep(state.settings.resync_seconds)
        for key in list(state.functions):
            try:
                await reconcile(state, key, force=True)
            except Exception:  # one Function's failure must not end the loop
                log.exception("resync of %s/%s failed", *key)
