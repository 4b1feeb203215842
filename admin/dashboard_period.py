"""The dashboard's date range: the operator picks shop-local days, the shop's figures follow.

Why apart from admin/dashboard.py: that module draws the fixed today / 30-day cards and the
charts from the JSON; this one reads the range the operator typed (bad input gets a clear
message and the default range, never a 500), and asks `bot.agents.kpi_shop` for the figures in
shop terms (咨询人数, 自助解决率, 转人工率, first response, CSAT) and the hour-of-day bars.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta
from typing import Any, Mapping

from flask_babel import gettext

from bot.agents import kpi_shop
from bot.core import clock, settings

DEFAULT_DAYS = 7


def _day(text: str | None) -> date | None:
    if not text:
        return None
    try:
        day = date.fromisoformat(text.strip())
    except ValueError:
        day = None
    if day is None or not 2000 <= day.year <= 2100:  # far years overflow the zone conversion
        raise ValueError(gettext("日期格式应为 年-月-日，例如 2026-12-01"))
    return day


def period(args: Mapping[str, str]) -> dict[str, Any]:
    """Figures for the range in `args` (`from`, `to`: YYYY-MM-DD, shop days, both included;
    default the last 7 days up to today), JSON-ready; `error` says why the typed range was
    not used."""
    zone = settings.shop_zone()
    today = clock.now().astimezone(zone).date()
    default = (today - timedelta(days=DEFAULT_DAYS - 1), today)
    error = ""
    try:
        first = _day(args.get("from")) or default[0]
        last = _day(args.get("to")) or today
        start, end = kpi_shop.local_range(first, last, zone)
    except ValueError as exc:  # a date that does not parse, or a range kpi_shop refuses
        if isinstance(exc, kpi_shop.RangeError):
            error = (gettext("结束日期早于开始日期") if exc.reason == "backwards"
                     else gettext("日期范围最长 %(n)s 天") % {"n": kpi_shop.MAX_DAYS})
        else:
            error = str(exc)
        first, last = default
        start, end = kpi_shop.local_range(first, last, zone)
    hours = kpi_shop.hours_of_day(start, end, zone)
    peak = max(hours) or 1
    return {
        "from": first.isoformat(), "to": last.isoformat(), "timezone": str(zone), "error": error,
        "figures": asdict(kpi_shop.figures(start, end)),
        "hours": [{"hour": h, "count": n, "percent": round(100 * n / peak, 1)} for h, n in enumerate(hours)],
    }
