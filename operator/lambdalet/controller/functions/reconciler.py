"""The operator's workers: take a Function off the work queue, gather what is observed, call the
pure planner, carry the plan out, write the status.

Write-free at rest: children are applied only when their stamped hash differs from the desired
one, and status is patched only when it differs from what is stored, so a restarted operator
facing unchanged Functions sends the API server nothing. Transient API errors put the Function
back on the queue with exponential backoff; problems that only something outside the operator's
watch can fix (a missing ConfigMap, a name taken by someone else's object) are re-checked with
backoff too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from lambdalet import names
from lambdalet.api.common import GROUP, VERSION
from lambdalet.api.conditions import ConditionType, FunctionReadyReason
from lambdalet.api.function import Function, FunctionStatus
from lambdalet.contracts.deployments import DeploymentState, named, owner_uid
from lambdalet.contracts.events import post_warning
from lambdalet.contracts.keys import Key
from lambdalet.contracts.problems import Problem
from lambdalet.contracts.views import View, Views, function_views
from lambdalet.controller.functions.plan import Observed, Plan, name_conflict, plan
from lambdalet.controller.functions.status import function_status
from lambdalet.controller.workqueue import WorkQueue
from lambdalet.k8s import KubeClient, NotFound, PermanentKubeError, TransientKubeError
from lambdalet.settings import Settings

log = logging.getLogger("lambdalet.operator")

WORKERS = 16
BACKOFF_FIRST_SECONDS = 0.5
# Problems that can go away without any event the operator watches.
EXTERNAL_PROBLEMS = frozenset(
    {
        FunctionReadyReason.CODE_NOT_FOUND,
        FunctionReadyReason.NAME_CONFLICT,
        FunctionReadyReason.APPLY_REJECTED,
    }
)
EXTERNAL_FIRST_SECONDS = 5.0
# How long the operator trusts its own record of an apply over a kopf index that has not yet
# seen the resulting watch event.
APPLIED_MEMORY_SECONDS = 60.0


@dataclass
class OperatorState:
    """Shared by every handler and worker: configuration, client, queue, latest Functions."""

    settings: Settings
    client: KubeClient
    queue: WorkQueue[Key] = field(default_factory=WorkQueue)
    functions: Views[Function] = field(default_factory=function_views)
    # kopf's live indexes of the children (handed to handlers only; kept here for the workers).
    indexes: dict[str, Any] = field(default_factory=dict)
    # (kind, namespace, name) -> (hash, monotonic time) of the operator's own recent applies.
    applied: dict[tuple[str, str, str], tuple[str, float]] = field(default_factory=dict)

    def forget(self, key: Key) -> None:
        self.functions.remove(key)
        self.queue.forget(key)


async def work(state: OperatorState) -> None:
    """One worker: reconcile Functions from the queue until cancelled."""

    async def reconcile(key: Key, force: bool) -> None:
        view = state.functions.get(key)
        if view is not None:
            await _reconcile_once(state, key, view, force=force)

    def settled() -> None:
        # One line per burst of work: tells operators (and tests) the operator settled.
        log.info("settled: %d Functions reconciled", len(state.functions))

    await state.queue.serve(
        reconcile, retry=TransientKubeError, first=BACKOFF_FIRST_SECONDS, idle=settled
    )


async def resync(state: OperatorState) -> None:
    """Re-apply every Function's children now and then: undoes edits made to them by hand."""
    while True:
        await asyncio.sleep(state.settings.resync_seconds)
        for key in list(state.functions):
            state.queue.add(key, force=True)


