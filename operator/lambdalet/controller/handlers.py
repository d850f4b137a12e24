"""kopf wiring: indexes of the children, and event handlers that only queue Functions and
EventSources.

Only ``on.event`` handlers and indexes are used: kopf's change handlers, timers and daemons would
put finalizers and annotations on every Function and EventSource (writes the operator must not
make). A handler records the latest object and puts its key on a work queue; the workers in
``lambdalet.controller.functions.reconciler`` (Functions) and
``lambdalet.controller.eventsources.reconciler`` do the rest. kopf guarantees the indexes are filled
from the initial listing before any handler runs, so a restarted operator sees every existing child
and every existing Function. A Function created or deleted also queues the EventSources that name
it. The startup handler also starts the autoscaler (``lambdalet.autoscaler.loop``) and its endpoint,
and the watch of the event dispatchers' Leases (``lambdalet.controller.eventsources.dispatchers``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

import kopf

from lambdalet import names, namespaces
from lambdalet.api.common import GROUP, VERSION
from lambdalet.autoscaler import api as autoscaler_api
from lambdalet.autoscaler.loop import Autoscaler
from lambdalet.contracts.deployments import DeploymentState, deployment_state, named
from lambdalet.contracts.keys import Key
from lambdalet.controller.eventsources import dispatchers
from lambdalet.controller.eventsources import reconciler as eventsources
from lambdalet.controller.eventsources.reconciler import EventSourceState
from lambdalet.controller.functions import reconciler
from lambdalet.controller.functions.children import MANAGED, child_state, function_key
from lambdalet.controller.functions.coldstarts import ColdStartWriter
from lambdalet.controller.functions.reconciler import OperatorState

T = TypeVar("T")


def served(namespace: str | None, memo: Any, **_: Any) -> bool:
    """Whether the operator serves this object's namespace (LAMBDALET_NAMESPACES). kopf watches
    only the served namespaces when they are plain names, and every namespace for patterns."""
    state: OperatorState = memo.state
    return namespaces.served(namespace or "default", state.settings.namespaces)


def _children_index(
    state: Callable[[kopf.Body], T],
) -> Callable[..., Coroutine[Any, Any, dict[Key, T]]]:
    """An index of one kind of child by the Function that owns it: ``state`` of each child."""

    async def index(
        namespace: str | None, labels: Mapping[str, str], body: kopf.Body, **_: Any
    ) -> dict[Key, T]:
        key = function_key(namespace, labels)
        return {key: state(body)} if key else {}

    return index


function_deployments = kopf.index(
    "apps", "v1", "deployments", labels=MANAGED, when=served, id="function_deployments"
)(_children_index(deployment_state))
function_services = kopf.index(
    "", "v1", "services", labels=MANAGED, when=served, id="function_services"
)(_children_index(child_state))
function_config_maps = kopf.index(
    "", "v1", "configmaps", labels=MANAGED, when=served, id="function_config_maps"
)(_children_index(child_state))


@kopf.index(GROUP, VERSION, "functions", when=served)
async def function_names(namespace: str | None, name: str, **_: Any) -> dict[Key, bool]:
    """The Functions that exist, for the EventSources that name them."""
    return {(namespace or "default", name): True}


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
    # List in pages: a restart over thousands of children never holds one huge list in memory.
    settings.watching.chunk_size = 200
    # kopf keeps a worker per object until it has been idle this long; the handlers only queue
    # work, so a short wait keeps a restart's thousands of workers from piling up in memory.
    settings.queueing.idle_timeout = 0.5
    logging.getLogger("httpx").setLevel(logging.WARNING)
    state: OperatorState = memo.state
    memo.tasks = []
    # The operator runs as one instance (kopf standalone), so it always leads the autoscaler.
    cold_starts = ColdStartWriter(state.client, state.functions)
    autoscaler = _autoscaler(state, cold_start=cold_starts.report)
    memo.autoscaler = autoscaler
    memo.autoscaler_api = None
    port = state.settings.autoscaler_port
    if port:
        host = state.settings.autoscaler_host
        try:
            memo.autoscaler_api = await autoscaler_api.serve(autoscaler, host, port)
        except OSError as exc:  # a port taken is a configuration error: stop, say why
            raise kopf.PermanentError(f"autoscaler endpoint {host}:{port}: {exc}") from exc
    sources = EventSourceState(settings=state.settings, client=state.client)
    memo.sources = sources
    memo.tasks = [
        *(asyncio.create_task(reconciler.work(state)) for _ in range(reconciler.WORKERS)),
        asyncio.create_task(reconciler.resync(state)),
        asyncio.create_task(autoscaler.run()),
        asyncio.create_task(cold_starts.run()),
        *(asyncio.create_task(eventsources.work(sources)) for _ in range(eventsources.WORKERS)),
        asyncio.create_task(dispatchers.watch(sources)),
        asyncio.create_task(dispatchers.expire(sources)),
    ]


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    for task in memo.tasks:
        task.cancel()
    await asyncio.gather(*memo.tasks, return_exceptions=True)
    if memo.autoscaler_api is not None:
        await memo.autoscaler_api.cleanup()
    await memo.autoscaler.aclose()
    await memo.state.client.aclose()


@kopf.on.event(GROUP, VERSION, "functions", when=served)
async def on_function(
    type: str, body: kopf.Body, namespace: str | None, name: str, memo: Any, **kwargs: Any
) -> None:
    state: OperatorState = memo.state
    key = (namespace or "default", name)
    state.indexes.update(
        deployments=kwargs["function_deployments"],
        services=kwargs["function_services"],
        config_maps=kwargs["function_config_maps"],
    )
    sources: EventSourceState = memo.sources
    sources.functions = kwargs["function_names"]
    if type != "MODIFIED":  # created, deleted, or listed: the EventSources naming it may care
        eventsources.function_changed(sources, key)
    if type == "DELETED":
        # Children go with the Function through their ownerReferences.
        state.forget(key)
        return
    state.functions.put(dict(body))
    state.queue.add(key)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED, when=served)
async def on_deployment(
    namespace: str | None, labels: Mapping[str, str], memo: Any, **_: Any
) -> None:
    """A child Deployment changed (readiness, replicas, deletion): refresh its Function."""
    key = function_key(namespace, labels)
    state: OperatorState = memo.state
    if key is not None and key in state.functions:
        state.queue.add(key)


@kopf.on.event(GROUP, VERSION, "eventsources", when=served)
async def on_eventsource(
    type: str, body: kopf.Body, namespace: str | None, name: str, memo: Any, **kwargs: Any
) -> None:
    sources: EventSourceState = memo.sources
    sources.functions = kwargs["function_names"]
    key = (namespace or "default", name)
    if type == "DELETED":
        eventsources.forget(sources, key)
        return
    eventsources.track(sources, key, dict(body))


def _autoscaler(
    state: OperatorState, *, cold_start: Callable[[Key, float], None] | None = None
) -> Autoscaler:
    """The autoscaler over the reconcilers' state: their Functions, index and client."""

    async def write(namespace: str, deployment: str, replicas: int) -> None:
        await state.client.apply_scale(
            namespace, deployment, replicas, field_manager=names.AUTOSCALER_FIELD_MANAGER
        )

    def deployment(key: Key) -> DeploymentState | None:
        index = state.indexes.get("deployments")  # filled by the first Function event
        if index is None:
            return None
        found: DeploymentState | None = named(index.get(key, ()), names.deployment(key[1]))
        return found

    return Autoscaler(
        settings=state.settings,
        functions=state.functions,
        deployment=deployment,
        write=write,
        cold_start=cold_start,
    )
