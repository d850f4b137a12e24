"""Writes each Function's ``status.lastColdStartSeconds`` from the cold starts activators report.

Where it sits: the activators measure a cold start (first held request -> an instance taking
it) and name it once in their next load report (``lambdalet.activator.stats``); the autoscaler's
endpoint parses it (``lambdalet.autoscaler.reports``) and its loop hands it here (``report``).
This module keeps the latest figure per Function and one task (``run``) writes it with a merge
patch of the status subresource, when ``status.cold_start_update`` says it changes the stored
value (rounded to 10 ms). So a Function costs one status write per cold start (one per activator
that held requests for it, at most), none per request, and nothing while it is warm.

Bounded: one pending figure and one written figure per Function the operator knows (a newer
report replaces an unwritten one); writes go one at a time. A write that failed on the way (a
timeout, a 5xx, a conflict) is tried again after a backoff (0.5 s doubling to 30 s), unless a
newer figure came meanwhile; one the API server refuses for good (e.g. RBAC) is logged and
dropped, and the next cold start brings a new figure. The reconciler never writes the field (see
``status``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from lambdalet.api.common import GROUP, VERSION
from lambdalet.api.function import Function
from lambdalet.backoff import backoff
from lambdalet.contracts.keys import Key
from lambdalet.contracts.views import View
from lambdalet.controller.functions.status import cold_start_update
from lambdalet.k8s import KubeClient, KubeError, NotFound, TransientKubeError

log = logging.getLogger("lambdalet.operator")

# A write that failed on the way (a timeout, a 5xx, a conflict) is tried again, later and later.
RETRY_FIRST_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0


class ColdStartWriter:
    def __init__(self, client: KubeClient, functions: Mapping[Key, View[Function]]) -> None:
        """``functions``: the latest view of every known Function (the reconcilers' state)."""
        self._client = client
        self._functions = functions
        self._pending: dict[Key, float] = {}
        # What this writer last wrote: the body in ``functions`` shows it only once the watch
        # has brought the write back, and a second activator's report may come before that.
        self._written: dict[Key, float] = {}
        self._failures: dict[Key, int] = {}  # transient failures in a row, per Function
        self._latest: dict[Key, float] = {}  # the last figure reported, per Function
        self._wake = asyncio.Event()

    def report(self, key: Key, seconds: float) -> None:
        """A cold start of ``seconds`` for ``key`` (a Function ``functions`` holds)."""
        if key in self._functions:
            self._pending[key] = seconds
            self._latest[key] = seconds
            self._wake.set()

    async def run(self) -> None:
        """Write pending figures until cancelled."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                key = next(iter(self._pending))
                try:
                    await self._write(key, self._pending.pop(key))
                except Exception:  # a bug must not stop the writes of every other Function
                    log.exception("%s/%s: writing lastColdStartSeconds failed", *key)

    def _again(self, key: Key, seconds: float) -> None:
        """A figure whose write failed, pending again unless a newer one came meanwhile."""
        if key in self._functions and self._latest.get(key) == seconds:
            self._pending.setdefault(key, seconds)
            self._wake.set()

    async def _write(self, key: Key, seconds: float) -> None:
        view = self._functions.get(key)
        if view is None:
            self._written.pop(key, None)
            return  # deleted meanwhile
        stored = self._written.get(key, (view.body.get("status") or {}).get("lastColdStartSeconds"))
        value = cold_start_update(seconds, stored if isinstance(stored, int | float) else None)
        if value is None:
            return
        for known in (self._written, self._latest, self._failures):
            for gone in [k for k in known if k not in self._functions]:
                del known[gone]
        namespace, name = key
        try:
            await self._client.patch_status(
                f"{GROUP}/{VERSION}", "Function", namespace, name, {"lastColdStartSeconds": value}
            )
        except NotFound:
            return
        except TransientKubeError as exc:
            self._failures[key] = failures = self._failures.get(key, 0) + 1
            delay = backoff(failures, RETRY_FIRST_SECONDS, RETRY_MAX_SECONDS)
            log.warning(
                "%s/%s: writing lastColdStartSeconds %.2f failed, again in %.1f s: %s",
                *key,
                value,
                delay,
                exc,
            )
            asyncio.get_running_loop().call_later(delay, self._again, key, seconds)
            return
        except KubeError as exc:  # not worth retrying (e.g. RBAC): the next cold start tries
            log.warning("%s/%s: writing lastColdStartSeconds %.2f failed: %s", *key, value, exc)
            return
        self._failures.pop(key, None)
        self._written[key] = value
