"""Agent presence from real activity: when each agent was last seen, and whether one marked
在线 has gone quiet.

Why: an agent's status is what they last said (上线 / 离开 / 下线, or the panel); issue 25 found
agents shown 在线 with nobody connected. Their messages and commands (the dispatcher) and
every workbench request (its inbox poll included) stamp `Agent.last_seen_at`; the panel shows
the stamp next to the status and load, and flags an agent 在线 but not seen for the setting
`agent_idle_minutes`. The status itself is left alone: only the agent (or an operator) says
they are offline, and routing keeps its rules.

A stamp is written at most every `SEEN_EVERY` per agent (one conditional UPDATE), so a
workbench polling every 2 s costs one write a minute, not thirty.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.core import clock, settings
from bot.core.models import Agent

SEEN_EVERY = timedelta(seconds=30)


def seen(agent_id: int, now: datetime | None = None) -> None:
    """Record that the agent did something now (a no-op within SEEN_EVERY of the last stamp)."""
    now = now or clock.now()
    field = Agent.last_seen_at
    (Agent.update(last_seen_at=now)
     .where((Agent.id == agent_id) & (field.is_null() | (field < now - SEEN_EVERY)))
     .execute())


@dataclass(frozen=True)
class Presence:
    last_seen_at: datetime | None
    idle_seconds: float | None  # since last seen; None: never seen
    quiet: bool  # marked 在线 but not seen for agent_idle_minutes (or never)


def of(agent: Agent, now: datetime | None = None) -> Presence:
    now = now or clock.now()
    limit = int(settings.get("agent_idle_minutes") or 0)
    seen_at = agent.last_seen_at
    idle = None if seen_at is None else max((now - seen_at).total_seconds(), 0.0)
    quiet = agent.status == "online" and bool(limit) and (idle is None or idle > limit * 60)
    return Presence(seen_at, idle, quiet)


def ago_text(idle_seconds: float | None) -> tuple[str, int]:
    """("minutes"|"hours"|"days"|"now"|"never", n) for a relative 'last seen' label."""
    if idle_seconds is None:
        return "never", 0
    if idle_seconds < 60:
        return "now", 0
    if idle_seconds < 3600:
        return "minutes", int(idle_seconds // 60)
    if idle_seconds < 86400:
        return "hours", int(idle_seconds // 3600)
    return "days", int(idle_seconds // 86400)
