"""What a schedule expression means: an EventSource's ``schedule`` → its ticks, pure.

Where it sits: part of the EventSource API. The operator calls ``parse`` to validate a spec (a
``ScheduleError`` becomes Ready=False with its message); the dispatcher's schedules
(``lambdalet.dispatcher.schedule``) ask ``next_fire`` for the ticks to fire. Nothing here reads a
clock.

Expressions (``api.eventsource.SCHEDULE_PATTERN``), all read in wall-clock time of ``timeZone``:

- 5-field cron ``m h dom mon dow`` as Vixie cron: dow 0-7 (0 and 7 = SUN) or SUN-SAT; when dom
  and dow are both restricted a day matching either fires. ``?``, ``L``, ``nW``, ``nL``, ``n#k``
  are accepted as in EventBridge. ``@yearly``/``@annually``, ``@monthly``, ``@weekly``,
  ``@daily``, ``@hourly`` are their usual 5-field forms.
- ``cron(m h dom mon dow year)``, EventBridge: dow 1-7 = SUN-SAT (shifted to cron's 0-6 here);
  exactly one of dom and dow is ``?``; dom ``L`` (last day), ``nW`` (weekday nearest day n, alone
  in its field); dow ``nL`` (last n-day of the month), ``n#k`` (k-th n-day), ``L`` (SAT); year
  1970-2199. ``LW`` and ``L-n`` cannot be expressed for croniter and are rejected.
- ``rate(N minutes|hours|days)``: every N units of elapsed time from ``origin``, the
  EventSource's ``metadata.creationTimestamp`` (EventBridge starts a rate when the rule is created;
  unlike a dispatcher's start time it is the same on every replica and after every restart).
  Ticks are ``origin + k·N`` for k ≥ 0, so a new EventSource fires once right away; DST does not
  move them (a day is 24 hours, as in EventBridge Scheduler). Singular and plural units are both
  accepted (EventBridge insists on ``1 minute`` but ``5 minutes``). The time zone is ignored.

Daylight saving time, cron forms — every wall-clock tick fires exactly once:

- A tick inside a spring-forward gap fires when the gap ends: ``30 2 * * *`` in Europe/Berlin on
  2026-03-29 (02:00 CET → 03:00 CEST) fires at 03:00 CEST = 01:00 UTC. (EventBridge Scheduler
  skips it; a daily job run late beats one silently lost.) Ticks landing on the same instant
  (an hourly schedule's 02:00 and 03:00 that day) fire once.
- A tick inside a fall-back repeat fires at its first occurrence: on 2026-10-25 (03:00 CEST →
  02:00 CET) 02:30 fires at 02:30 CEST = 00:30 UTC, not again at 02:30 CET (as EventBridge
  Scheduler). An interval-like cron (``*/15 * * * *``) therefore pauses for the repeated hour;
  ``rate()`` or UTC is the choice where that matters.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import (  # type: ignore[import-untyped]
    CroniterBadDateError,
    CroniterError,
    croniter,
)

_TINY = timedelta(microseconds=1)  # turns "at or after t" into "after t - _TINY"
_RATE = re.compile(r"rate\(([1-9][0-9]*) (minute|hour|day)s?\)")
_NUMBER = re.compile(r"[0-9]+")
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


class ScheduleError(ValueError):
    """The expression or time zone cannot be used; the message tells the user why."""


@dataclass(frozen=True)
class CronSchedule:
    """Calendar ticks: ``expression`` (croniter's 5 fields) read in ``zone``'s wall time."""

    expression: str
    years: frozenset[int] | None  # None: every year
    zone: ZoneInfo
    origin: datetime  # aware; no tick before it (the EventSource did not exist)


@dataclass(frozen=True)
class RateSchedule:
    """Ticks every ``interval`` of elapsed time, starting at ``origin`` (aware)."""

    interval: timedelta
    origin: datetime


Timetable = CronSchedule | RateSchedule


# -- parsing


def parse(expression: str, time_zone: str, origin: datetime) -> Timetable:
    """The spec's expression and time zone as a timetable; ``origin``: the creationTimestamp."""
    if origin.tzinfo is None:
        raise ValueError("origin must be timezone-aware")
    origin = origin.astimezone(UTC).replace(microsecond=0)
    zone = _zone(time_zone)
    text = expression.strip()
    if rate := _RATE.fullmatch(text):
        return RateSchedule(timedelta(**{f"{rate[2]}s": int(rate[1])}), origin)
    try:
        if text.startswith("cron(") and text.endswith(")"):
            cron, years = _eventbridge(text[5:-1].split())
        else:
            cron, years = _unix(_ALIASES.get(text, text).split()), None
        croniter(cron)  # what the translation let through, croniter must accept
    except (ScheduleError, CroniterError) as exc:
        raise ScheduleError(f"schedule {expression!r}: {exc}") from exc
    if _next_wall(cron, years, datetime(1970, 1, 1)) is None:
        raise ScheduleError(f"schedule {expression!r} matches no date")
    return CronSchedule(cron, years, zone, origin)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ScheduleError(
            f"unknown time zone {name!r} (an IANA name like Europe/Berlin)"
        ) from exc


@dataclass(frozen=True)
class _Field:
    label: str
    low: int
    high: int
    names: Mapping[str, int] = field(default_factory=dict)


_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, {n: i for i, n in enumerate(_MONTHS, start=1)})
_UNIX_DOW = _Field("day-of-week", 0, 7, {n: i for i, n in enumerate(_DAYS)})
_EB_DOW = _Field("day-of-week", 1, 7, {n: i for i, n in enumerate(_DAYS, start=1)})
_YEAR = _Field("year", 1970, 2199)


