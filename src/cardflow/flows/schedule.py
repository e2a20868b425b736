"""When a scheduled flow fires: 5-field cron in a time zone, or a fixed interval.

Cron times come from cronsim, which handles daylight-saving changes as Debian's cron does:
a time skipped when clocks go forward fires right after the gap, and a fixed time that
happens twice when clocks go back fires once (an hourly or more frequent schedule fires
every real hour). ``every`` counts from ``start`` (or from the Unix epoch), so every
process computes the same instants.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

_EVERY = re.compile(r"^\s*(\d{1,9})\s*(s|m|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_EVERY = timedelta(seconds=1)
MAX_EVERY = timedelta(days=366)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How far back a schedule looks for fires it missed (while no worker ran).
LOOKBACK = timedelta(days=7)
# A fire due longer ago than this was missed (nothing ticked): with catch-up the latest of
# such fires runs once, without it they are skipped. Younger ones each run.
ON_TIME = timedelta(seconds=60)


def parse_every(text: str) -> timedelta:
    """``30s``, ``5m``, ``2h``, ``1d`` → a duration (ValueError saying what is expected)."""
    match = _EVERY.match(text)
    if match is None:
        raise ValueError("every takes a number and a unit: 30s, 5m, 2h or 1d")
    interval = timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    if not MIN_EVERY <= interval <= MAX_EVERY:
        raise ValueError("every must be between 1s and 366d")
    return interval


def check_cron(expression: str) -> str:
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            "cron takes 5 fields: minute hour day-of-month month day-of-week "
            f'(e.g. "*/5 * * * *"); this has {len(fields)}'
        )
    try:
        CronSim(" ".join(fields), datetime(2000, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        raise ValueError(f"not a valid cron expression ({exc})") from None
    return " ".join(fields)


def check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name: Europe/Paris)") from None
    return name


@dataclass(frozen=True)
class Schedule:
    cron: str | None = None
    every: timedelta | None = None
    timezone: str = "UTC"
    start: datetime | None = None
    end: datetime | None = None

    def fires_after(self, after: datetime) -> Iterator[datetime]:
        """Fire times strictly after ``after`` (UTC, aware), in order, within start/end."""
        if self.start is not None and after < self.start:
            after = self.start - timedelta(microseconds=1)
        if self.every is not None:
            anchor = self.start or _EPOCH
            steps = (after - anchor) // self.every + 1
            moment = anchor + steps * self.every
            while self.end is None or moment <= self.end:
                yield moment
                moment += self.every
            return
        assert self.cron is not None
        local = after.astimezone(ZoneInfo(self.timezone))
        for moment in CronSim(self.cron, local):
            fire = moment.astimezone(UTC)
            if fire <= after:
                continue
            if self.end is not None and fire > self.end:
                return
            yield fire

    def next_fires(self, now: datetime, count: int) -> list[datetime]:
        found = []
        for fire in self.fires_after(now):
            found.append(fire)
            if len(found) == count:
                break
        return found

    def latest(self, last: datetime, now: datetime) -> datetime | None:
        """The latest fire time after ``last`` and at or before ``now`` (None: none)."""
        after = max(last, now - LOOKBACK)
        if self.every is not None:
            anchor = self.start or _EPOCH
            if now < anchor:
                return None
            moment = anchor + ((now - anchor) // self.every) * self.every
            if self.end is not None and moment > self.end:
                moment = anchor + ((self.end - anchor) // self.every) * self.every
            return moment if moment > after else None
        latest = None
        for fire in self.fires_after(after):
            if fire > now:
                break
            latest = fire
        return latest

    def due(self, last: datetime, now: datetime) -> tuple[datetime | None, list[datetime]]:
        """What is due since ``last`` (the last fire handled): the latest of the fires
        missed long ago (more than a minute: nothing ticked meanwhile) — run once on
        recovery, or skipped without catch-up —, and each fire of the last minute (a tick
        a little late still runs every one of them)."""
        recent = now - ON_TIME
        missed = self.latest(last, recent) if last < recent else None
        on_time = []
        for fire in self.fires_after(max(last, recent)):
            if fire > now:
                break
            on_time.append(fire)
        return missed, on_time
