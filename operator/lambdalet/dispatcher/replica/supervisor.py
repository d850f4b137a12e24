"""Which EventSources this replica runs, kept in step with the API server; queue depths out.

Two informers (``lambdalet.k8s.watch``) keep every EventSource and every Function of the served
namespaces. After each change the supervisor compares what should run here with what runs:

* an EventSource runs here when the operator assigned it to this replica
  (``status.assignedReplica``), it is enabled, and its Function exists (without one, its
  messages would be dead-lettered for nothing; the operator reports FunctionNotFound);
* a runner whose ``Assignment.fingerprint`` changed (spec generation, uid, the Function's
  timeout) is stopped and a new one started once the old one has finished: two runners of one
  EventSource never overlap in this replica;
* stopping is graceful: ``stop`` lets a queue runner settle the batch in hand and a schedule
  finish the invocation in progress, for up to ``STOP_SECONDS``; then the task is cancelled (the
  broker redelivers whatever was in flight).

A deleted S3 EventSource's rule and webhook target are taken off the server by the replica that
ran it (``notifications.remove``), best effort.

Every replica serves bucket notifications for every S3 EventSource (the S3 server posts to the
dispatcher Service, whichever replica answers), so the S3 receiver's bindings follow all of them;
the bucket's notification setup is the assigned replica's runner.

Every ``report_seconds`` the depths of the running queue sources are summed per Function and
sent to the autoscaler (``POST /v1/stats``, the activators' report format, as reporter
``dispatcher/<replica>``), so a Function scales on queue depth alone, from zero too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import ValidationError

from lambdalet.api.common import GROUP, VERSION
from lambdalet.api.eventsource import EventSource
from lambdalet.contracts.keys import Key
from lambdalet.dispatcher.delivery.loop import DeliveryStats
from lambdalet.dispatcher.replica.runners import (
    Assignment,
    Context,
    Runner,
    SecretMissing,
    aws_credentials,
    runner_for,
    webhook_token,
)
from lambdalet.dispatcher.s3 import notifications
from lambdalet.dispatcher.s3.events import DEFAULT_REGION, S3Filter
from lambdalet.dispatcher.s3.receiver import S3Binding, S3Receiver
from lambdalet.dispatcher.sources.source import SourceError
from lambdalet.k8s import KubeError
from lambdalet.k8s.watch import informers
from lambdalet.namespaces import served, specific

log = logging.getLogger("lambdalet.dispatcher")

STOP_SECONDS = 30.0
DEPTH_TIMEOUT = 2.0
REPORT_TIMEOUT = httpx.Timeout(2.0)
DEFAULT_TIMEOUT = 3.0  # a Function's timeoutSeconds when it sets none

Object = dict[str, Any]


@dataclass
class _Running:
    fingerprint: tuple[str, int, float]
    function: Key
    runner: Runner
    task: asyncio.Task[None]


class Supervisor:
    def __init__(
        self,
        context: Context,
        receiver: S3Receiver,
        *,
        namespaces: tuple[str, ...] = (),
        autoscaler_url: str | None = None,
        report_seconds: float = 1.0,
    ) -> None:
        self._context = context
        self._receiver = receiver
        self._namespaces = namespaces
        self._autoscaler_url = autoscaler_url
        self._report_seconds = report_seconds
        self._sources: dict[Key, Object] = {}
        self._models: dict[Key, tuple[tuple[str, int], EventSource | None]] = {}
        self._timeouts: dict[Key, float] = {}
        self._auth: dict[Key, tuple[str, str]] = {}  # bearer token's (Secret, key)
        self._running: dict[Key, _Running] = {}
        self._running_stops: dict[Key, asyncio.Task[None]] = {}  # runners being stopped
        self._stopping_runs: dict[Key, _Running] = {}
        self._cleanups: set[asyncio.Task[None]] = set()
        # Runners that ended by themselves (a schedule past its last tick, an error): not started
        # again until their EventSource or Function changes.
        self._ended: dict[Key, tuple[str, int, float]] = {}
        self._bound: set[Key] = set()
        self._synced: set[tuple[str, str | None]] = set()
        # Plain namespace names: one list and watch per namespace (the chart's rbac.namespaced
        # grants no cluster-wide read); patterns: cluster-wide, filtered here.
        self._scopes = specific(namespaces)
        self.synced = asyncio.Event()
        self._stopping = False

    # -- the informers ----------------------------------------------------------------------------

    async def run(self) -> None:
        await asyncio.gather(
            informers(
                self._context.client,
                f"{GROUP}/{VERSION}",
                "EventSource",
                namespaces=self._scopes,
                on_sync=self._sync_sources,
                on_change=self._source_changed,
            ),
            informers(
                self._context.client,
                f"{GROUP}/{VERSION}",
                "Function",
                namespaces=self._scopes,
                on_sync=self._sync_functions,
                on_change=self._function_changed,
            ),
            self._report_depths(),
        )

    def _sync_sources(self, namespace: str | None, items: list[Object]) -> None:
        """A complete listing of ``namespace`` (None: every namespace)."""
        self._sources = {k: v for k, v in self._sources.items() if namespace not in (None, k[0])}
        self._sources.update((_key(item), item) for item in items if self._served(item))
        self._mark_synced("EventSource", namespace)

    def _source_changed(self, kind: str, obj: Object) -> None:
        key = _key(obj)
        if kind == "DELETED" or not self._served(obj):
            gone = self._sources.pop(key, None)
            if kind == "DELETED" and gone is not None:
                self._clean_up(gone)
        else:
            self._sources[key] = obj
        self._reconcile()

    def _clean_up(self, obj: Object) -> None:
        """A deleted S3 EventSource this replica ran: take its notification rule and webhook
        target off the server (best effort: without its credentials, e.g. when the whole
        namespace went, the server keeps them; an unknown target's events then get 404)."""
        if (obj.get("status") or {}).get("assignedReplica") != self._context.replica:
            return
        try:
            source = EventSource.model_validate(obj)
        except ValidationError:
            return
        if source.spec.s3 is None:
            return
        task = asyncio.create_task(self._remove_s3(source))
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _remove_s3(self, source: EventSource) -> None:
        spec = source.spec.s3
        assert spec is not None
        namespace, name = source.metadata.namespace or "default", source.metadata.name or ""
        try:
            credentials = None
            if spec.credentials_secret is not None:
                credentials = await aws_credentials(
                    self._context.client, namespace, spec.credentials_secret.name
                )
            await notifications.remove(
                spec, namespace=namespace, name=name, credentials=credentials
            )
            log.info("removed the bucket notification of EventSource %s/%s", namespace, name)
        except (SecretMissing, SourceError, KubeError) as exc:
            log.warning(
                "EventSource %s/%s is gone, its bucket notification stays: %s",
                namespace,
                name,
                exc,
            )

    def _sync_functions(self, namespace: str | None, items: list[Object]) -> None:
        """A complete listing of ``namespace`` (None: every namespace)."""

        def elsewhere(key: Key) -> bool:
            return namespace not in (None, key[0])

        served = [item for item in items if self._served(item)]
        self._timeouts = {k: v for k, v in self._timeouts.items() if elsewhere(k)}
        self._timeouts.update((_key(item), _timeout(item)) for item in served)
        self._auth = {k: v for k, v in self._auth.items() if elsewhere(k)}
        self._auth.update((_key(item), ref) for item in served if (ref := _auth_secret(item)))
        self._mark_synced("Function", namespace)

    def _function_changed(self, kind: str, obj: Object) -> None:
        key = _key(obj)
        self._auth.pop(key, None)
        if kind == "DELETED" or not self._served(obj):
            self._timeouts.pop(key, None)
        else:
            self._timeouts[key] = _timeout(obj)
            ref = _auth_secret(obj)
            if ref is not None:
                self._auth[key] = ref
        self._reconcile()

    def auth_secret(self, function: Key) -> tuple[str, str] | None:
        """The (Secret, key) of the bearer token ``function`` asks for; None: no auth."""
        return self._auth.get(function)

    def _served(self, obj: Object) -> bool:
        return served(obj.get("metadata", {}).get("namespace", "default"), self._namespaces)

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
        for key, obj in self._sources.items():
            assignment = self._assignment(obj)
            if assignment is None:
                continue
            if assignment.spec.s3 is not None:
                s3[key] = assignment
            status = obj.get("status") or {}
            if status.get("assignedReplica") == self._context.replica and assignment.spec.enabled:
                wanted[key] = assignment
        for key, running in list(self._running.items()):
            want = wanted.get(key)
            if want is None or want.fingerprint != running.fingerprint:
                self._stop(key)
        for key in self._ended.keys() - wanted.keys():
            del self._ended[key]
        for key, assignment in wanted.items():
            if key in self._running or key in self._running_stops:
                continue
            if self._ended.get(key) == assignment.fingerprint:
                continue
            self._ended.pop(key, None)
            self._start(key, assignment)
        self._bind(s3)

    def _parsed(self, obj: Object) -> EventSource | None:
        """The EventSource model of ``obj``, parsed once per generation: every status write
        (the dispatcher's own too) is an event, and each event compares all sources."""
        meta = obj.get("metadata", {})
        version = (str(meta.get("uid", "")), int(meta.get("generation") or 0))
        key = _key(obj)
        cached = self._models.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        try:
            source: EventSource | None = EventSource.model_validate(obj)
        except ValidationError as exc:
            log.warning(
                "ignoring EventSource %s/%s: %s",
                meta.get("namespace"),
                meta.get("name"),
                exc.errors()[0].get("msg"),
            )
            source = None
        if len(self._models) > 2 * len(self._sources) + 100:
            self._models = {k: v for k, v in self._models.items() if k in self._sources}
        self._models[key] = (version, source)
        return source

    def _assignment(self, obj: Object) -> Assignment | None:
        meta = obj.get("metadata", {})
        source = self._parsed(obj)
        if source is None:
            return None
        namespace = source.metadata.namespace or "default"
        timeout = self._timeouts.get((namespace, source.spec.function.name))
        if timeout is None:
            return None
        return Assignment(
            namespace=namespace,
            name=source.metadata.name or "",
            uid=str(meta.get("uid", "")),
            generation=int(meta.get("generation") or 0),
            created=_created(meta),
            spec=source.spec,
            function_timeout=timeout,
            stored=obj,
        )

    def _start(self, key: Key, assignment: Assignment) -> None:
        runner = runner_for(self._context, assignment)
        task = asyncio.create_task(self._run(key, runner), name=f"eventsource {key[0]}/{key[1]}")
        self._running[key] = _Running(assignment.fingerprint, assignment.function, runner, task)
        log.info("running EventSource %s/%s", *key)

    async def _run(self, key: Key, runner: Runner) -> None:
        try:
            await runner.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("EventSource %s/%s stopped with an error", *key)
        finally:
            running = self._running.get(key)
            if running is not None and running.runner is runner:
                del self._running[key]
                self._ended[key] = running.fingerprint

    def _stop(self, key: Key) -> None:
        running = self._running.pop(key)
        running.runner.stop()
        log.info("stopping EventSource %s/%s", *key)
        waiter = asyncio.create_task(_finish(running.task))
        # A new runner for the key waits until the old one has finished.
        self._running_stops[key] = waiter
        self._stopping_runs[key] = running
        waiter.add_done_callback(lambda _: self._stop_done(key, waiter))

    def _stop_done(self, key: Key, waiter: asyncio.Task[None]) -> None:
        if self._running_stops.get(key) is waiter:
            del self._running_stops[key]
            del self._stopping_runs[key]
            self._reconcile()

    def _bind(self, s3: dict[Key, Assignment]) -> None:
        context = self._context
        for key in self._bound - s3.keys():
            self._receiver.unbind(key)
        for key, a in s3.items():
            spec = a.spec.s3
            assert spec is not None
            self._receiver.bind(
                key,
                S3Binding(
                    function=a.function,
                    token=webhook_token(context.webhook_key, a.namespace, a.name, a.uid),
                    filter=S3Filter.from_spec(spec),
                    region=DEFAULT_REGION,
                ),
            )
        self._bound = set(s3)

    async def stop(self) -> None:
        """Stop every runner gracefully (``STOP_SECONDS`` at most)."""
        self._stopping = True
        for key in list(self._running):
            self._stop(key)
        pending = list(self._running_stops.values())
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def running(self) -> set[Key]:
        return set(self._running)

    def snapshot(self) -> list[tuple[Key, str, DeliveryStats | None]]:
        """(EventSource, kind, delivery counts) of each source running or still stopping."""
        runs = [*self._running.items(), *self._stopping_runs.items()]
        return [(key, r.runner.kind, r.runner.stats()) for key, r in runs]

    # -- queue depth ------------------------------------------------------------------------------

    async def _report_depths(self) -> None:
        if not self._autoscaler_url:
            return
        url = f"{self._autoscaler_url}/v1/stats"
        reporter = f"dispatcher/{self._context.replica}"
        async with httpx.AsyncClient(timeout=REPORT_TIMEOUT) as http:
            while True:
                await asyncio.sleep(self._report_seconds)
                depths = await self.depths()
                if not depths:
                    continue
                body = {
                    "activator": reporter,
                    "functions": [
                        {"namespace": ns, "name": name, "inFlight": 0.0, "queueDepth": depth}
                        for (ns, name), depth in depths.items()
                    ],
                }
                try:
                    response = await http.post(url, json=body)
                    if response.is_error:
                        log.warning("autoscaler refused a report: %s", response.text[:200])
                except httpx.HTTPError as exc:
                    log.debug("reporting queue depths: %s", exc)

    async def depths(self) -> dict[Key, int]:
        """Messages waiting per Function, over this replica's queue sources that can tell."""
        running = list(self._running.values())

        async def one(item: _Running) -> tuple[Key, int | None]:
            try:
                depth = await asyncio.wait_for(item.runner.depth(), DEPTH_TIMEOUT)
            except Exception:
                depth = None
            return item.function, depth

        totals: dict[Key, int] = {}
        for function, depth in await asyncio.gather(*(one(item) for item in running)):
            if depth is not None:
                totals[function] = totals.get(function, 0) + depth
        return totals


async def _finish(task: asyncio.Task[None]) -> None:
    try:
        await asyncio.wait_for(asyncio.shield(task), STOP_SECONDS)
    except TimeoutError:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    except Exception:
        pass


def _key(obj: Object) -> Key:
    meta = obj.get("metadata", {})
    return (meta.get("namespace", "default"), meta.get("name", ""))


def _timeout(obj: Object) -> float:
    value = (obj.get("spec") or {}).get("timeoutSeconds", DEFAULT_TIMEOUT)
    return float(value) if isinstance(value, int | float) else DEFAULT_TIMEOUT


def _auth_secret(obj: Object) -> tuple[str, str] | None:
    auth = ((obj.get("spec") or {}).get("http") or {}).get("auth") or {}
    ref = auth.get("secretRef") or {}
    if auth.get("type") != "bearer" or not ref.get("name"):
        return None
    return str(ref["name"]), str(ref.get("key") or "token")


def _created(meta: dict[str, Any]) -> datetime:
    text = meta.get("creationTimestamp")
    if isinstance(text, str):
        try:
            return datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            pass
    return datetime.now(UTC)
