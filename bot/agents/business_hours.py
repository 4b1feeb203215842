"""Business hours: a weekly schedule with holidays, in the shop's timezone.

Why: outside these hours a handoff request is queued with an honest message saying when
humans are back, instead of a promise nobody keeps.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from bot.core import settings

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES_ZH = {"mon": "周一", "tue": "周二", "wed": "周三", "thu": "周四", "fri": "周五", "sat": "周六", "sun": "周日"}


def _parse(hhmm: str) -> time:
    hours, minutes = hhmm.split(":")
    return time(int(hours) % 24, int(minutes))


def is_open(when: datetime, schedule: Mapping[str, Any]) -> bool:
    if schedule.get("always_open"):
        return True
    local = when.astimezone(_zone(schedule))
    if local.date().isoformat() in set(schedule.get("holidays") or ()):
        return False
    window = (schedule.get("weekly") or {}).get(DAYS[local.weekday()])
    if not window:
        return False
    now = local.hour * 60 + local.minute
    return _minutes(window[0]) <= now < _minutes(window[1])


def _minutes(hhmm: str) -> int:
    """Minutes since midnight; "24:00" is the end of the day."""
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def _zone(schedule: Mapping[str, Any]) -> ZoneInfo:
    return settings.zone_named(schedule.get("timezone"))


def next_open(when: datetime, schedule: Mapping[str, Any], horizon_days: int = 60) -> datetime | None:
    """When humans are next available: `when` itself if open now, else the next opening
    (local, aware), skipping holidays; None when nothing opens within `horizon_days`."""
    if is_open(when, schedule):
        return when
    zone = _zone(schedule)
    local = when.astimezone(zone)
    holidays = set(schedule.get("holidays") or ())
    weekly = schedule.get("weekly") or {}
    for offset in range(horizon_days + 1):
        day = local.date() + timedelta(days=offset)
        window = weekly.get(DAYS[day.weekday()])
        if not window or day.isoformat() in holidays:
            continue
        start = datetime.combine(day, _parse(window[0]), tzinfo=zone)
        if start > local:
            return start
    return None


def describe_next_open(when: datetime, schedule: Mapping[str, Any]) -> str:
    """The next opening in words, e.g. 今天 09:00 / 明天 09:00 / 10月3日（周五）09:00."""
    opening = next_open(when, schedule)
    if opening is None:
        return "另行通知"
    local_now = when.astimezone(opening.tzinfo)
    days = (opening.date() - local_now.date()).days
    clock_text = opening.strftime("%H:%M")
    if days == 0:
        return f"今天 {clock_text}"
    if days == 1:
        return f"明天 {clock_text}"
    return f"{opening.month}月{opening.day}日（{DAY_NAMES_ZH[DAYS[opening.weekday()]]}）{clock_text}"


def describe(schedule: Mapping[str, Any]) -> str:
    """A short Chinese description, e.g. 周一至周五 09:00-22:00，周六 10:00-18:00."""
    parts: list[str] = []
    weekly = schedule.get("weekly") or {}
    run: list[str] = []
    prev: tuple[str, str] | None = None

    def flush() -> None:
        if run and prev:
            label = DAY_NAMES_ZH[run[0]] if len(run) == 1 else f"{DAY_NAMES_ZH[run[0]]}至{DAY_NAMES_ZH[run[-1]]}"
            parts.append(f"{label} {prev[0]}-{prev[1]}")

    for day in DAYS:
        window = tuple(weekly.get(day) or ())
        if window and window == prev:
            run.append(day)
            continue
        flush()
        run, prev = ([day], window) if window else ([], None)  # type: ignore[assignment]
    flush()
    return "，".join(parts) or "暂无"
