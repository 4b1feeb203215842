"""Agent KPIs per agent and per day, computed from the assignment log.

Why from `AssignmentLog` and not `Conversation.agent`: a conversation may pass through
several agents (SLA reassignment, transfer, an agent going offline); each agent is judged
on their own stints, so an agent whose conversation was taken away by the SLA has a
lower reply rate instead of vanishing from the figures. Spam/ad customers (flagged in the
admin, `Customer.is_spam`) are left out of every figure.

Definitions (a "stint" is one AssignmentLog row: one agent holding one conversation):
- assigned: stints that started in the period (a day: the shop's local day of the start);
- replied: of those, stints in which the agent replied at least once;
- reply_rate (答复率): replied / assigned;
- handled: distinct conversations the agent replied in;
- resolved: stints the agent ended by resolving the conversation;
- first_response_seconds / first_response_p90_seconds: from the stint's start to the
  agent's first reply, mean and 90th percentile (nearest rank) over replied stints;
- resolution_seconds: from the stint's start to the resolve, mean over resolved stints;
- satisfaction: mean 1-5 rating of the resolved stints' conversations; rated: how many.

Public functions (pure reads; the admin dashboard calls them):
    per_agent(start: datetime, end: datetime, agent_ids: Iterable[int] | None = None) -> list[AgentKpi]
    daily(first_day: date, last_day: date, timezone: str | None = None,
          agent_ids: Iterable[int] | None = None) -> list[AgentDayKpi]
    stints(start: datetime, end: datetime, agent_ids=None) -> list[Stint]
    summarize(rows: Iterable[Stint]) -> Figures
    shop_zone(name: str | None = None) -> ZoneInfo   # the business-hours timezone
    waiting_now(now: datetime) -> Waiting   # 待回复 now: count, longest wait, past the limit
    waiting_since(conversation) -> datetime | None
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable
from zoneinfo import ZoneInfo

from bot.agents import assignment
from bot.crm import conversations
from bot.core import settings
from bot.core.models import Agent, AssignmentLog, Conversation, Customer


@dataclass(frozen=True)
class Stint:
    agent_id: int
    conversation_id: int
    assigned_at: datetime
    first_reply_at: datetime | None
    ended_at: datetime | None
    end_reason: str
    satisfaction: int | None


@dataclass(frozen=True)
class Figures:
    assigned: int
    replied: int
    reply_rate: float | None
    handled: int
    resolved: int
    first_response_seconds: float | None
    first_response_p90_seconds: float | None
    resolution_seconds: float | None
    satisfaction: float | None
    rated: int


@dataclass(frozen=True)
class AgentKpi:
    """One agent over a period; `agent` is the display name, `open_now` the current load."""

    agent_id: int
    agent: str
    status: str
    open_now: int
    assigned: int
    replied: int
    reply_rate: float | None
    handled: int
    resolved: int
    first_response_seconds: float | None
    first_response_p90_seconds: float | None
    resolution_seconds: float | None
    satisfaction: float | None
    rated: int


@dataclass(frozen=True)
class AgentDayKpi:
    agent_id: int
    agent: str
    day: date
    assigned: int
    replied: int
    reply_rate: float | None
    handled: int
    resolved: int
    first_response_seconds: float | None
    first_response_p90_seconds: float | None
    resolution_seconds: float | None
    satisfaction: float | None
    rated: int


def stints(start: datetime, end: datetime, agent_ids: Iterable[int] | None = None) -> list[Stint]:
    """Stints that started in [start, end), spam customers excluded."""
    query = (
        AssignmentLog.select(AssignmentLog.agent, AssignmentLog.conversation, AssignmentLog.assigned_at,
                             AssignmentLog.first_reply_at, AssignmentLog.ended_at, AssignmentLog.end_reason,
                             Conversation.satisfaction)
        .join(Customer, on=(AssignmentLog.customer == Customer.id))
        .switch(AssignmentLog)
        .join(Conversation, on=(AssignmentLog.conversation == Conversation.id))
        .where((AssignmentLog.assigned_at >= start) & (AssignmentLog.assigned_at < end)
               & (Customer.is_spam == False))  # noqa: E712
        .order_by(AssignmentLog.assigned_at, AssignmentLog.id)
    )
    if agent_ids is not None:
        query = query.where(AssignmentLog.agent.in_(list(agent_ids)))
    return [
        Stint(agent, conversation, assigned, first, ended, reason, score if reason == "resolved" else None)
        for agent, conversation, assigned, first, ended, reason, score in query.tuples()
    ]


def summarize(rows: Iterable[Stint]) -> Figures:
    rows = list(rows)
    replied = [r for r in rows if r.first_reply_at is not None]
    resolved = [r for r in rows if r.end_reason == "resolved" and r.ended_at is not None]
    waits = sorted((r.first_reply_at - r.assigned_at).total_seconds() for r in replied)  # type: ignore[operator]
    durations = [(r.ended_at - r.assigned_at).total_seconds() for r in resolved]  # type: ignore[operator]
    scores = [float(r.satisfaction) for r in resolved if r.satisfaction is not None]
    return Figures(
        assigned=len(rows), replied=len(replied), reply_rate=_ratio(len(replied), len(rows)),
        handled=len({r.conversation_id for r in replied}), resolved=len(resolved),
        first_response_seconds=_mean(waits), first_response_p90_seconds=percentile(waits, 90),
        resolution_seconds=_mean(durations), satisfaction=_mean(scores), rated=len(scores),
    )


def per_agent(start: datetime, end: datetime, agent_ids: Iterable[int] | None = None) -> list[AgentKpi]:
    """Every active agent (or those asked for) over [start, end), in agent id order."""
    wanted = None if agent_ids is None else list(agent_ids)
    rows = stints(start, end, wanted)
    agents = Agent.select().order_by(Agent.id)
    agents = agents.where(Agent.id.in_(wanted)) if wanted is not None else agents.where(Agent.active == True)  # noqa: E712
    loads = assignment.loads()
    out: list[AgentKpi] = []
    for agent in agents:
        figures = summarize(r for r in rows if r.agent_id == agent.id)
        out.append(AgentKpi(agent.id, str(agent), agent.status, loads.get(agent.id, 0), **figures.__dict__))
    return out


def daily(first_day: date, last_day: date, timezone: str | None = None,
          agent_ids: Iterable[int] | None = None) -> list[AgentDayKpi]:
    """One row per (agent, local day) with at least one stint, days in [first_day, last_day];
    `timezone` defaults to the business-hours timezone."""
    zone = shop_zone(timezone)
    start = datetime(first_day.year, first_day.month, first_day.day, tzinfo=zone)
    end = datetime(last_day.year, last_day.month, last_day.day, tzinfo=zone) + timedelta(days=1)
    groups: dict[tuple[int, date], list[Stint]] = {}
    for row in stints(start, end, agent_ids):
        groups.setdefault((row.agent_id, row.assigned_at.astimezone(zone).date()), []).append(row)
    names = {a.id: str(a) for a in Agent.select().where(Agent.id.in_([k[0] for k in groups] or [0]))}
    return [
        AgentDayKpi(agent_id, names.get(agent_id, str(agent_id)), day, **summarize(items).__dict__)
        for (agent_id, day), items in sorted(groups.items())
    ]


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return None
    rank = max(math.ceil(pct / 100 * len(sorted_values)), 1)
    return round(sorted_values[rank - 1], 2)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 2) if values else None


def shop_zone(name: str | None = None) -> ZoneInfo:
    """`name`, else the shop's time zone (`bot.core.settings.shop_zone`)."""
    return settings.zone_named(name) if name else settings.shop_zone()


