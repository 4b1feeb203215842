"""When a campaign repeats: crontab lines read as crontab reads them, and the repeat in words
(每周一 10:00) the panel writes and shows.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from bot.campaigns.targets import CampaignError
from bot.core import settings

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab's 0..6 (and 7 = sun)


def _crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field with APScheduler's meaning: crontab counts 0 (and 7) as
    Sunday, APScheduler's CronTrigger 0 as Monday, so `from_crontab("0 20 * * 5")` fired on
    Saturday. Numbers, ranges and steps become an explicit list of day names, which both
    read alike; names and `*` pass through."""
    if not re.search(r"\d", field):
        return field
    days: list[int] = []
    for part in field.split(","):
        base, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if base == "*":
            first, last = 0, 6
        elif "-" in base:
            low, high = base.split("-", 1)
            first, last = _weekday_number(low), _weekday_number(high)
        else:
            first = _weekday_number(base)
            last = 6 if step_text else first
        if step < 1 or first > last:
            raise ValueError(f"day of week: {part!r}")
        days.extend(day % 7 for day in range(first, last + 1, step))
    return ",".join(_WEEKDAY_NAMES[day] for day in sorted(set(days)))


def _weekday_number(text: str) -> int:
    text = text.strip().lower()
    if text.isdigit() and int(text) <= 7:
        return int(text)
    if text[:3] in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES.index(text[:3])
    raise ValueError(f"day of week: {text!r}")


def crontab_trigger(cron: str, tz: Any) -> "CronTrigger":
    """APScheduler's trigger for a five-field crontab line, read as crontab reads it (the
    weekday numbers included: see `_crontab_weekdays`)."""
    from apscheduler.triggers.cron import CronTrigger

    fields = cron.split()
    if len(fields) != 5:
        raise ValueError(f"a crontab line has 5 fields, got {len(fields)}")
    minute, hour, day, month, weekday = fields
    return CronTrigger(minute=minute, hour=hour, day=day, month=month,
                       day_of_week=_crontab_weekdays(weekday), timezone=tz)


def check_cron(cron: str) -> None:
    if len(cron.split()) != 5:
        raise CampaignError(f"定时表达式应为 5 段（分 时 日 月 周）：{cron}")
    try:
        crontab_trigger(cron, settings.shop_zone())
    except ValueError as exc:
        raise CampaignError(f"定时表达式有误：{cron}（{exc}）") from None


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAY_NAMES = dict(zip(WEEKDAYS, "一二三四五六日"))
REPEATS = ("", "daily", "weekly", "monthly")


def repeat_cron(every: str, at: str, weekday: str = "mon", day: int = 1) -> str:
    """A repeat in words as a crontab line: every day / week (on weekday) / month (on day) at
    HH:MM. Weekdays are written as names: APScheduler reads a number 0 as Monday, crontab as
    Sunday, and a name means the same to both."""
    if not every:
        return ""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", (at or "").strip())
    if match is None:
        raise CampaignError(f"重复发送的时间应为 时:分（如 10:00）：{at}")
    hour, minute = int(match.group(1)), int(match.group(2))
    if every == "daily":
        return f"{minute} {hour} * * *"
    if every == "weekly":
        if weekday not in WEEKDAYS:
            raise CampaignError(f"星期应为 mon-sun：{weekday}")
        return f"{minute} {hour} * * {weekday}"
    if every == "monthly":
        if not 1 <= int(day) <= 28:
            raise CampaignError(f"每月的日期应为 1-28（每个月都有的日子）：{day}")
        return f"{minute} {hour} {int(day)} * *"
    raise CampaignError(f"未知的重复方式：{every}")


def parse_repeat(cron: str) -> dict[str, Any] | None:
    """The repeat in words that `repeat_cron` wrote as `cron`, or None for any other line
    (an advanced cron): {"every", "at", "weekday", "day"}."""
    parts = (cron or "").split()
    if len(parts) != 5 or not parts[0].isdigit() or not parts[1].isdigit() or parts[3] != "*":
        return None
    at = f"{int(parts[1]):02d}:{int(parts[0]):02d}"
    if parts[2] == "*" and parts[4] == "*":
        return {"every": "daily", "at": at, "weekday": "mon", "day": 1}
    if parts[2] == "*" and parts[4] in WEEKDAYS:
        return {"every": "weekly", "at": at, "weekday": parts[4], "day": 1}
    if parts[2].isdigit() and parts[4] == "*":
        return {"every": "monthly", "at": at, "weekday": "mon", "day": int(parts[2])}
    return None


def describe_cron(cron: str) -> str:
    """A repeat as a shop operator says it: 每周一 10:00, 每天 09:30, 每月 1 日 20:00; any
    other line is shown as it is written, marked as cron."""
    if not cron:
        return ""
    repeat = parse_repeat(cron)
    if repeat is None:
        return f"cron：{cron}"
    if repeat["every"] == "daily":
        return f"每天 {repeat['at']}"
    if repeat["every"] == "weekly":
        return f"每周{WEEKDAY_NAMES[repeat['weekday']]} {repeat['at']}"
    return f"每月 {repeat['day']} 日 {repeat['at']}"
