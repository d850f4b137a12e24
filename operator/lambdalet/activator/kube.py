"""The activator's view of the cluster: Functions and their ready endpoints.

Two informers (``lambdalet.k8s.watch``) feed the proxy: every Function of a served namespace
(``LAMBDALET_NAMESPACES``, as the operator reads it) becomes a ``FunctionConfig``
(``Proxy.set_config`` / ``remove``), and the EndpointSlices of the Functions' Services (labelled
by the operator, the labels copied onto the slices by Kubernetes) become each Function's ready
addresses (``Proxy.set_ready``: the union over the Function's slices).

Bearer tokens come from ``lambdalet.contracts.secrets``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lambdalet import names
from lambdalet.activator.model import FunctionConfig
from lambdalet.activator.proxy import Proxy
from lambdalet.api.common import GROUP, VERSION
from lambdalet.api.function import Function
from lambdalet.contracts.keys import Key
from lambdalet.contracts.views import Views, function_views, key_of
from lambdalet.k8s import KubeClient
from lambdalet.k8s.watch import informers
from lambdalet.namespaces import served, specific

log = logging.getLogger("lambdalet.activator")

SLICE_SELECTOR = f"{names.LABEL_MANAGED_BY}={names.MANAGED_BY},{names.LABEL_FUNCTION}"

Object = dict[str, Any]


class ClusterView:
    """Keeps the proxy's Functions and endpoints in step with the API server."""

    def __init__(
        self, client: KubeClient, proxy: Proxy, *, namespaces: tuple[str, ...] = ()
    ) -> None:
        self._client = client
        self._proxy = proxy
        self._namespaces = namespaces
        self._functions: set[Key] = set()  # served, and handed to the proxy
        self._views: Views[Function] = function_views()
        # (namespace, slice name) -> (Function, ready ip -> port)
        self._slices: dict[tuple[str, str], tuple[Key, dict[str, int]]] = {}
        self.synced = asyncio.Event()
        # Plain namespace names: one list and watch per namespace (no cluster-wide permission
        # needed); patterns: cluster-wide, filtered here.
        self._scopes = specific(namespaces)
        self._synced_kinds: set[tuple[str, str | None]] = set()

    async def run(self) -> None:
        await asyncio.gather(
            informers(
                self._client,
                f"{GROUP}/{VERSION}",
                "Function",
                namespaces=self._scopes,
                on_sync=self._sync_functions,
                on_change=self._function_changed,
            ),
            informers(
                self._client,
                "discovery.k8s.io/v1",
                "EndpointSlice",
                namespaces=self._scopes,
                label_selector=SLICE_SELECTOR,
                on_sync=self._sync_slices,
                on_change=self._slice_changed,
            ),
        )

    # -- Functions ------------------------------------------------------------------------------

    def _sync_functions(self, namespace: str | None, items: list[Object]) -> None:
        """A complete listing of ``namespace`` (None: every namespace)."""
        seen = {key for key in (self._set_function(item) for item in items) if key is not None}
        listed = {key for key in self._functions if namespace in (None, key[0])}
        for gone in listed - seen:
            self._views.remove(gone)
            self._proxy.remove(gone)
        self._functions = (self._functions - listed) | seen
        self._mark_synced("Function", namespace)

    def _function_changed(self, kind: str, obj: Object) -> None:
        if kind == "DELETED":
            gone = key_of(obj)
            self._views.remove(gone)
            self._functions.discard(gone)
            self._proxy.remove(gone)
            return
        key = self._set_function(obj)
        if key is not None:
            self._functions.add(key)

    def _set_function(self, obj: Object) -> Key | None:
        namespace = obj.get("metadata", {}).get("namespace", "default")
        if not served(namespace, self._namespaces):
            return None  # another operator's: answered 404 here, never held
        key = key_of(obj)
        before = self._views.get(key)
        view = self._views.put(obj)
        if view.model is None:
            if view.problem is not None and (before is None or before.parsed is not view.parsed):
                log.warning("ignoring Function %s/%s: %s", *key, view.problem.message)
            return None
        if before is not None and before.parsed is view.parsed and key in self._functions:
            return key  # only its status moved: the proxy's configuration stands
        config = FunctionConfig.from_api(view.model)
        self._proxy.set_config(config)
        return config.key

    # -- EndpointSlices ---------------------------------------------------------------------------

    def _sync_slices(self, namespace: str | None, items: list[Object]) -> None:
        """A complete listing of ``namespace``'s slices (None: every namespace)."""
        listed = {sid for sid in self._slices if namespace in (None, sid[0])}
        before = {self._slices[sid][0] for sid in listed}
        for sid in listed:
            del self._slices[sid]
        for item in items:
            parsed = _ready_endpoints(item)
            if parsed is not None:
                self._slices[_slice_id(item)] = parsed
        now = {key for sid, (key, _) in self._slices.items() if namespace in (None, sid[0])}
        for key in before | now:
            self._proxy.set_ready(key, self._ready(key))
        self._mark_synced("EndpointSlice", namespace)

    def _slice_changed(self, kind: str, obj: Object) -> None:
        slice_id = _slice_id(obj)
        previous = self._slices.pop(slice_id, None)
        keys: set[Key] = {previous[0]} if previous else set()
        if kind != "DELETED":
            parsed = _ready_endpoints(obj)
            if parsed is not None:
                self._slices[slice_id] = parsed
                keys.add(parsed[0])
        for key in keys:
            self._proxy.set_ready(key, self._ready(key))

    def _ready(self, key: Key) -> dict[str, int]:
        ready: dict[str, int] = {}
        for owner, addresses in self._slices.values():
            if owner == key:
                ready.update(addresses)
        return ready

    def _mark_synced(self, kind: str, namespace: str | None) -> None:
        self._synced_kinds.add((kind, namespace))
        scopes: tuple[str | None, ...] = self._scopes or (None,)
        if all(
            (k, ns) in self._synced_kinds for k in ("Function", "EndpointSlice") for ns in scopes
        ):
            self.synced.set()


def _slice_id(obj: Object) -> tuple[str, str]:
    meta = obj.get("metadata", {})
    return (meta.get("namespace", ""), meta.get("name", ""))


def _ready_endpoints(obj: Object) -> tuple[Key, dict[str, int]] | None:
    """(Function, ready ip -> port) of one EndpointSlice; None when it is not a Function's."""
    meta = obj.get("metadata", {})
    function = meta.get("labels", {}).get(names.LABEL_FUNCTION)
    if not function:
        return None
    port = next(
        (
            p.get("port")
            for p in obj.get("ports") or ()
            if p.get("name") == names.FUNCTION_PORT_NAME and p.get("port")
        ),
        None,
    )
    ready: dict[str, int] = {}
    if port is not None:
        for endpoint in obj.get("endpoints") or ():
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating"):
                continue
            # Every address of an endpoint is the same pod; one is enough.
            for address in (endpoint.get("addresses") or ())[:1]:
                ready[address] = int(port)
    return (meta.get("namespace", "default"), function), ready