@dataclass(frozen=True)
class Waiting:
    """Customers waiting for a person now (待回复) and how long the longest has waited."""

    count: int
    longest_seconds: float | None
    over_limit: int  # of those, waiting longer than the response limit (agent_sla_seconds)


def waiting_since(conversation: Conversation) -> datetime | None:
    """Since when the customer has waited for a person's reply, or None: queued, since they
    were queued; with an agent, since the handoff or since their first message after the
    agent's latest reply (`conversations.awaiting_reply_since`)."""
    if conversation.status == "queued":
        return conversation.queued_at or conversation.opened_at
    return conversations.awaiting_reply_since(conversation)


def waiting_now(now: datetime) -> Waiting:
    """The 待回复 figures at `now`: the queue counted as 当前排队 waited unseen before
    (issue 25: two handed-off customers waited past the limit while it showed 0). Spam
    customers are left out like everywhere here."""
    open_ones = (Conversation.select().join(Customer)
                 .where(Conversation.status.in_(("queued", "assigned")) & (Customer.is_spam == False)))  # noqa: E712
    waits = [(now - since).total_seconds() for c in open_ones if (since := waiting_since(c)) is not None]
    limit = int(settings.get("agent_sla_seconds") or 0)
    return Waiting(count=len(waits), longest_seconds=round(max(waits), 1) if waits else None,
                   over_limit=sum(1 for w in waits if limit and w > limit))