def _unix(fields: list[str]) -> str:
    if len(fields) != 5:
        raise ScheduleError(f"a cron expression has 5 fields (m h dom mon dow), not {len(fields)}")
    return _croniter(fields, _UNIX_DOW, lambda day: day % 7)


def _eventbridge(fields: list[str]) -> tuple[str, frozenset[int] | None]:
    if len(fields) != 6:
        raise ScheduleError(f"cron() has 6 fields (m h dom mon dow year), not {len(fields)}")
    if (fields[2] == "?") == (fields[4] == "?"):
        raise ScheduleError(
            "exactly one of day-of-month and day-of-week must be ? "
            "(e.g. cron(0 12 * * ? *) or cron(0 12 ? * MON-FRI *))"
        )
    years = None if fields[5] == "*" else frozenset(_values(_YEAR, fields[5]))
    return _croniter(fields[:5], _EB_DOW, lambda day: day - 1), years


def _croniter(fields: list[str], dow: _Field, to_cron: Callable[[int], int]) -> str:
    """m h dom mon dow in croniter's terms: numbers only, dow 0-6 from SUN."""
    minute, hour, dom, month, days = fields
    return " ".join(
        (
            _plain(_MINUTE, minute),
            _plain(_HOUR, hour),
            _dom(dom),
            _plain(_MONTH, month),
            _dow(dow, days, to_cron),
        )
    )


def _plain(spec: _Field, text: str) -> str:
    """A field of plain items as croniter's list of numbers (its ranges have quirks: ``5-5``
    means every minute there)."""
    return "*" if text == "*" else ",".join(map(str, sorted(set(_values(spec, text)))))


def _dom(text: str) -> str:
    if text in ("*", "?"):
        return "*"
    items = text.upper().split(",")
    days: set[int] = set()
    special: list[str] = []
    for item in items:
        if item == "L":
            special.append("L")
        elif item == "LW" or item.startswith("L-"):
            raise ScheduleError(f"day-of-month {item} is not supported (L, nW and numbers are)")
        elif item.endswith("W"):
            if len(items) > 1:
                raise ScheduleError(f"day-of-month {item} must stand alone in its field")
            special.append(f"{_value(_DOM, item[:-1])}W")
        else:
            days.update(_values(_DOM, item))
    return ",".join([*map(str, sorted(days)), *dict.fromkeys(special)])


def _dow(spec: _Field, text: str, to_cron: Callable[[int], int]) -> str:
    """Day-of-week items as croniter's (0 = SUN): ``Ln`` for "last n-day", ``n#k`` for k-th."""
    if text in ("*", "?"):
        return "*"
    days: set[int] = set()
    special: list[str] = []
    for item in text.upper().split(","):
        day, hash_mark, nth = item.partition("#")
        if item == "L":
            days.add(6)  # the last day of the week, SAT
        elif item.endswith("L"):
            special.append(f"L{to_cron(_value(spec, item[:-1]))}")
        elif hash_mark:
            if not _NUMBER.fullmatch(nth) or not 1 <= int(nth) <= 5:
                raise ScheduleError(f"day-of-week {item}: the week after # is 1-5")
            special.append(f"{to_cron(_value(spec, day))}#{nth}")
        else:
            days.update(to_cron(value) for value in _values(spec, item))
    return ",".join([*map(str, sorted(days)), *dict.fromkeys(special)])


