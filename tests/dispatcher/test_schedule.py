"""Schedules, pure: parsing and translation, fire times across DST, the missed-tick and retry
policy, and the EventBridge Scheduled Event. Times are UTC unless a row says otherwise."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from lambdalet.api.eventsource import Schedule
from lambdalet.api.schedule import (
    CronSchedule,
    RateSchedule,
    ScheduleError,
    Timetable,
    next_fire,
    parse,
)
from lambdalet.dispatcher.schedules.plan import (
    Plan,
    Policy,
    Rule,
    event_id,
    event_payload,
    plan,
    retry_at,
    scheduled_event,
)

ORIGIN = datetime(2020, 1, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
GRACE = timedelta(minutes=5)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def local(zone: str, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """A wall-clock time in ``zone`` (its first occurrence), as UTC."""
    return datetime(year, month, day, hour, minute, tzinfo=ZoneInfo(zone)).astimezone(UTC)


def fires(timetable: Timetable, after: datetime, count: int) -> list[datetime]:
    out: list[datetime] = []
    for _ in range(count):
        tick = next_fire(timetable, after)
        assert tick is not None
        out.append(tick)
        after = tick
    return out


# -- parsing


@pytest.mark.parametrize(
    ("expression", "croniter", "years"),
    [
        pytest.param("*/15 * * * *", "0,15,30,45 * * * *", None, id="unix-step"),
        pytest.param("0 9 * * 1-5", "0 9 * * 1,2,3,4,5", None, id="unix-dow-mon-fri"),
        pytest.param("0 0 * * 5-7", "0 0 * * 0,5,6", None, id="unix-dow-7-is-sunday"),
        pytest.param("0 0 * * sun,Sat", "0 0 * * 0,6", None, id="unix-names-any-case"),
        pytest.param("5-5 * * * *", "5 * * * *", None, id="equal-range-is-one-value"),
        pytest.param("0 0 1 jan-mar/2 *", "0 0 1 1,3 *", None, id="month-names-step"),
        pytest.param("@hourly", "0 * * * *", None, id="hourly"),
        pytest.param("@daily", "0 0 * * *", None, id="daily"),
        pytest.param("@weekly", "0 0 * * 0", None, id="weekly"),
        pytest.param("@monthly", "0 0 1 * *", None, id="monthly"),
        pytest.param("@yearly", "0 0 1 1 *", None, id="yearly"),
        pytest.param("@annually", "0 0 1 1 *", None, id="annually"),
        pytest.param("cron(0 12 * * ? *)", "0 12 * * *", None, id="eb-daily"),
        pytest.param("cron(0 9 ? * MON-FRI *)", "0 9 * * 1,2,3,4,5", None, id="eb-names"),
        pytest.param("cron(0 9 ? * 2-6 *)", "0 9 * * 1,2,3,4,5", None, id="eb-2-6-is-mon-fri"),
        pytest.param("cron(0 9 ? * 1 *)", "0 9 * * 0", None, id="eb-1-is-sunday"),
        pytest.param("cron(0 9 ? * */2 *)", "0 9 * * 0,2,4,6", None, id="eb-dow-step-from-sun"),
        pytest.param("cron(15 10 ? * 6L *)", "15 10 * * L5", None, id="eb-last-friday"),
        pytest.param("cron(0 0 ? * 3#2 *)", "0 0 * * 2#2", None, id="eb-second-tuesday"),
        pytest.param("cron(0 0 ? * L *)", "0 0 * * 6", None, id="eb-dow-L-is-saturday"),
        pytest.param("cron(0 0 L * ? *)", "0 0 L * *", None, id="eb-last-day-of-month"),
        pytest.param("cron(0 0 1,L * ? *)", "0 0 1,L * *", None, id="eb-first-and-last"),
        pytest.param("cron(0 0 15W * ? *)", "0 0 15W * *", None, id="eb-nearest-weekday"),
        pytest.param("cron(1/20 * * * ? *)", "1,21,41 * * * *", None, id="eb-start-step"),
        pytest.param("cron(0 0 1 1 ? 2030-2040/5)", "0 0 1 1 *", {2030, 2035, 2040}, id="eb-years"),
        pytest.param("cron(0 0 1 1 ? 2199)", "0 0 1 1 *", {2199}, id="eb-last-year"),
    ],
)
def test_cron_forms_translate_to_croniter(
    expression: str, croniter: str, years: set[int] | None
) -> None:
    timetable = parse(expression, "UTC", ORIGIN)
    assert isinstance(timetable, CronSchedule)
    assert (timetable.expression, timetable.years) == (croniter, years)


@pytest.mark.parametrize(
    ("expression", "interval"),
    [
        ("rate(1 minute)", timedelta(minutes=1)),
        ("rate(5 minutes)", timedelta(minutes=5)),
        ("rate(5 minute)", timedelta(minutes=5)),  # EventBridge would want "minutes"
        ("rate(1 hour)", timedelta(hours=1)),
        ("rate(12 hours)", timedelta(hours=12)),
        ("rate(1 day)", timedelta(days=1)),
        ("rate(7 days)", timedelta(days=7)),
    ],
)
def test_rates(expression: str, interval: timedelta) -> None:
    assert parse(expression, "Europe/Berlin", ORIGIN) == RateSchedule(interval, ORIGIN)


def test_rate_origin_is_whole_seconds_utc() -> None:
    origin = datetime(2026, 5, 1, 14, 0, 7, 250000, tzinfo=ZoneInfo("Europe/Berlin"))
    timetable = parse("rate(1 hour)", "UTC", origin)
    assert timetable.origin == utc(2026, 5, 1, 12, 0, 7)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(0 12 * * * *)", "exactly one of day-of-month and day-of-week must be ?"),
        ("cron(0 12 ? * ? *)", "exactly one of day-of-month and day-of-week must be ?"),
        ("cron(0 12 * * ?)", "cron() has 6 fields"),
        ("cron(0 0 LW * ? *)", "day-of-month LW is not supported"),
        ("cron(0 0 L-3 * ? *)", "day-of-month L-3 is not supported"),
        ("cron(0 0 1,15W * ? *)", "15W must stand alone"),
        ("cron(0 0 ? * 0 *)", "day-of-week value '0' is not in 1-7 or SUN-SAT"),
        ("cron(0 0 ? * 8 *)", "day-of-week value '8' is not in 1-7 or SUN-SAT"),
        ("cron(0 0 ? * 2#6 *)", "the week after # is 1-5"),
        ("cron(0 0 1 * ? 1969)", "year value '1969' is not in 1970-2199"),
        ("cron(0 0 29 2 ? 2027)", "matches no date"),
        ("0 0 * * FOO", "day-of-week value 'FOO' is not in 0-7 or SUN-SAT"),
        ("0 0 1 13 *", "month value '13' is not in 1-12 or JAN-DEC"),
        ("60 * * * *", "minute value '60' is not in 0-59"),
        ("0 24 * * *", "hour value '24' is not in 0-23"),
        ("0 0 0 * *", "day-of-month value '0' is not in 1-31"),
        ("0 ? * * *", "? may only be a whole day-of-month or day-of-week, found in hour"),
        ("*/0 * * * *", "minute step in '*/0' must be a positive number"),
        ("0 0 * * 5-1", "day-of-week range 5-1 runs backwards"),
        ("0 0 30 2 *", "matches no date"),
        ("0 0 * * * *", "a cron expression has 5 fields"),
        ("@reboot", "a cron expression has 5 fields"),
    ],
)
def test_what_cannot_be_converted_is_rejected_with_a_reason(expression: str, message: str) -> None:
    with pytest.raises(ScheduleError) as err:
        parse(expression, "UTC", ORIGIN)
    assert message in str(err.value)
    assert repr(expression) in str(err.value)


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "Europe/", "../etc/passwd"])
def test_unknown_time_zones_are_rejected(zone: str) -> None:
    with pytest.raises(ScheduleError, match="unknown time zone"):
        parse("@daily", zone, ORIGIN)


@pytest.mark.parametrize(
    "expression",
    ["*/5 * * * *", "rate(5 minutes)", "cron(0 12 * * ? *)", "@hourly", "0 9 * * MON-FRI"],
)
def test_api_examples_parse(expression: str) -> None:
    spec = Schedule(expression=expression, time_zone="Europe/Berlin")
    parse(spec.expression, spec.time_zone, ORIGIN)


def test_origin_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse("@daily", "UTC", datetime(2026, 1, 1))


# -- fire times

BERLIN = "Europe/Berlin"


@pytest.mark.parametrize(
    ("expression", "zone", "after", "expected"),
    [
        pytest.param(
            "30 2 * * *",
            BERLIN,
            utc(2026, 3, 27),
            [
                local(BERLIN, 2026, 3, 27, 2, 30),
                local(BERLIN, 2026, 3, 28, 2, 30),
                utc(2026, 3, 29, 1, 0),  # 02:30 does not exist: at the gap's end, 03:00 CEST
                local(BERLIN, 2026, 3, 30, 2, 30),
            ],
            id="berlin-daily-0230-spring-forward-fires-once-at-0300",
        ),
        pytest.param(
            "30 2 * * *",
            BERLIN,
            utc(2026, 10, 24),
            [
                utc(2026, 10, 24, 0, 30),
                utc(2026, 10, 25, 0, 30),  # 02:30 CEST, the first of two; not 01:30 UTC again
                utc(2026, 10, 26, 1, 30),
            ],
            id="berlin-daily-0230-fall-back-fires-once-at-first",
        ),
        pytest.param(
            "0 * * * *",
            BERLIN,
            utc(2026, 3, 28, 23, 30),
            [utc(2026, 3, 29, 0), utc(2026, 3, 29, 1), utc(2026, 3, 29, 2)],
            id="berlin-hourly-spring-0200-and-0300-are-one-instant",
        ),
        pytest.param(
            "0 * * * *",
            BERLIN,
            utc(2026, 10, 24, 23, 30),
            [utc(2026, 10, 25, 0), utc(2026, 10, 25, 2), utc(2026, 10, 25, 3)],
            id="berlin-hourly-fall-repeated-hour-once",
        ),
        pytest.param(
            "*/30 * * * *",
            BERLIN,
            utc(2026, 10, 25, 1, 10),  # inside the repeated hour (02:10 CET)
            [utc(2026, 10, 25, 2), utc(2026, 10, 25, 2, 30)],
            id="after-in-repeated-hour-skips-its-earlier-candidates",
        ),
        pytest.param(
            "30 1 * * *",
            "America/New_York",
            utc(2026, 10, 31, 12),
            [utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30)],  # 01:30 EDT, then 01:30 EST
            id="new-york-fall-back",
        ),
        pytest.param(
            "15 2 * * *",
            "Australia/Lord_Howe",
            utc(2026, 10, 3, 12),
            [utc(2026, 10, 3, 15, 30)],  # 02:00 +10:30 → 02:30 +11: the half-hour gap's end
            id="lord-howe-half-hour-gap",
        ),
        pytest.param(
            "0 12 * * *",
            "Asia/Kolkata",
            utc(2026, 1, 1),
            [utc(2026, 1, 1, 6, 30), utc(2026, 1, 2, 6, 30)],
            id="fractional-offset",
        ),
        pytest.param(
            "cron(0 9 ? * MON-FRI *)",
            "UTC",
            utc(2026, 3, 6, 10),  # a Friday after 09:00
            [utc(2026, 3, 9, 9), utc(2026, 3, 10, 9)],
            id="eb-weekdays",
        ),
        pytest.param(
            "cron(0 9 ? * 1 *)",
            "UTC",
            utc(2026, 3, 2),
            [utc(2026, 3, 8, 9)],
            id="eb-1-is-a-sunday",
        ),
        pytest.param(
            "0 9 * * 1",
            "UTC",
            utc(2026, 3, 2, 10),
            [utc(2026, 3, 9, 9)],
            id="unix-1-is-a-monday",
        ),
        pytest.param(
            "cron(15 10 ? * 6L *)",
            "UTC",
            utc(2026, 3, 1),
            [utc(2026, 3, 27, 10, 15), utc(2026, 4, 24, 10, 15)],
            id="eb-last-friday",
        ),
        pytest.param(
            "cron(0 0 ? * 3#2 *)",
            "UTC",
            utc(2026, 3, 1),
            [utc(2026, 3, 10), utc(2026, 4, 14)],
            id="eb-second-tuesday",
        ),
        pytest.param(
            "cron(0 0 L * ? *)",
            "UTC",
            utc(2026, 2, 1),
            [utc(2026, 2, 28), utc(2026, 3, 31)],
            id="eb-last-day",
        ),
        pytest.param(
            "cron(0 0 1W * ? *)",
            "UTC",
            utc(2026, 2, 15),
            [utc(2026, 3, 2), utc(2026, 4, 1)],  # 2026-03-01 is a Sunday
            id="eb-nearest-weekday",
        ),
        pytest.param(
            "cron(0 0 1 1 ? 2030,2035)",
            "UTC",
            utc(2026, 6, 1),
            [utc(2030, 1, 1), utc(2035, 1, 1)],
            id="eb-years-skip-ahead",
        ),
        pytest.param(
            "cron(0 0 29 2 ? 2100-2104)",
            "UTC",
            utc(2026, 6, 1),
            [utc(2104, 2, 29)],  # 2100 is no leap year
            id="eb-years-leap",
        ),
    ],
)
def test_next_fires(expression: str, zone: str, after: datetime, expected: list[datetime]) -> None:
    assert fires(parse(expression, zone, ORIGIN), after, len(expected)) == expected


def test_no_tick_after_the_last_year() -> None:
    assert next_fire(parse("cron(0 0 1 1 ? 2030)", "UTC", ORIGIN), utc(2030, 1, 1)) is None


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        pytest.param(utc(2026, 1, 1), utc(2026, 3, 28, 12, 0, 7), id="before-origin:-origin"),
        pytest.param(utc(2026, 3, 28, 12, 0, 6), utc(2026, 3, 28, 12, 0, 7), id="just-before"),
        pytest.param(utc(2026, 3, 28, 12, 0, 7), utc(2026, 3, 29, 12, 0, 7), id="at-origin"),
        pytest.param(utc(2026, 3, 30), utc(2026, 3, 30, 12, 0, 7), id="24h-steps-across-dst"),
        pytest.param(utc(2027, 3, 28, 12, 0, 7), utc(2027, 3, 29, 12, 0, 7), id="a-year-on"),
    ],
)
def test_rate_ticks_are_anchored_at_the_origin(after: datetime, expected: datetime) -> None:
    timetable = parse("rate(1 day)", BERLIN, utc(2026, 3, 28, 12, 0, 7))
    assert next_fire(timetable, after) == expected


def test_cron_ticks_before_the_origin_do_not_exist() -> None:
    timetable = parse("0 12 * * *", "UTC", utc(2026, 5, 1, 12, 0, 30))
    assert next_fire(timetable, utc(2026, 4, 1)) == utc(2026, 5, 2, 12)
    assert next_fire(parse("0 12 * * *", "UTC", utc(2026, 5, 1, 12)), utc(2026, 4, 1)) == utc(
        2026, 5, 1, 12
    )


def test_results_do_not_depend_on_the_process_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    timetable = parse("30 2 * * *", BERLIN, ORIGIN)
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        assert next_fire(timetable, utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1)
    finally:
        monkeypatch.undo()
        time.tzset()


# -- missed ticks

EVERY_5 = parse("rate(5 minutes)", "UTC", utc(2026, 1, 1))
HOURLY = parse("rate(1 hour)", "UTC", utc(2026, 1, 1))
T = utc(2026, 1, 1, 12)  # a tick of both
SECOND = timedelta(seconds=1)


@pytest.mark.parametrize(
    ("timetable", "now", "last_fired", "expected"),
    [
        pytest.param(EVERY_5, T, T - 5 * MINUTE, Plan(T, T + 5 * MINUTE), id="on-time"),
        pytest.param(EVERY_5, T - MINUTE, T - 5 * MINUTE, Plan(None, T), id="between-ticks"),
        pytest.param(EVERY_5, T, T, Plan(None, T + 5 * MINUTE), id="already-fired"),
        pytest.param(
            EVERY_5, T + 4 * MINUTE, T - 5 * MINUTE, Plan(T, T + 5 * MINUTE), id="late-in-grace"
        ),
        pytest.param(
            EVERY_5,
            T + 3 * MINUTE,
            T - 20 * MINUTE,
            Plan(T, T + 5 * MINUTE, dropped_from=T - 15 * MINUTE),
            id="down-a-while:-the-latest-fires-older-are-dropped",
        ),
        pytest.param(
            EVERY_5,
            T + 60 * MINUTE + 30 * SECOND,
            T - 5 * MINUTE,
            Plan(T + 60 * MINUTE, T + 65 * MINUTE, dropped_from=T),
            id="down-an-hour:-one-catch-up-not-a-burst",
        ),
        pytest.param(
            EVERY_5, T + 7 * MINUTE, None, Plan(T + 5 * MINUTE, T + 10 * MINUTE), id="no-record"
        ),
        pytest.param(
            EVERY_5, T - 10 * MINUTE, T, Plan(None, T + 5 * MINUTE), id="clock-behind-the-record"
        ),
        pytest.param(
            HOURLY, T + 5 * MINUTE, T - 60 * MINUTE, Plan(T, T + 60 * MINUTE), id="grace-edge"
        ),
        pytest.param(
            HOURLY,
            T + 5 * MINUTE + SECOND,
            T - 60 * MINUTE,
            Plan(None, T + 60 * MINUTE, dropped_from=T),
            id="past-grace:-dropped",
        ),
        pytest.param(HOURLY, T + 6 * MINUTE, None, Plan(None, T + 60 * MINUTE), id="past-grace"),
        pytest.param(
            parse("rate(1 hour)", "UTC", T),
            T + 20 * SECOND,
            None,
            Plan(T, T + 60 * MINUTE),
            id="new-rate-fires-at-creation",
        ),
        pytest.param(
            parse("0 12 * * *", "UTC", T + 30 * SECOND),
            T + MINUTE,
            None,
            Plan(None, T + 24 * 60 * MINUTE),
            id="new-cron-ignores-ticks-before-creation",
        ),
        pytest.param(
            parse("cron(0 0 1 1 ? 2025)", "UTC", ORIGIN),
            T,
            utc(2025, 1, 1),
            Plan(None, None),
            id="schedule-ended",
        ),
    ],
)
def test_plan_fires_at_most_the_latest_tick_within_grace(
    timetable: Timetable, now: datetime, last_fired: datetime | None, expected: Plan
) -> None:
    assert plan(timetable, now=now, last_fired=last_fired, grace=GRACE) == expected


def test_plan_in_wall_time_across_fall_back() -> None:
    timetable = parse("*/15 * * * *", BERLIN, ORIGIN)
    # 02:50 CET, in the repeated hour: its ticks fired an hour ago, in CEST.
    now = utc(2026, 10, 25, 1, 50)
    assert plan(timetable, now=now, last_fired=utc(2026, 10, 25, 0, 45), grace=GRACE) == Plan(
        None, utc(2026, 10, 25, 2)
    )


POLICY = Policy()  # 3 attempts, 2 s then 4 s, within a 5 minute grace


@pytest.mark.parametrize(
    ("timetable", "policy", "attempts", "now", "expected"),
    [
        pytest.param(HOURLY, POLICY, 1, T, T + 2 * SECOND, id="first-retry-after-2s"),
        pytest.param(HOURLY, POLICY, 2, T + 3 * SECOND, T + 7 * SECOND, id="then-4s"),
        pytest.param(HOURLY, POLICY, 3, T + 8 * SECOND, None, id="three-attempts-then-give-up"),
        pytest.param(HOURLY, POLICY, 1, T + 4 * MINUTE + 59 * SECOND, None, id="past-grace"),
        pytest.param(
            HOURLY,
            Policy(attempts=10, max_backoff=timedelta(seconds=30)),
            8,
            T,
            T + 30 * SECOND,
            id="backoff-capped",
        ),
        pytest.param(
            parse("rate(1 minute)", "UTC", T),
            Policy(backoff=timedelta(seconds=40)),
            2,
            T + 10 * SECOND,
            None,
            id="next-tick-due-first-supersedes",
        ),
    ],
)
def test_retry_at(
    timetable: Timetable, policy: Policy, attempts: int, now: datetime, expected: datetime | None
) -> None:
    assert retry_at(timetable, policy, tick=T, attempts=attempts, now=now) == expected


# -- the event

RULE = Rule("team", "nightly")


def test_scheduled_event_has_eventbridges_shape() -> None:
    tick = utc(2015, 10, 8, 16, 53, 6)
    assert scheduled_event(RULE, tick) == {
        "version": "0",
        "id": event_id(RULE, tick),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": "2015-10-08T16:53:06Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:000000000000:rule/team-nightly"],
        "detail": {},
    }
    assert json.loads(event_payload(RULE, tick)) == scheduled_event(RULE, tick)


def test_time_is_utc_and_region_is_the_rules() -> None:
    event = scheduled_event(Rule("team", "nightly", "eu-central-1"), local(BERLIN, 2026, 7, 1, 2))
    assert event["time"] == "2026-07-01T00:00:00Z"
    assert event["region"] == "eu-central-1"
    assert event["resources"] == ["arn:aws:events:eu-central-1:000000000000:rule/team-nightly"]


def test_event_id_is_a_uuid_deterministic_per_rule_and_tick() -> None:
    import uuid

    tick = utc(2026, 1, 1, 12)
    same = event_id(RULE, tick.astimezone(ZoneInfo(BERLIN)))
    assert uuid.UUID(same).version == 5
    assert event_id(RULE, tick) == same  # a re-fire after a crash, on any replica
    assert event_id(RULE, tick + SECOND) != same
    assert event_id(Rule("team", "hourly"), tick) != same
    assert event_id(Rule("other", "nightly"), tick) != same