async def _reconcile_once(
    state: OperatorState, key: Key, view: View[Function], *, force: bool
) -> None:
    namespace, name = key
    body = view.body
    generation = int(body["metadata"].get("generation", 0))
    previous = FunctionStatus.stored(body)
    observed = _observed(state, namespace, name)
    parsed = view.parsed
    if isinstance(parsed, Problem):
        problem: Problem | None = parsed
        decided = Plan()
        url = None
    else:
        url = state.settings.function_url(namespace, name)
        if parsed.spec.code.config_map is not None:
            exists = await _exists(state, namespace, parsed.spec.code.config_map.name)
            observed = replace(observed, user_config_map_exists=exists)
        decided = plan(parsed, state.settings, observed, force=force)
        problem = decided.problem
        if problem is None or problem.reason != FunctionReadyReason.NAME_CONFLICT:
            problem = await _carry_out(state, parsed, decided) or problem

    if problem is not None and problem.reason in EXTERNAL_PROBLEMS:
        state.queue.retry_later(key, first=EXTERNAL_FIRST_SECONDS)
    else:
        state.queue.reset(key)

    deployment = observed.deployment
    applied = next((a for a in decided.applies if a.manifest["kind"] == "Deployment"), None)
    if applied is not None and problem is None:
        # Just created or changed: until its next watch event, take the Deployment as one
        # generation ahead of what its controller has seen. This is the status that event will
        # confirm, so the event costs no second status write.
        if deployment is None:
            deployment = DeploymentState(
                name=applied.manifest["metadata"]["name"],
                owner_uid=None,
                applied_hash=None,
                generation=1,
                replicas=applied.claim_replicas or 0,
            )
        else:
            deployment = replace(deployment, generation=deployment.generation + 1)
    status = function_status(
        generation=generation,
        url=url,
        problem=problem,
        deployment=deployment,
        previous=previous,
        now=datetime.now(UTC),
    )
    await _write_status(state, namespace, name, previous, status)
    if problem is not None and _ready_reason(previous) != problem.reason:
        await post_warning(state.client, body, problem)


def _ready_reason(status: FunctionStatus | None) -> str | None:
    conditions = status.conditions if status else ()
    ready = next((c for c in conditions if c.type == ConditionType.READY), None)
    return ready.reason if ready is not None and ready.status == "False" else None


async def _carry_out(state: OperatorState, function: Function, decided: Plan) -> Problem | None:
    namespace = function.metadata.namespace or "default"
    try:
        # The indexes see only managed objects, and a forced apply would take over an object of
        # the same name that someone else made: look before creating anything.
        for step in decided.applies:
            if step.create and await _foreign(state, step.manifest, function.metadata.uid):
                return name_conflict(step.manifest["kind"], step.manifest["metadata"]["name"])
        for step in decided.applies:
            manifest = step.manifest
            child = manifest["metadata"]["name"]
            await state.client.apply(manifest, field_manager=names.FIELD_MANAGER)
            if step.claim_replicas is not None:
                # Hand replicas to the autoscaler's field manager at once, so the operator's
                # later applies (which leave replicas out) do not reset it to the default.
                await state.client.apply_scale(
                    namespace,
                    child,
                    step.claim_replicas,
                    field_manager=names.AUTOSCALER_FIELD_MANAGER,
                )
            stamp = manifest["metadata"]["annotations"][names.ANNOTATION_APPLIED_HASH]
            state.applied[(manifest["kind"], namespace, child)] = (stamp, time.monotonic())
            log.info("applied %s %s/%s", manifest["kind"], namespace, child)
        for delete in decided.deletes:
            with contextlib.suppress(NotFound):
                await state.client.delete(delete.api_version, delete.kind, namespace, delete.name)
            state.applied.pop((delete.kind, namespace, delete.name), None)
    except PermanentKubeError as exc:
        return Problem(
            FunctionReadyReason.APPLY_REJECTED,
            f"The API server rejected a child of this Function: {exc.message}",
        )
    return None


def _observed(state: OperatorState, namespace: str, name: str) -> Observed:
    key = (namespace, name)
    indexes = state.indexes
    return Observed(
        deployment=_recent(
            state,
            "Deployment",
            namespace,
            named(indexes["deployments"].get(key, ()), names.deployment(name)),
        ),
        service=_recent(
            state,
            "Service",
            namespace,
            named(indexes["services"].get(key, ()), names.service(name)),
        ),
        code_config_map=_recent(
            state,
            "ConfigMap",
            namespace,
            named(indexes["config_maps"].get(key, ()), names.code_config_map(name)),
        ),
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


async def _foreign(state: OperatorState, manifest: Mapping[str, Any], uid: str | None) -> bool:
    """Whether an object with the manifest's name exists and is not this Function's."""
    meta = manifest["metadata"]
    try:
        existing = await state.client.get(
            manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"], cached=True
        )
    except NotFound:
        return False
    return owner_uid(existing) != uid


async def _exists(state: OperatorState, namespace: str, config_map: str) -> bool:
    try:
        await state.client.get("v1", "ConfigMap", namespace, config_map)
    except NotFound:
        return False
    return True


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
    # The cold-start writer's field (lambdalet.controller.functions.coldstarts): a body read before
    # its last write must not put the older figure back.
    wire.pop("lastColdStartSeconds", None)
    with contextlib.suppress(NotFound):  # deleted meanwhile
        await state.client.patch_status(f"{GROUP}/{VERSION}", "Function", namespace, name, wire)
