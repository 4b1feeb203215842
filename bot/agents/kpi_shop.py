"""The shop's figures for a date range: people, self-service, handoffs, first response, CSAT.

Why a module of its own: `bot.agents.kpi` judges agents on their stints; a shop owner reads the
period the other way round (issue 25) — how many people asked (咨询人数), how many
conversations the bot closed without a human (自助解决率), how many went to a human (转人工率),
how long a handed-off customer waited for the first human word, how satisfied they were, and
at which hours people write. Every figure is an SQL aggregate (COUNT, SUM, AVG, the rows at
the percentiles' ranks by window functions), so a range over 100,000 conversations costs a
few indexed queries, never a loop over rows in Python. Spam customers (`Customer.is_spam`) are left out of every figure.

Definitions, for the range [start, end) (`local_range` turns shop-local days into one):
- customers (咨询人数): distinct customers who sent a message (not an event) in the range;
- conversations: conversations opened in the range; the figures below are over these;
- closed: of those, resolved; self_served: resolved without a human (never queued, never
  assigned, no handoff reason); self_service_rate (自助解决率) = self_served / closed;
- handed_off: reached the queue or an agent; handoff_rate (转人工率) = handed_off / conversations;
- first response (首次响应): from the handoff (queued, else assigned) to the first agent reply,
  median and 90th percentile (nearest rank, as `bot.agents.kpi.percentile`), over answered ones;
- csat (满意度): mean 1-5 rating and how many rated;
- hours: customer messages per shop-local hour of day (0-23).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from bot.core.db import execute, is_postgres

MAX_DAYS = 366  # a range longer than a year is refused: the hour chart groups by UTC hour


class RangeError(ValueError):
    """A range the figures are not computed for; `reason` is "backwards" or "too_long"."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ShopFigures:
    customers: int
    conversations: int
    closed: int
    self_served: int
    self_service_rate: float | None
    handed_off: int
    handoff_rate: float | None
    first_response_answered: int
    first_response_median_seconds: float | None
    first_response_p90_seconds: float | None
    csat: float | None
    rated: int


def local_range(first_day: date, last_day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """[start of first_day, end of last_day) in the shop's zone, as aware datetimes."""
    if last_day < first_day:
        raise RangeError("backwards", "the range ends before it starts")
    if (last_day - first_day).days + 1 > MAX_DAYS:
        raise RangeError("too_long", f"a range is at most {MAX_DAYS} days")
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=zone)
    end = datetime(last_day.year, last_day.month, last_day.day, tzinfo=zone) + timedelta(days=1)
    return start, end


def _stamp(when: datetime) -> Any:
    """A bound parameter as `UTCDateTimeField` stores it (naive UTC text on SQLite)."""
    utc = when.astimezone(timezone.utc)
    return utc.replace(tzinfo=None) if is_postgres() else utc.strftime("%Y-%m-%d %H:%M:%S.%f")


def _seconds_between(later: str, earlier: str) -> str:
    """SQL for `later - earlier` in seconds."""
    if is_postgres():
        return f"EXTRACT(EPOCH FROM ({later} - {earlier}))"
    return f"((julianday({later}) - julianday({earlier})) * 86400.0)"


def utc_hour(column: str) -> str:
    """SQL for a stored time's UTC hour as text 'YYYY-MM-DD HH'."""
    if is_postgres():
        return f"to_char({column}, 'YYYY-MM-DD HH24')"
    return f"substr({column}, 1, 13)"


# spam customers are few: the set is built once per query, instead of a join per row
NOT_SPAM = '"customer_id" NOT IN (SELECT "id" FROM "customer" WHERE "is_spam")'


def customers_who_wrote(start: datetime, end: datetime) -> int:
    row = execute(
        'SELECT COUNT(DISTINCT m."customer_id") FROM "message" m '
        'WHERE m."direction" = \'in\' AND m."author" = \'customer\' AND m."kind" <> \'event\' '
        f'AND m."created_at" >= ? AND m."created_at" < ? AND m.{NOT_SPAM}',
        (_stamp(start), _stamp(end))).fetchone()
    return int(row[0] or 0)


