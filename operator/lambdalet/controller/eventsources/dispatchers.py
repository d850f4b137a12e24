"""Feeding dispatcher membership: a watch of the dispatcher Leases and a liveness timer.

The watch (``lambdalet.k8s.watch.informer``, in the dispatcher namespace only, label-selected)
records every Lease change in ``state.membership`` with the time it was seen; the timer re-reads
liveness every ``CHECK_SECONDS``, so a replica that stopped renewing is noticed without any
event. Both end in ``eventsources.reassign``, which queues the EventSources that moved. The first
complete listing sets ``state.synced``, which lets the EventSource workers start.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lambdalet.contracts import leases
from lambdalet.controller.eventsources.reconciler import EventSourceState, reassign
from lambdalet.k8s.watch import informer

CHECK_SECONDS = 1.0


async def watch(state: EventSourceState) -> None:
    """Keep ``state.membership`` in step with the dispatcher Leases until cancelled."""

    def on_sync(items: list[dict[str, Any]]) -> None:
        state.membership.sync((leases.parse(item) for item in items), state.clock())
        reassign(state)
        state.synced.set()

    def on_change(kind: str, item: dict[str, Any]) -> None:
        if kind == "DELETED":
            state.membership.remove(leases.parse(item).name)
        else:
            state.membership.observe(leases.parse(item), state.clock())
        reassign(state)

    await informer(
        state.client,
        leases.LEASE_API_VERSION,
        "Lease",
        on_sync=on_sync,
        on_change=on_change,
        label_selector=leases.DISPATCHER_SELECTOR,
        namespace=state.settings.dispatcher_namespace,
    )


async def expire(state: EventSourceState, every: float = CHECK_SECONDS) -> None:
    """Re-check liveness every ``every`` seconds until cancelled."""
    while True:
        await asyncio.sleep(every)
        reassign(state)
