"""Warning Events about the operator's resources, so `kubectl describe` and event-driven tooling
show why an object is not ready. Callers post one on a transition to a new reason only, never on
every pass, so a healthy or unchanged object costs the API server no writes."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from lambdalet import names
from lambdalet.contracts.problems import Problem
from lambdalet.k8s import AlreadyExists, KubeClient, PermanentKubeError

log = logging.getLogger("lambdalet.operator")


async def post_warning(
    client: KubeClient,
    body: Mapping[str, Any],
    problem: Problem,
    *,
    name: str | None = None,
    component: str = names.FIELD_MANAGER,
) -> None:
    """A Warning Event about ``body`` (any namespaced object) with the problem's words. With
    ``name``, an Event of that name that exists already is left as it is (several replicas
    posting about one thing post one Event between them)."""
    meta = body["metadata"]
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    naming = {"name": name} if name else {"generateName": f"{meta['name']}."}
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {**naming, "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "type": "Warning",
        "reason": problem.reason,
        "message": problem.message[:1024],
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await client.create(event)
    except AlreadyExists:
        if not name:
            raise
    except PermanentKubeError as exc:  # an Event is a courtesy: never fail reconciliation on it
        log.warning("%s/%s: could not post an Event: %s", meta["namespace"], meta["name"], exc)