HUMAN = ('(v."queued_at" IS NOT NULL OR v."assigned_at" IS NOT NULL OR v."handoff_reason" <> \'\')')
IN_RANGE = f'v."opened_at" >= ? AND v."opened_at" < ? AND v.{NOT_SPAM}'
FROM = 'FROM "conversation" v'


def _conversation_counts(start: datetime, end: datetime) -> tuple[int, int, int, int, float | None, int]:
    row = execute(
        f'SELECT COUNT(*), '
        f'SUM(CASE WHEN v."status" = \'resolved\' THEN 1 ELSE 0 END), '
        f'SUM(CASE WHEN v."status" = \'resolved\' AND NOT {HUMAN} THEN 1 ELSE 0 END), '
        f'SUM(CASE WHEN {HUMAN} THEN 1 ELSE 0 END), '
        f'AVG(v."satisfaction"), COUNT(v."satisfaction") '
        f'{FROM} WHERE {IN_RANGE}', (_stamp(start), _stamp(end))).fetchone()
    opened, closed, self_served, human, csat, rated = row
    return (int(opened or 0), int(closed or 0), int(self_served or 0), int(human or 0),
            None if csat is None else round(float(csat), 2), int(rated or 0))


def _first_response(start: datetime, end: datetime) -> tuple[int, float | None, float | None]:
    """(answered, median, p90) of the wait from handoff to the first agent reply, in one
    sorted pass: each wait's rank and the count by window functions, and only the two rows
    at the nearest ranks (ceil(n * pct / 100), in integers) come back."""
    wait = _seconds_between('v."first_response_at"', 'COALESCE(v."queued_at", v."assigned_at")')
    where = (f'{IN_RANGE} AND v."first_response_at" IS NOT NULL '
             'AND COALESCE(v."queued_at", v."assigned_at") IS NOT NULL')
    rows = execute(
        f'SELECT n, r, w FROM (SELECT {wait} AS w, ROW_NUMBER() OVER (ORDER BY {wait}) AS r, COUNT(*) OVER () AS n '
        f'{FROM} WHERE {where}) ranked WHERE r = (n * 50 + 99) / 100 OR r = (n * 90 + 99) / 100',
        (_stamp(start), _stamp(end))).fetchall()
    if not rows:
        return 0, None, None
    answered = int(rows[0][0])
    at_rank = {int(r): round(max(float(w), 0.0), 1) for _, r, w in rows}
    return answered, at_rank[(answered * 50 + 99) // 100], at_rank[(answered * 90 + 99) // 100]


def figures(start: datetime, end: datetime) -> ShopFigures:
    """The shop's figures for [start, end) (see the module's definitions)."""
    opened, closed, self_served, human, csat, rated = _conversation_counts(start, end)
    answered, median, p90 = _first_response(start, end)
    return ShopFigures(
        customers=customers_who_wrote(start, end), conversations=opened, closed=closed, self_served=self_served,
        self_service_rate=_ratio(self_served, closed), handed_off=human, handoff_rate=_ratio(human, opened),
        first_response_answered=answered, first_response_median_seconds=median, first_response_p90_seconds=p90,
        csat=csat, rated=rated)


def hours_of_day(start: datetime, end: datetime, zone: ZoneInfo) -> list[int]:
    """Customer messages per shop-local hour (index 0-23) in [start, end): counted per UTC
    hour in the database (at most 24 rows a day come back), then put into local hours, so a
    zone with half-hour offsets or summer time is still right to the hour it is stored in."""
    column = utc_hour('m."created_at"')
    counts = [0] * 24
    rows = execute(
        f'SELECT {column} AS h, COUNT(*) FROM "message" m '
        'WHERE m."direction" = \'in\' AND m."author" = \'customer\' AND m."kind" <> \'event\' '
        f'AND m."created_at" >= ? AND m."created_at" < ? AND m.{NOT_SPAM} GROUP BY h',
        (_stamp(start), _stamp(end))).fetchall()
    for stamp, count in rows:
        when = datetime.strptime(str(stamp), "%Y-%m-%d %H").replace(tzinfo=timezone.utc)
        counts[when.astimezone(zone).hour] += int(count)
    return counts


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
