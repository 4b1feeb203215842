"""After a handoff, the customer's next message is acknowledged once per waiting stretch
(issue 25: their messages met silence until the agent answered)."""

from __future__ import annotations

import pytest

from bot.core import settings
from bot.conversation.routing import ACK_NOTICE
from bot.core.models import Message
from tests.bot.conversation.test_scenarios import Shop, conversation_of
from tests.factories import make_agent, shop_faqs

ACK = settings.DEFAULTS["handoff_ack_message"]


@pytest.fixture
def shop(dispatcher, fake_clock) -> Shop:  # type: ignore[no-untyped-def]
    shop_faqs()
    make_agent("小美", "mei")
    return Shop(dispatcher)


def test_the_next_message_after_a_handoff_is_acknowledged_once(shop: Shop) -> None:
    shop.says("u1", "转人工")
    assert conversation_of("u1").status == "assigned"
    assert shop.says("u1", "我的订单还没到") == [ACK]
    assert shop.says("u1", "在吗？") == []  # once per stretch, not per message
    assert shop.says("u1", "快点") == []
    relayed = shop.inbox("mei")
    assert sum("我的订单还没到" in t for t in relayed) == 1 and sum("快点" in t for t in relayed) == 1
    acks = [m for m in Message.select().where(Message.direction == "out") if (m.payload or {}).get("notice") == ACK_NOTICE]
    assert len(acks) == 1 and acks[0].external_id.startswith("re:")  # stored under its unique key


def test_no_acknowledgement_once_the_agent_answered(shop: Shop) -> None:
    shop.says("u1", "转人工")
    shop.says("mei", "您好，请问有什么可以帮您？")
    assert shop.says("u1", "我的订单还没到") == []


def test_a_new_handoff_starts_a_new_stretch(shop: Shop, fake_clock) -> None:
    make_agent("小王", "wang")
    shop.says("u1", "转人工")
    assert shop.says("u1", "有人吗") == [ACK]
    agent = conversation_of("u1").agent.im_user_id
    other = "wang" if agent == "mei" else "mei"
    fake_clock.advance(seconds=5)
    shop.says(agent, f"转接 {'小王' if other == 'wang' else '小美'}")
    assert conversation_of("u1").agent.im_user_id == other
    assert shop.says("u1", "还在吗") == [ACK]


def test_an_empty_setting_turns_it_off(shop: Shop) -> None:
    settings.put("handoff_ack_message", "  ")
    shop.says("u1", "转人工")
    assert shop.says("u1", "我的订单还没到") == []


def test_the_operators_text_is_used(shop: Shop) -> None:
    settings.put("handoff_ack_message", "收到啦，马上来")
    shop.says("u1", "转人工")
    assert shop.says("u1", "我的订单还没到") == ["收到啦，马上来"]
