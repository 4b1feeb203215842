"""Agent presence from real activity (issue 25): a message or command from the agent stamps
`last_seen_at` (at most every 30 s), an agent 在线 but quiet past `agent_idle_minutes` is
flagged, and nobody's status is changed by it."""

from __future__ import annotations

from datetime import timedelta

from bot.agents import last_seen
from bot.core import settings
from bot.core.models import Agent
from tests.factories import make_agent, text


def test_seen_stamps_at_most_every_30_seconds(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    agent = make_agent("mei")
    assert Agent.get_by_id(agent.id).last_seen_at is None
    first = fake_clock.now()
    last_seen.seen(agent.id)
    fake_clock.advance(seconds=20)
    last_seen.seen(agent.id)
    assert Agent.get_by_id(agent.id).last_seen_at == first  # within SEEN_EVERY: no write
    fake_clock.advance(seconds=15)
    last_seen.seen(agent.id)
    assert Agent.get_by_id(agent.id).last_seen_at == fake_clock.now()


def test_an_agents_message_is_a_sign_of_life(dispatcher, fake_clock) -> None:  # type: ignore[no-untyped-def]
    agent = make_agent("mei", "agent-mei")
    dispatcher.handle(text("agent-mei", "/help"))
    assert Agent.get_by_id(agent.id).last_seen_at == fake_clock.now()
    dispatcher.handle(text("c1", "你好"))  # a customer's message stamps no agent
    assert Agent.select().where(Agent.last_seen_at.is_null(False)).count() == 1


def test_online_but_quiet_is_flagged_and_left_online(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    settings.put("agent_idle_minutes", 10)
    online, away = make_agent("mei"), make_agent("ali", status="away")
    never = make_agent("qiang")
    for agent in (online, away):
        last_seen.seen(agent.id)
    fake_clock.advance(minutes=9)
    assert not last_seen.of(Agent.get_by_id(online.id)).quiet
    assert last_seen.of(Agent.get_by_id(never.id)).quiet  # 在线, never seen
    fake_clock.advance(minutes=2)
    state = last_seen.of(Agent.get_by_id(online.id))
    assert state.quiet and state.idle_seconds == 11 * 60
    assert not last_seen.of(Agent.get_by_id(away.id)).quiet  # 离开 says where they are
    assert Agent.get_by_id(online.id).status == "online"  # shown, not changed
    settings.put("agent_idle_minutes", 0)
    assert not last_seen.of(Agent.get_by_id(online.id)).quiet  # 0: never flagged


def test_last_seen_in_words() -> None:
    assert last_seen.ago_text(None) == ("never", 0)
    assert last_seen.ago_text(59) == ("now", 0)
    assert last_seen.ago_text(timedelta(minutes=3).total_seconds()) == ("minutes", 3)
    assert last_seen.ago_text(timedelta(hours=2, minutes=5).total_seconds()) == ("hours", 2)
    assert last_seen.ago_text(timedelta(days=3).total_seconds()) == ("days", 3)
