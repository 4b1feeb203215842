"""Business hours: a weekly schedule with holidays, in the shop's timezone.

Why: outside these hours a handoff request is queued with an honest message saying when
humans are back, instead of a promise nobody keeps.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any, Mapping
from zoneinfo import ZoneInfo

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_NAMES_ZH = {"mon": "周一", "tue": "周二", "wed": "周三", "thu": "周四", "fri": "周五", "sat": "周六", "sun": "周日"}


def _parse(hhmm: str) -> time:
    hours, minutes = hhmm.split(":")
    return time(int(hours) % 24, int(minutes))


def is_open(when: datetime, schedule: Mapping[str, Any]) -> bool:
    if schedule.get("always_open"):
        return True
    local = when.astimezone(ZoneInfo(schedule.get("timezone") or "Asia/Shanghai"))
    if local.date().isoformat() in set(schedule.get("holidays") or ()):
        return False
    window = (schedule.get("weekly") or {}).get(DAYS[local.weekday()])
    if not window:
        return False
    start, end = _parse(window[0]), _parse(window[1])
    return start <= local.time() < end


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
