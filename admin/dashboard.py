"""The dashboard's figures: today and the last 30 days, overall and per agent.

Why computed here from the rows: the figures a shop manager reads at a glance (messages in,
bot answer rate, handoffs, queue now, first response time, reply rate, satisfaction) are all
derivable from Message and UnansweredQuestion (the bot's side) and from `bot.agents.kpi` (the
agents' side: first response, reply rate, satisfaction, per agent, from the assignment log,
so a conversation that passed through two agents counts for both). Days are the shop's
local days (the business-hours timezone).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import peewee
from peewee import SQL

from bot.agents import kpi
from bot.core import clock, settings
from bot.core.db import is_postgres
from bot.core.models import Conversation, Message, UnansweredQuestion

DAYS = 30


@dataclass(frozen=True)
class Figures:
    messages_in: int
    bot_answered: int
    bot_abstained: int
    answer_rate: float | None  # bot answers / questions the bot had to answer
    handoffs: int
    first_response_seconds: float | None  # mean, from assignment to the agent's first reply
    reply_rate: float | None  # agent stints in which the agent replied
    satisfaction: float | None  # mean 1..5
    rated: int


shop_zone = settings.shop_zone  # the dashboard's days are the shop's


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def figures(start: datetime, end: datetime) -> Figures:
    """Figures for [start, end)."""
    in_range = lambda field: (field >= start) & (field < end)  # noqa: E731
    messages_in = Message.select().where(
        (Message.direction == "in") & (Message.author == "customer") & in_range(Message.created_at)).count()
    answered = Message.select().where(
        (Message.direction == "out") & (Message.author == "bot") & Message.faq.is_null(False)
        & in_range(Message.created_at)).count()
    abstained = UnansweredQuestion.select().where(
        (UnansweredQuestion.reason == "abstained") & in_range(UnansweredQuestion.created_at)).count()
    handoffs = Conversation.select().where(
        (Conversation.handoff_reason != "") & in_range(Conversation.opened_at)).count()
    agents = kpi.summarize(kpi.stints(start, end))
    return Figures(
        messages_in=messages_in, bot_answered=answered, bot_abstained=abstained,
        answer_rate=_ratio(answered, answered + abstained), handoffs=handoffs,
        first_response_seconds=agents.first_response_seconds, reply_rate=agents.reply_rate,
        satisfaction=agents.satisfaction, rated=agents.rated,
    )


def _local_day_start(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def _hour(field: peewee.Field) -> Any:
    """The UTC hour of a stored time, as SQL (text 'YYYY-MM-DD HH' on SQLite)."""
    if is_postgres():
        return peewee.fn.to_char(field, "YYYY-MM-DD HH24").coerce(False)
    return peewee.fn.substr(field, 1, 13).coerce(False)


def _daily(query: peewee.ModelSelect, field: peewee.Field, days: list[date], zone: ZoneInfo,
           distinct: peewee.Field | None = None) -> list[int]:
    """Rows (or distinct values of `distinct`) per shop-local day: counted per UTC hour in the
    database (at most 24 x 30 rows come back, however busy the shop), then the hours are put
    into local days. Distinct values must not span hours (a value is one moment)."""
    index = {d: i for i, d in enumerate(days)}
    counts = [0] * len(days)
    hour = _hour(field)
    counted = peewee.fn.COUNT(SQL("*")) if distinct is None else peewee.fn.COUNT(distinct.distinct())
    for stamp, count in query.select(hour, counted).group_by(hour).tuples():
        when = datetime.strptime(str(stamp), "%Y-%m-%d %H").replace(tzinfo=timezone.utc)
        i = index.get(when.astimezone(zone).date())
        if i is not None:
            counts[i] += count
    return counts


def _last_days(days: int) -> tuple[ZoneInfo, list[date], datetime]:
    """The shop's zone, its last `days` local days (oldest first) and when the first began."""
    zone = shop_zone()
    today = clock.now().astimezone(zone).date()
    dates = [today - timedelta(days=days - 1 - i) for i in range(days)]
    return zone, dates, _local_day_start(dates[0], zone)


def _bot_answers(start: datetime) -> peewee.ModelSelect:
    """The bot's FAQ answers since `start`."""
    return Message.select().where(
        (Message.direction == "out") & (Message.author == "bot") & Message.faq.is_null(False)
        & (Message.created_at >= start))


def series(days: int = DAYS) -> dict[str, Any]:
    """Per-day counts for the charts, oldest day first."""
    zone, dates, start = _last_days(days)
    msgs_in = Message.select().where(
        (Message.direction == "in") & (Message.author == "customer") & (Message.created_at >= start))
    answered = _bot_answers(start)
    handoffs = Conversation.select().where((Conversation.handoff_reason != "") & (Conversation.opened_at >= start))
    return {
        "labels": [d.strftime("%m-%d") for d in dates],
        "messages_in": _daily(msgs_in, Message.created_at, dates, zone),
        "bot_answered": _daily(answered, Message.created_at, dates, zone),
        "handoffs": _daily(handoffs, Conversation.opened_at, dates, zone),
    }


def learning_series(days: int = DAYS) -> dict[str, Any]:
    """What the learning loop did per shop-local day, oldest first: the questions the bot left
    unanswered that day; the groups and the questions an operator handled that day (taught as
    a phrasing or an FAQ, or dismissed: one action is one group, its rows share their
    `resolved_at`), whenever they were asked; and the share of that day's questions the bot
    answered itself (自助解决率: its FAQ answers over those answers plus its abstentions; None
    on a day without either). Rows resolved before schema 12 have no time and are not counted."""
    zone, dates, start = _last_days(days)
    asked = UnansweredQuestion.select().where(UnansweredQuestion.created_at >= start)
    handled = UnansweredQuestion.select().where(UnansweredQuestion.resolved_at >= start)
    at = UnansweredQuestion.resolved_at
    abstained = _daily(asked.where(UnansweredQuestion.reason == "abstained"), UnansweredQuestion.created_at, dates, zone)
    answered = _daily(_bot_answers(start), Message.created_at, dates, zone)
    return {
        "labels": [d.strftime("%m-%d") for d in dates],
        "unanswered": _daily(asked, UnansweredQuestion.created_at, dates, zone),
        "resolved": _daily(handled, at, dates, zone),
        "groups_resolved": _daily(handled, at, dates, zone, distinct=at),
        "self_service_rate": [_ratio(a, a + b) for a, b in zip(answered, abstained)],
    }


def per_agent(start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per-agent figures for [start, end) (bot.agents.kpi's definitions)."""
    return [asdict(row) for row in kpi.per_agent(start, end)]


def summary() -> dict[str, Any]:
    """Everything the dashboard shows, JSON-ready."""
    zone = shop_zone()
    now = clock.now()
    today = _local_day_start(now.astimezone(zone).date(), zone)
    month = today - timedelta(days=DAYS - 1)
    return {
        "generated_at": now.isoformat(),
        "timezone": str(zone),
        "queue_now": Conversation.select().where(Conversation.status == "queued").count(),
        "open_now": Conversation.select().where(Conversation.status == "assigned").count(),
        "waiting": asdict(kpi.waiting_now(now)),  # 待回复: the customers waiting for a person
        "response_limit_seconds": int(settings.get("agent_sla_seconds") or 0),
        "today": asdict(figures(today, now + timedelta(seconds=1))),
        "last_30_days": asdict(figures(month, now + timedelta(seconds=1))),
        "agents": per_agent(month, now + timedelta(seconds=1)),
        "series": series(),
        "learning": learning_series(),
    }
