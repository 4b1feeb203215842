"""Agents: creating them and linking their IM account.

Why: `kefu agent add`, the demo seed and the admin panel all create agents with the same
checks (a unique name, one agent per IM account, a channel that exists).
"""

from __future__ import annotations

from bot.core.config import Config
from bot.core.models import Agent


class AgentError(ValueError):
    pass


def add_agent(config: Config, name: str, channel: str, user_id: str, max_open: int = 5,
              display_name: str = "", status: str = "online") -> Agent:
    if not name.strip():
        raise AgentError("the agent needs a name")
    if config.channel(channel) is None:
        known = ", ".join(c.name for c in config.channels)
        raise AgentError(f"no channel named {channel!r} in the config (known: {known})")
    if not user_id.strip():
        raise AgentError("the agent needs the IM user id of their linked account (--user-id)")
    if max_open < 1:
        raise AgentError("--max-open must be at least 1")
    if status not in ("online", "away", "offline"):
        raise AgentError("status must be online, away or offline")
    if Agent.select().where(Agent.name == name).exists():
        raise AgentError(f"an agent named {name!r} already exists")
    if Agent.select().where((Agent.channel == channel) & (Agent.im_user_id == user_id)).exists():
        raise AgentError(f"the IM account {channel}:{user_id} is already linked to another agent")
    return Agent.create(name=name, display_name=display_name or name, channel=channel, im_user_id=user_id,
                        max_open=max_open, status=status)
