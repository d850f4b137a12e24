"""List-then-watch of one kind, kept resumable: the activator's view of Functions and endpoints.

``informer`` lists the objects (in pages), hands the complete set to ``on_sync``, then watches
from the list's resourceVersion and hands each change to ``on_change``. When the watch ends (the
server's timeout) it resumes from the last resourceVersion seen; when the server says that
version is gone (410) or the connection fails, it lists again, so objects deleted in the gap are
noticed (``on_sync`` gets the complete set again). Failures back off from 0.5 s up to 30 s.
kopf does this for the operator; the activator has no kopf and needs only this much.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from lambdalet.backoff import backoff
from lambdalet.k8s.client import KubeClient
from lambdalet.k8s.errors import KubeError

log = logging.getLogger("lambdalet.k8s")

PAGE = 500
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0

Object = dict[str, Any]


async def informer(
    client: KubeClient,
    api_version: str,
    kind: str,
    *,
    on_sync: Callable[[list[Object]], None],
    on_change: Callable[[str, Object], None],
    label_selector: str | None = None,
    namespace: str | None = None,
) -> None:
    """Run until cancelled; ``on_change`` gets ADDED / MODIFIED / DELETED and the object."""
    selector = {"labelSelector": label_selector} if label_selector else {}
    failures = 0
    while True:
        try:
            version: str | None = await _list(
                client, api_version, kind, namespace, selector, on_sync
            )
            failures = 0
            while version is not None:
                version = await _watch(
                    client, api_version, kind, namespace, selector, version, on_change
                )
        except KubeError as exc:
            failures += 1
            delay = backoff(failures, BACKOFF_FIRST, BACKOFF_MAX)
            log.warning("%s: %s; listing again in %.1f s", kind, exc, delay)
            await asyncio.sleep(delay)


async def _list(
    client: KubeClient,
    api_version: str,
    kind: str,
    namespace: str | None,
    selector: dict[str, str],
    on_sync: Callable[[list[Object]], None],
) -> str:
    items: list[Object] = []
    params = {**selector, "limit": str(PAGE)}
    while True:
        page = await client.list_objects(api_version, kind, namespace, params=params)
        items.extend(page.get("items", []))
        metadata = page.get("metadata", {})
        token = metadata.get("continue")
        if not token:
            on_sync(items)
            return str(metadata.get("resourceVersion", ""))
        params = {**selector, "limit": str(PAGE), "continue": token}


async def _watch(
    client: KubeClient,
    api_version: str,
    kind: str,
    namespace: str | None,
    selector: dict[str, str],
    version: str,
    on_change: Callable[[str, Object], None],
) -> str | None:
    """Watch from ``version``; the version to resume from, or None to list again."""
    params = {**selector, "resourceVersion": version, "allowWatchBookmarks": "true"}
    async for kind_of_event, obj in client.watch(api_version, kind, namespace, params=params):
        if kind_of_event == "ERROR":
            log.info("%s watch: %s; listing again", kind, obj.get("message", obj))
            return None
        version = obj.get("metadata", {}).get("resourceVersion", version)
        if kind_of_event != "BOOKMARK":
            on_change(kind_of_event, obj)
    return version


async def informers(
    client: KubeClient,
    api_version: str,
    kind: str,
    *,
    namespaces: tuple[str, ...] | None,
    on_sync: Callable[[str | None, list[Object]], None],
    on_change: Callable[[str, Object], None],
    label_selector: str | None = None,
) -> None:
    """``informer`` over the whole cluster (``namespaces`` None) or one per named namespace;
    ``on_sync`` learns which namespace a complete listing is of (None: all of them)."""
    if namespaces is None:
        await informer(
            client,
            api_version,
            kind,
            on_sync=lambda items: on_sync(None, items),
            on_change=on_change,
            label_selector=label_selector,
        )
        return

    def synced(namespace: str) -> Callable[[list[Object]], None]:
        return lambda items: on_sync(namespace, items)

    await asyncio.gather(
        *(
            informer(
                client,
                api_version,
                kind,
                on_sync=synced(namespace),
                on_change=on_change,
                label_selector=label_selector,
                namespace=namespace,
            )
            for namespace in namespaces
        )
    )
