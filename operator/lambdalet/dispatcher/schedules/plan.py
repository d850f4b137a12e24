"""Firing schedules, pure: ticks → what to fire now → EventBridge "Scheduled Event"s.

Where it sits: the dispatcher's schedule ``loop`` asks ``plan`` what to fire now and when to
wake, and invokes the Function with ``event_payload``; what an expression means and its ticks are
``lambdalet.api.schedule``. Nothing here reads a clock.

Missed ticks (``plan``): only the latest tick at or before ``now`` may fire, and only if it is no
older than ``grace`` (5 minutes) and later than the last fired tick; older ones are dropped, never
fired in a burst. Being the latest, it is also younger than the schedule's interval. Ticks before
``origin`` never fire. A failed invocation is retried (``retry_at``) while the retry is still
within the tick's grace and before the schedule's next tick.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lambdalet.api.schedule import Timetable, next_fire
from lambdalet.backoff import backoff

ACCOUNT_ID = "000000000000"  # the activator's fake account (activator.events.ACCOUNT_ID)
DEFAULT_REGION = "us-east-1"
# Event ids are uuid5(namespace, rule + tick): a re-fire of a tick carries the same id.
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://lambdalet.dev/schedule")
_TINY = timedelta(microseconds=1)  # turns "at or after t" into "after t - _TINY"


@dataclass(frozen=True)
class Rule:
    """The EventSource as the events name it: the EventBridge rule ``<namespace>-<name>``."""

    namespace: str
    name: str
    region: str = DEFAULT_REGION

    @property
    def arn(self) -> str:
        return f"arn:aws:events:{self.region}:{ACCOUNT_ID}:rule/{self.namespace}-{self.name}"


@dataclass(frozen=True)
class Plan:
    """What the loop does now: fire ``fire`` (if any), else sleep until ``wake_at``."""

    fire: datetime | None
    wake_at: datetime | None  # the first tick after now; None: the schedule has ended
    dropped_from: datetime | None = None  # first tick after the last fired one that is given up


@dataclass(frozen=True)
class Policy:
    """Lateness and retries; the defaults are the stated policy."""

    grace: timedelta = timedelta(minutes=5)  # a tick fires at most this late
    attempts: int = 3  # invocations of one tick, the first included
    backoff: timedelta = timedelta(seconds=2)  # before the 2nd attempt; doubled for each next
    max_backoff: timedelta = timedelta(minutes=1)


def plan(
    timetable: Timetable, *, now: datetime, last_fired: datetime | None, grace: timedelta
) -> Plan:
    """The tick to fire now — the latest one at or before ``now``, if it is later than
    ``last_fired`` and at most ``grace`` old — and the next tick to wake for."""
    floor = now - grace - _TINY
    if last_fired is not None:
        floor = max(floor, last_fired)
    fire = None
    tick = next_fire(timetable, floor)
    while tick is not None and tick <= now:
        fire, tick = tick, next_fire(timetable, tick)
    dropped = None
    if last_fired is not None:
        first = next_fire(timetable, last_fired)
        if first is not None and first <= now and first != fire:
            dropped = first
    return Plan(fire=fire, wake_at=tick, dropped_from=dropped)


def retry_at(
    timetable: Timetable, policy: Policy, *, tick: datetime, attempts: int, now: datetime
) -> datetime | None:
    """When to invoke ``tick`` again after ``attempts`` failed ones; None: give up (attempts
    used, past the tick's grace, or the next tick is due by then and supersedes it)."""
    if attempts >= policy.attempts:
        return None
    delay = backoff(attempts, policy.backoff.total_seconds(), policy.max_backoff.total_seconds())
    at = now + timedelta(seconds=delay)
    following = next_fire(timetable, tick)
    if at > tick + policy.grace or (following is not None and at >= following):
        return None
    return at


# -- the event


def event_id(rule: Rule, tick: datetime) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{rule.arn}@{tick.astimezone(UTC).isoformat()}"))


def scheduled_event(rule: Rule, tick: datetime) -> dict[str, object]:
    """EventBridge's "Scheduled Event" for ``tick``; ``time`` is the tick, not the send time,
    so a re-fire of the tick is the same event."""
    return {
        "version": "0",
        "id": event_id(rule, tick),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT_ID,
        "time": tick.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": rule.region,
        "resources": [rule.arn],
        "detail": {},
    }


def event_payload(rule: Rule, tick: datetime) -> bytes:
    return json.dumps(scheduled_event(rule, tick), separators=(",", ":")).encode()
