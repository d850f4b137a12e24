"""Which EventSources this replica runs, kept in step with the API server; queue depths out.

Two informers (``lambdalet.k8s.watch``) keep every EventSource and every Function of the served
namespaces. After each change the supervisor decides what should run here and hands it to ``runs``,
which starts, replaces and stops the runners (two runners of one EventSource never overlap here):

* an EventSource runs here when the operator assigned it to this replica
  (``status.assignedReplica``), it is enabled, and its Function exists and can be read (without
  one, its messages would be dead-lettered for nothing; the operator reports FunctionNotFound);
* every S3 EventSource, wherever it runs, is bound to this replica's S3 receiver, and a deleted
  one's notification is removed by the replica that ran it (``buckets``);
* every ``report_seconds`` the queue depths go to the autoscaler (``depths``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import KW_ONLY, InitVar, dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from lambdalet.api.common import GROUP, VERSION
from lambdalet.api.eventsource import EventSource
from lambdalet.api.function import AuthType, Function
from lambdalet.contracts.keys import Key
from lambdalet.contracts.views import View, Views, eventsource_views, function_views, key_of
from lambdalet.dispatcher.delivery.loop import DeliveryStats
from lambdalet.dispatcher.replica.buckets import Buckets
from lambdalet.dispatcher.replica.depths import report_depths
from lambdalet.dispatcher.replica.runners import Assignment, Context
from lambdalet.dispatcher.replica.runs import Runs
from lambdalet.dispatcher.s3.receiver import S3Receiver
from lambdalet.k8s.watch import informers
from lambdalet.namespaces import served, specific

log = logging.getLogger("lambdalet.dispatcher")

STOP_SECONDS = 30.0
DEPTH_TIMEOUT = 2.0
REPORT_TIMEOUT = httpx.Timeout(2.0)

Object = dict[str, Any]


@dataclass(eq=False)
class Supervisor:
    context: Context
    receiver: InitVar[S3Receiver]
    _: KW_ONLY
    namespaces: tuple[str, ...] = ()
    autoscaler_url: str | None = None
    report_seconds: float = 1.0
    synced: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _sources: Views[EventSource] = field(init=False, default_factory=eventsource_views)
    _functions: Views[Function] = field(init=False, default_factory=function_views)
    _runs: Runs = field(init=False)
    _buckets: Buckets = field(init=False)
    _synced: set[tuple[str, str | None]] = field(init=False, default_factory=set)
    # Plain namespace names: one list and watch per namespace (the chart's rbac.namespaced
    # grants no cluster-wide read); patterns: cluster-wide, filtered here.
    _scopes: tuple[str, ...] | None = field(init=False)
    _stopping: bool = field(init=False, default=False)

    def __post_init__(self, receiver: S3Receiver) -> None:
        self._runs = Runs(self.context, settled=self._reconcile)
        self._buckets = Buckets(self.context, receiver)
        self._scopes = specific(self.namespaces)

    # -- the informers ----------------------------------------------------------------------------

    async def run(self) -> None:
        await asyncio.gather(
            informers(
                self.context.client,
                f"{GROUP}/{VERSION}",
                "EventSource",
                namespaces=self._scopes,
                on_sync=self._sync_sources,
                on_change=self._source_changed,
            ),
            informers(
                self.context.client,
                f"{GROUP}/{VERSION}",
                "Function",
                namespaces=self._scopes,
                on_sync=self._sync_functions,
                on_change=self._function_changed,
            ),
            self._report(),
        )

    async def _report(self) -> None:
        if self.autoscaler_url:
            await report_depths(
                self._runs.depths,
                autoscaler_url=self.autoscaler_url,
                replica=self.context.replica,
                every=self.report_seconds,
            )

    def _sync_sources(self, namespace: str | None, items: list[Object]) -> None:
        """A complete listing of ``namespace`` (None: every namespace)."""
        served = [item for item in items if self._served(item)]
        self._sources.sync(served, namespace)
        for item in served:
            self._warn_if_invalid(self._sources[key_of(item)])
        self._mark_synced("EventSource", namespace)

    def _source_changed(self, kind: str, obj: Object) -> None:
        key = key_of(obj)
        if kind == "DELETED" or not self._served(obj):
            gone = self._sources.get(key)
            self._sources.remove(key)
            if kind == "DELETED" and gone is not None:
                self._buckets.clean_up(gone)
        else:
            before = self._sources.get(key)
            view = self._sources.put(obj)
            if before is None or before.parsed is not view.parsed:
                self._warn_if_invalid(view)
        self._reconcile()

    def _warn_if_invalid(self, view: View[EventSource]) -> None:
        if view.problem is not None:
            namespace, name = key_of(view.body)
            log.warning("ignoring EventSource %s/%s: %s", namespace, name, view.problem.message)

    def _sync_functions(self, namespace: str | None, items: list[Object]) -> None:
        """A complete listing of ``namespace`` (None: every namespace)."""
        self._functions.sync([item for item in items if self._served(item)], namespace)
        self._mark_synced("Function", namespace)

    def _function_changed(self, kind: str, obj: Object) -> None:
        if kind == "DELETED" or not self._served(obj):
            self._functions.remove(key_of(obj))
        else:
            self._functions.put(obj)
        self._reconcile()

    def auth_secret(self, function: Key) -> tuple[str, str] | None:
        """The (Secret, key) of the bearer token ``function`` asks for; None: no auth."""
        view = self._functions.get(function)
        model = view.model if view is not None else None
        return _auth_secret(model) if model is not None else None

    def _served(self, obj: Object) -> bool:
        return served(obj.get("metadata", {}).get("namespace", "default"), self.namespaces)

    def _mark_synced(self, kind: str, namespace: str | None) -> None:
        self._synced.add((kind, namespace))
        scopes: tuple[str | None, ...] = self._scopes or (None,)
        if all((k, ns) in self._synced for k in ("EventSource", "Function") for ns in scopes):
            self.synced.set()
        self._reconcile()

    # -- runners ----------------------------------------------------------------------------------

    def _reconcile(self) -> None:
        if not self.synced.is_set() or self._stopping:
            return
        wanted: dict[Key, Assignment] = {}
        s3: dict[Key, Assignment] = {}
        for key, view in self._sources.items():
            assignment = self._assignment(view)
            if assignment is None:
                continue
            if assignment.spec.s3 is not None:
                s3[key] = assignment
            status = view.body.get("status") or {}
            if status.get("assignedReplica") == self.context.replica and assignment.spec.enabled:
                wanted[key] = assignment
        self._runs.converge(wanted)
        self._buckets.bind(s3)

    def _assignment(self, view: View[EventSource]) -> Assignment | None:
        """What the EventSource's runner needs; None while the EventSource or its Function
        cannot be read (an invalid one is logged when it arrives) or the Function is unknown."""
        meta = view.body.get("metadata", {})
        source = view.model
        if source is None:
            return None
        namespace = source.metadata.namespace or "default"
        function = self._functions.get((namespace, source.spec.function.name))
        if function is None or function.model is None:
            return None
        timeout = float(function.model.spec.timeout_seconds)
        return Assignment(
            namespace=namespace,
            name=source.metadata.name or "",
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation") or 0),
            created=_created(meta),
            spec=source.spec,
            function_timeout=timeout,
            stored=dict(view.body),
        )

    async def stop(self) -> None:
        """Stop every runner gracefully (``runs.STOP_SECONDS`` at most)."""
        self._stopping = True
        await self._runs.stop()

    def running(self) -> set[Key]:
        return self._runs.running()

    def snapshot(self) -> list[tuple[Key, str, DeliveryStats | None]]:
        """(EventSource, kind, delivery counts) of each source running or still stopping."""
        return self._runs.snapshot()

    async def depths(self) -> dict[Key, int]:
        """Messages waiting per Function, over this replica's queue sources that can tell."""
        return await self._runs.depths()


def _auth_secret(function: Function) -> tuple[str, str] | None:
    auth = function.spec.http.auth
    if auth.type is not AuthType.BEARER or auth.secret_ref is None:
        return None
    return auth.secret_ref.name, auth.secret_ref.key


def _created(meta: dict[str, Any]) -> datetime:
    text = meta.get("creationTimestamp")
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
    return datetime.now(UTC)