def _values(spec: _Field, text: str) -> list[int]:
    """``*``, ``a``, ``a-b``, each optionally ``/step`` (``a/step`` runs to the field's end),
    comma-separated."""
    values: list[int] = []
    for item in text.split(","):
        base, slash, step_text = item.partition("/")
        if slash and not (_NUMBER.fullmatch(step_text) and int(step_text) > 0):
            raise ScheduleError(f"{spec.label} step in {item!r} must be a positive number")
        low, dash, high = base.partition("-")
        if base == "*":
            first, last = spec.low, spec.high
        elif dash:
            first, last = _value(spec, low), _value(spec, high)
            if first > last:
                raise ScheduleError(f"{spec.label} range {base} runs backwards")
        else:
            first = _value(spec, base)
            last = spec.high if slash else first
        values.extend(range(first, last + 1, int(step_text) if slash else 1))
    return values


def _value(spec: _Field, text: str) -> int:
    value = int(text) if _NUMBER.fullmatch(text) else spec.names.get(text.upper())
    if value is None or not spec.low <= value <= spec.high:
        if text == "?":
            raise ScheduleError(
                f"? may only be a whole day-of-month or day-of-week, found in {spec.label}"
            )
        names = f" or {'-'.join(list(spec.names)[:: len(spec.names) - 1])}" if spec.names else ""
        raise ScheduleError(f"{spec.label} value {text!r} is not in {spec.low}-{spec.high}{names}")
    return value


# -- fire times


def next_fire(timetable: Timetable, after: datetime) -> datetime | None:
    """The first tick strictly after ``after`` (aware), in UTC; None when there is none."""
    after = max(after, timetable.origin - _TINY)
    if isinstance(timetable, RateSchedule):
        # origin 12:00:00, 5 minutes, after 12:07:30 → k = 1 + 1 → 12:10:00
        ticks_before = (after - timetable.origin) // timetable.interval
        return (timetable.origin + (ticks_before + 1) * timetable.interval).astimezone(UTC)
    # Wall-clock candidates map to instants monotonically (gaps collapse to their end, repeats
    # to their first occurrence), so none before the wall time of ``after`` can be later than it;
    # a few just after it can be earlier only when ``after`` is in a repeated hour: skip those.
    wall = after.astimezone(timetable.zone).replace(tzinfo=None)
    while (candidate := _next_wall(timetable.expression, timetable.years, wall)) is not None:
        fire = _instant(candidate, timetable.zone)
        if fire > after:
            return fire
        wall = candidate
    return None


def _next_wall(cron: str, years: frozenset[int] | None, wall: datetime) -> datetime | None:
    """The first naive wall-clock time after ``wall`` that the expression names."""
    while True:
        try:
            candidate: datetime = croniter(cron, wall).get_next(datetime)
        except CroniterBadDateError:  # nothing within croniter's 50-year search
            return None
        if years is None or candidate.year in years:
            return candidate
        later = [year for year in years if year > candidate.year]
        if not later:
            return None
        wall = datetime(min(later), 1, 1) - timedelta(minutes=1)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time as UTC: its first occurrence, or the end of the gap it falls in."""
    fire = wall.replace(tzinfo=zone).astimezone(UTC)
    if fire.astimezone(zone).replace(tzinfo=None) == wall:
        return fire
    # In a gap fold=0 reads the wall time with the offset before the jump (02:30 CET = 01:30
    # UTC, after the 01:00 UTC jump), fold=1 with the one after (00:30 UTC, before it): the jump
    # lies between; find it to the second.
    other = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    before, after = int(min(fire, other).timestamp()), int(max(fire, other).timestamp())
    offset_after = datetime.fromtimestamp(after, zone).utcoffset()
    while after - before > 1:
        middle = (before + after) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == offset_after:
            after = middle
        else:
            before = middle
    return datetime.fromtimestamp(after, UTC)
