"""Agent presence as the panel shows it: last seen in words and the load against capacity.

Why one place: the agent list and the dashboard's agent table show the same two cells; the
figures come from `bot.agents.last_seen` (last seen, quiet) and `bot.agents.assignment.loads`.
"""

from __future__ import annotations

from flask_babel import gettext

from bot.agents import last_seen
from bot.core.models import Agent

def _ago(idle_seconds: float | None) -> str:
    unit, n = last_seen.ago_text(idle_seconds)
    if unit == "never":
        return gettext("从未活动")
    if unit == "now":
        return gettext("刚刚")
    if unit == "minutes":
        return gettext("%(n)s 分钟前") % {"n": n}  # plain text first, then the number
    if unit == "hours":
        return gettext("%(n)s 小时前") % {"n": n}
    return gettext("%(n)s 天前") % {"n": n}


def last_seen_text(agent: Agent) -> str:
    """"3 分钟前", and for an agent marked 在线 who has gone quiet, a ⚠ saying so."""
    state = last_seen.of(agent)
    text = _ago(state.idle_seconds)
    if not state.quiet:
        return text
    quiet = gettext("在线但无活动")
    return f"⚠ {quiet} · {text}"


def load_text(agent: Agent, open_now: int) -> str:
    return f"{open_now}/{agent.max_open}"
