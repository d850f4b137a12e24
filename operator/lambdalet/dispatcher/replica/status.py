"""The dispatcher's part of an EventSource's status: the ``Polling`` condition and, for
schedules, the last fired tick and the claim on the tick being fired.

The operator and the dispatcher both write the status, each its own fields, with server-side
apply under its own field manager (the operator: ``Ready``, ``observedGeneration``,
``assignedReplica``; here: ``lambdalet-dispatcher``). Server-side apply removes the fields a
manager owned but left out of its next apply, so ``SourceStatus`` always applies all of the
dispatcher's fields together. ``conditions`` is a list keyed by type, so the two managers'
conditions live side by side.

``Polling`` says whether the replica reaches the source (reasons below); the operator folds it
into ``Ready``. It is written when it changes, never per poll.

    True   Polling               receiving (queues), subscribed (buckets), scheduled
    Unknown Starting             the replica took the source over and is starting it (so the
                                 previous replica's word does not stand for this one's)
    False  SourceUnavailable     the broker or server cannot be reached (retried with backoff)
           SourceMisconfigured   the source's settings cannot work (missing queue, bad
                                 credentials): fix the EventSource or the broker
           SecretNotFound        a Secret the EventSource names is missing or lacks the key

Schedules keep ``lastScheduleTime`` (the last tick handled) and ``firing`` (the tick being fired,
by which replica, since when) here, so every replica sees them. ``claim`` is a conditional write:
it carries the resourceVersion it read, so of two replicas claiming the same tick one gets a
409 Conflict, reads again and finds the other's claim.
"""

from __future__ import annotations

import logging
from dataclasses import KW_ONLY, InitVar, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from lambdalet.api.common import GROUP, VERSION
from lambdalet.api.conditions import ConditionType, PollingReason
from lambdalet.k8s import Conflict, KubeClient, KubeError, NotFound
from lambdalet.k8s.client import APPLY, resource_path

log = logging.getLogger("lambdalet.dispatcher")

FIELD_MANAGER = "lambdalet-dispatcher"
MAX_MESSAGE = 1024


@dataclass(frozen=True)
class Polling:
    ok: bool | None  # None: Unknown (a replica is starting the source)
    reason: str
    message: str


@dataclass(frozen=True)
class Firing:
    tick: datetime
    replica: str
    since: datetime


def may_claim(
    tick: datetime,
    *,
    replica: str,
    last: datetime | None,
    firing: Firing | None,
    now: datetime,
    ttl: timedelta,
) -> bool:
    """Whether ``replica`` may take ``tick``: not recorded yet, and not claimed by another
    replica within ``ttl`` (the claim of a replica that died runs out)."""
    if last is not None and tick <= last:
        return False
    if firing is None or firing.replica == replica or firing.tick < tick:
        return True
    return now - firing.since >= ttl


