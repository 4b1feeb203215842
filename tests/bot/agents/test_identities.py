"""Agent identities (bot/agents/identities.py): the dispatcher asks the cache, not the
database, whether a sender is an agent; a new or deactivated agent counts from the next
batch's check."""

from __future__ import annotations

from typing import Any

from bot.agents import identities
from bot.conversation.dispatcher import Dispatcher
from bot.core import cache_version
from bot.core.models import Agent
from tests.factories import make_agent, text


def test_an_agent_added_or_deactivated_is_known_after_the_next_check(database: Any) -> None:
    cache_version.check()
    assert not identities.is_agent("web", "agent-bob")
    agent = make_agent("bob")
    cache_version.check()
    assert identities.is_agent("web", "agent-bob")
    assert not identities.is_agent("mp", "agent-bob")  # the identity is per channel
    Agent.update(active=False).where(Agent.id == agent.id).execute()
    cache_version.check()
    assert not identities.is_agent("web", "agent-bob")


def test_the_dispatcher_relays_a_new_agents_message_at_once(database: Any, dispatcher: Dispatcher) -> None:
    dispatcher.handle(text("u1", "你好"))  # the cache is filled: no agents
    make_agent("carol", "im-carol")
    result = dispatcher.handle(text("im-carol", "/help"))
    assert result.action == "agent"
