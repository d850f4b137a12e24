"""The operator's EventSource workers: assign each source to a live event dispatcher replica and
write the operator's part of its status.

kopf's event handler (``lambdalet.controller.handlers``) records the latest EventSource and queues
it; so do a Function being created or deleted (for the sources that name it, through ``dependants``)
and a change in dispatcher membership (for the sources whose rendezvous owner changed, ``reassign``;
fed by ``lambdalet.controller.eventsources.dispatchers``). A worker takes a key off the queue,
gathers what is observed, calls the pure ``eventsource_status`` and applies the result (server-side
apply on the status subresource, field manager ``lambdalet-operator``) only when it differs from the
stored operator fields: a restarted operator facing unchanged EventSources and the same dispatchers
writes nothing. The workers start only once the dispatcher Leases have been listed, so a restart
does not first see "no dispatcher" and write it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lambdalet import names, sharding
from lambdalet.api.common import API_VERSION
from lambdalet.api.eventsource import EventSource, EventSourceSpec, EventSourceStatus
from lambdalet.contracts.events import post_warning
from lambdalet.contracts.keys import Key
from lambdalet.contracts.problems import Problem
from lambdalet.contracts.views import View, Views, eventsource_views
from lambdalet.controller.eventsources.membership import Membership
from lambdalet.controller.eventsources.status import (
    eventsource_status,
    operator_fields,
    problem,
    schedule_error,
)
from lambdalet.controller.workqueue import WorkQueue
from lambdalet.k8s import KubeClient, KubeError, NotFound
from lambdalet.settings import Settings

log = logging.getLogger("lambdalet.operator")

WORKERS = 4
BACKOFF_FIRST_SECONDS = 0.5


@dataclass
class EventSourceState:
    """Shared by the handlers, the workers and the dispatcher watch."""

    settings: Settings
    client: KubeClient
    clock: Callable[[], float] = time.monotonic
    queue: WorkQueue[Key] = field(default_factory=WorkQueue)
    sources: Views[EventSource] = field(default_factory=eventsource_views)
    # (namespace, Function name) -> the EventSources that name it.
    dependants: dict[Key, set[Key]] = field(default_factory=dict)
    # kopf's index of the Functions that exist, by (namespace, name); complete before any
    # handler runs, so a restart never takes an existing Function for a missing one.
    functions: Mapping[Key, Any] = field(default_factory=dict)
    membership: Membership = field(default_factory=Membership)
    live: frozenset[str] = frozenset()  # the live replicas the queued work was decided with
    synced: asyncio.Event = field(default_factory=asyncio.Event)  # Leases listed once


def track(state: EventSourceState, key: Key, body: Mapping[str, Any]) -> None:
    """The latest version of an EventSource: remember it, index its Function, queue it."""
    known = state.sources.get(key)
    before = _function_key(key, known.body if known is not None else None)
    after = _function_key(key, body)
    if before != after:
        _unlink(state, before, key)
        if after is not None:
            state.dependants.setdefault(after, set()).add(key)
    state.sources.put(body)
    state.queue.add(key)


def forget(state: EventSourceState, key: Key) -> None:
    """An EventSource deleted: its status went with it, nothing to write."""
    known = state.sources.get(key)
    state.sources.remove(key)
    _unlink(state, _function_key(key, known.body if known is not None else None), key)
    state.queue.forget(key)


def function_changed(state: EventSourceState, function: Key) -> None:
    """A Function was created or deleted: re-evaluate the EventSources that name it."""
    for key in state.dependants.get(function, ()):
        state.queue.add(key)


def reassign(state: EventSourceState) -> None:
    """Re-read membership; queue every EventSource whose owner the change moved."""
    live = state.membership.live(state.clock())
    if live == state.live:
        return
    before, state.live = state.live, live
    log.info("event dispatchers live: %s", ", ".join(sorted(live)) or "none")
    for namespace, name in state.sources:
        if sharding.owner(namespace, name, before) != sharding.owner(namespace, name, live):
            state.queue.add((namespace, name))


async def work(state: EventSourceState) -> None:
    """One worker: reconcile EventSources from the queue until cancelled."""
    await state.synced.wait()

    async def reconcile(key: Key, _force: bool) -> None:
        view = state.sources.get(key)
        if view is not None:
            await _reconcile_once(state, key, view)
        state.queue.reset(key)

    def idle() -> None:
        log.info("EventSources idle: %d reconciled", len(state.sources))

    # Transient (timeouts, 409, 5xx) or not (403: the RBAC lacks eventsources/status patch):
    # either way the status is worth another try, later and later.
    await state.queue.serve(
        reconcile,
        retry=KubeError,
        first=BACKOFF_FIRST_SECONDS,
        idle=idle,
        what="EventSource reconciliation",
    )


async def _reconcile_once(state: EventSourceState, key: Key, view: View[EventSource]) -> None:
    namespace, name = key
    body = view.body
    meta = body["metadata"]
    generation = int(meta.get("generation", 0))
    previous = EventSourceStatus.stored(body)
    parsed = view.parsed
    spec = parsed if isinstance(parsed, Problem) else parsed.spec
    function_exists = False
    invalid_schedule = None
    if isinstance(spec, EventSourceSpec):
        function_exists = (namespace, spec.function.name) in state.functions
        created = datetime.fromisoformat(meta["creationTimestamp"])
        invalid_schedule = schedule_error(spec, created)
    status = eventsource_status(
        namespace=namespace,
        generation=generation,
        spec=spec,
        function_exists=function_exists,
        schedule_error=invalid_schedule,
        replica=sharding.owner(namespace, name, state.live),
        dispatcher_namespace=state.settings.dispatcher_namespace,
        previous=previous,
        now=datetime.now(UTC),
    )
    if status == operator_fields(previous):
        return
    try:
        await state.client.apply_status(
            API_VERSION,
            "EventSource",
            namespace,
            name,
            status.to_wire(),
            field_manager=names.FIELD_MANAGER,
        )
    except NotFound:  # deleted meanwhile
        return
    now_wrong, was_wrong = problem(status), problem(previous)
    if now_wrong is not None and (was_wrong is None or was_wrong.reason != now_wrong.reason):
        await post_warning(state.client, body, now_wrong)


def _function_key(key: Key, body: Mapping[str, Any] | None) -> Key | None:
    if body is None:
        return None
    function = (body.get("spec") or {}).get("function") or {}
    name = function.get("name") if isinstance(function, Mapping) else None
    return (key[0], name) if isinstance(name, str) else None


def _unlink(state: EventSourceState, function: Key | None, key: Key) -> None:
    if function is None:
        return
    dependants = state.dependants.get(function)
    if dependants is not None:
        dependants.discard(key)
        if not dependants:
            del state.dependants[function]