@dataclass(eq=False)
class SourceStatus:
    """The dispatcher's status fields of one EventSource, as this replica last applied them."""

    client: KubeClient
    namespace: str
    name: str
    _: KW_ONLY
    replica: str
    generation: int
    stored: InitVar[dict[str, Any] | None] = None
    claim_ttl: timedelta = timedelta(minutes=2)
    _path: str = field(init=False)
    _polling: Polling | None = field(init=False, default=None)
    _transition: str | None = field(init=False, default=None)
    _polling_generation: int | None = field(init=False, default=None)
    _last: datetime | None = field(init=False, default=None)
    _firing: Firing | None = field(init=False, default=None)

    def __post_init__(self, stored: dict[str, Any] | None) -> None:
        self._path = resource_path(f"{GROUP}/{VERSION}", "EventSource", self.namespace, self.name)
        status = (stored or {}).get("status") or {}
        for condition in status.get("conditions") or ():
            if condition.get("type") == ConditionType.POLLING:
                stored_status = condition.get("status")
                self._polling = Polling(
                    None if stored_status == "Unknown" else stored_status == "True",
                    str(condition.get("reason") or ""),
                    str(condition.get("message") or ""),
                )
                self._transition = condition.get("lastTransitionTime")
        self._polling_generation = None if self._polling is None else _generation(status)
        self._last = _time(status.get("lastScheduleTime"))

    # -- Polling ----------------------------------------------------------------------------------

    async def polling(self, ok: bool | None, reason: PollingReason, message: str) -> None:
        """Set the Polling condition; written only when it differs from the last one."""
        value = Polling(ok, reason, message[:MAX_MESSAGE])
        if value == self._polling and self._polling_generation == self.generation:
            return
        if self._polling is None or self._polling.ok != ok:
            self._transition = _stamp(datetime.now(UTC))
        self._polling = value
        self._polling_generation = self.generation
        await self._apply()

    # -- schedules (scheduler.LastFired) --------------------------------------------------------

    async def get(self) -> datetime | None:
        stored = await self._read()
        if stored is None:
            return self._last
        self._last = _later(self._last, _time(stored.get("status", {}).get("lastScheduleTime")))
        return self._last

    async def claim(self, tick: datetime) -> bool:
        for _ in range(3):
            stored = await self._read()
            if stored is None:
                return False  # deleted: nothing to fire for
            status = stored.get("status") or {}
            self._last = _later(self._last, _time(status.get("lastScheduleTime")))
            now = datetime.now(UTC)
            if not may_claim(
                tick,
                replica=self.replica,
                last=self._last,
                firing=_firing(status.get("firing")),
                now=now,
                ttl=self.claim_ttl,
            ):
                return False
            self._firing = Firing(tick, self.replica, now)
            try:
                await self._apply(resource_version=stored["metadata"]["resourceVersion"])
                return True
            except Conflict:  # another replica wrote first: read again
                self._firing = None
            except KubeError:
                self._firing = None
                raise
        return False

    async def set(self, tick: datetime) -> None:
        self._last = _later(self._last, tick)
        self._firing = None
        await self._apply()

    # -- writing ---------------------------------------------------------------------------------

    async def _read(self) -> dict[str, Any] | None:
        try:
            return await self.client.request(
                "GET", self._path, what=f"get EventSource {self.namespace}/{self.name}"
            )
        except NotFound:
            return None

    async def _apply(self, *, resource_version: str | None = None) -> None:
        status: dict[str, Any] = {}
        if self._polling is not None:
            status["conditions"] = [
                {
                    "type": ConditionType.POLLING,
                    "status": {True: "True", False: "False", None: "Unknown"}[self._polling.ok],
                    "reason": self._polling.reason,
                    "message": self._polling.message,
                    "lastTransitionTime": self._transition or _stamp(datetime.now(UTC)),
                    "observedGeneration": self._polling_generation,
                }
            ]
        if self._last is not None:
            status["lastScheduleTime"] = _stamp(self._last)
        if self._firing is not None:
            status["firing"] = {
                "tick": _stamp(self._firing.tick),
                "replica": self._firing.replica,
                "since": _stamp(self._firing.since),
            }
        metadata: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        manifest = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "EventSource",
            "metadata": metadata,
            "status": status,
        }
        try:
            await self.client.request(
                "PATCH",
                self._path + "/status",
                what=f"update status of EventSource {self.namespace}/{self.name}",
                json=manifest,
                content_type=APPLY,
                params={"fieldManager": FIELD_MANAGER, "force": "true"},
            )
        except NotFound:
            log.debug("EventSource %s/%s is gone", self.namespace, self.name)


def _generation(status: dict[str, Any]) -> int | None:
    for condition in status.get("conditions") or ():
        if condition.get("type") == ConditionType.POLLING:
            value = condition.get("observedGeneration")
            return value if isinstance(value, int) else None
    return None


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: object) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _firing(raw: object) -> Firing | None:
    if not isinstance(raw, dict):
        return None
    tick, since = _time(raw.get("tick")), _time(raw.get("since"))
    replica = raw.get("replica")
    if tick is None or since is None or not isinstance(replica, str):
        return None
    return Firing(tick, replica, since)


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)
