"""Schedules: cron in a time zone (daylight saving as Debian's cron), fixed intervals,
start/end, catch-up, and the trigger's validation naming the field."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest

from cardflow.errors import InvalidInput
from cardflow.flows.model import FlowDocument
from cardflow.flows.schedule import Schedule, check_cron, parse_every
from cardflow.validation import validate

PARIS = "Europe/Paris"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def iso(moments: list[datetime]) -> list[str]:
    return [moment.isoformat() for moment in moments]


def test_every_parses_units_and_bounds() -> None:
    assert parse_every("30s") == timedelta(seconds=30)
    assert parse_every("5m") == timedelta(minutes=5)
    assert parse_every(" 2h ") == timedelta(hours=2)
    assert parse_every("1d") == timedelta(days=1)
    for bad in ("0s", "367d", "5", "5 minutes", "-1s", "1.5m"):
        with pytest.raises(ValueError):
            parse_every(bad)


def test_cron_takes_five_valid_fields() -> None:
    assert check_cron("*/5  *  * * *") == "*/5 * * * *"
    with pytest.raises(ValueError, match="5 fields"):
        check_cron("* * * * * *")
    with pytest.raises(ValueError, match="not a valid cron"):
        check_cron("61 * * * *")


def test_a_daily_time_when_clocks_go_back_fires_once() -> None:
    daily = Schedule(cron="30 2 * * *", timezone=PARIS)
    # 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice; cron runs it once.
    assert iso(daily.next_fires(utc(2026, 10, 24, 12), 3)) == [
        "2026-10-25T00:30:00+00:00",
        "2026-10-26T01:30:00+00:00",
        "2026-10-27T01:30:00+00:00",
    ]


def test_an_hourly_schedule_fires_every_real_hour_when_clocks_go_back() -> None:
    hourly = Schedule(cron="0 * * * *", timezone=PARIS)
    fires = hourly.next_fires(utc(2026, 10, 24, 22, 30), 5)
    assert [b - a for a, b in pairwise(fires)] == [timedelta(hours=1)] * 4


def test_a_time_skipped_when_clocks_go_forward_fires_right_after_the_gap() -> None:
    daily = Schedule(cron="30 2 * * *", timezone=PARIS)
    # 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that day.
    assert iso(daily.next_fires(utc(2026, 3, 28, 12), 2)) == [
        "2026-03-29T01:00:00+00:00",  # 03:00 CEST
        "2026-03-30T00:30:00+00:00",  # 02:30 CEST
    ]


def test_every_counts_from_start_and_stops_at_end() -> None:
    start = utc(2026, 12, 1, 9, 0, 7)
    schedule = Schedule(every=timedelta(minutes=10), start=start, end=start + timedelta(minutes=25))
    assert schedule.next_fires(utc(2026, 11, 1), 5) == [
        start,
        start + timedelta(minutes=10),
        start + timedelta(minutes=20),
    ]
    # the same instants whatever "now" each process asks at
    assert schedule.next_fires(start + timedelta(minutes=3), 1) == [start + timedelta(minutes=10)]


def test_fires_of_the_last_minute_each_run_older_ones_once() -> None:
    every = Schedule(every=timedelta(seconds=2))
    now = utc(2026, 12, 2, 6, 10, 0)
    # a tick 5 s late: each fire since the last one handled is due
    assert every.due(now - timedelta(seconds=6), now) == (
        None,
        [now - timedelta(seconds=4), now - timedelta(seconds=2), now],
    )
    assert every.due(now, now) == (None, [])  # already handled
    # nothing ticked for 10 minutes: the latest fire missed long ago (once), then the last
    # minute's fires each
    missed, on_time = every.due(now - timedelta(minutes=10), now)
    assert missed == now - timedelta(seconds=60)
    assert on_time[0] == now - timedelta(seconds=58) and on_time[-1] == now
    assert len(on_time) == 30
    cron = Schedule(cron="*/5 * * * *", timezone=PARIS)
    assert cron.latest(utc(2026, 12, 2, 6, 0), utc(2026, 12, 2, 6, 23)) == utc(2026, 12, 2, 6, 20)
    assert cron.due(utc(2026, 12, 2, 6, 0), utc(2026, 12, 2, 6, 23)) == (
        utc(2026, 12, 2, 6, 20),
        [],
    )
    assert cron.due(utc(2026, 12, 2, 6, 0), utc(2026, 12, 2, 6, 20, 30)) == (
        utc(2026, 12, 2, 6, 15),
        [utc(2026, 12, 2, 6, 20)],
    )


@pytest.mark.parametrize(
    ("trigger", "field", "words"),
    [
        ({"type": "schedule", "cron": "* * *"}, "flow.trigger.cron", "5 fields"),
        ({"type": "schedule", "every": "5x"}, "flow.trigger.every", "30s, 5m"),
        (
            {"type": "schedule", "every": "5m", "timezone": "Mars/Base"},
            "flow.trigger.timezone",
            "IANA",
        ),
        ({"type": "schedule"}, "flow.trigger", "either cron or every"),
        ({"type": "schedule", "cron": "* * * * *", "every": "1m"}, "flow.trigger", "not both"),
        ({"type": "manual", "every": "5m"}, "flow.trigger", "belong to a schedule"),
        (
            {"type": "schedule", "every": "5m", "start": "2026-12-01T09:00:00"},
            "flow.trigger.start",
            "time zone offset",
        ),
        (
            {
                "type": "schedule",
                "every": "5m",
                "start": "2026-12-02T09:00:00Z",
                "end": "2026-12-01T09:00:00Z",
            },
            "flow.trigger",
            "end must come after start",
        ),
    ],
)
def test_a_bad_schedule_names_its_field(trigger: dict[str, str], field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate(FlowDocument, {"name": "s", "trigger": trigger}, "flow")
    assert caught.value.field == field
    assert words in caught.value.message


def test_a_trigger_shows_only_the_schedule_fields_it_uses() -> None:
    def shown(trigger: dict[str, str]) -> dict[str, object]:
        document = FlowDocument.model_validate({"name": "s", "trigger": trigger})
        dumped: dict[str, object] = document.model_dump(mode="json")["trigger"]
        return dumped

    assert shown({"type": "api_endpoint", "alias": "a"}) == {
        "type": "api_endpoint",
        "alias": "a",
        "security": "client_token",
    }
    scheduled = shown({"type": "schedule", "cron": "0 9 * * 1"})
    assert {k: scheduled[k] for k in ("cron", "timezone", "catch_up")} == {
        "cron": "0 9 * * 1",
        "timezone": "UTC",  # what it runs with, shown
        "catch_up": True,
    }
    assert "every" not in scheduled and "start" not in scheduled
