"""Transcript-style scenarios: customer says, bot says, agent says.

`Shop` drives the dispatcher the way the channels do: what a sender gets back inline is
their reply; everything for someone else lands in the outbox, read per recipient with
`inbox`. Each scenario reads top to bottom like a chat log.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from bot.core import settings
from bot.conversation.dispatcher import Dispatcher
from bot.core.models import Agent, AssignmentLog, Conversation, Customer, Outbox
from jobs.sla import run_sla
from tests.factories import RETURNS, SHIPPING, make_agent, shop_faqs, text


class Shop:
    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self._read: dict[str, int] = {}
        self.log: list[str] = []

    def says(self, user: str, body: str) -> list[str]:
        """`user` writes `body`; returns what comes straight back to them (inline)."""
        result = self.dispatcher.handle(text(user, body))
        replies = [r.rendered_text() for r in result.replies]
        self.log.append(f"{user}: {body} -> {replies}")
        return replies

    def inbox(self, user: str) -> list[str]:
        """What reached `user` through the outbox since the last look."""
        last = self._read.get(user, 0)
        rows = list(Outbox.select().where((Outbox.recipient == user) & (Outbox.id > last)).order_by(Outbox.id))
        if rows:
            self._read[user] = rows[-1].id
        return [row.content["text"] for row in rows]

    def everything(self, user: str) -> list[str]:
        """Everything `user` received: inline replies are not in the outbox, so only for
        people who did not write."""
        return self.inbox(user)


@pytest.fixture
def shop(dispatcher: Dispatcher, fake_clock) -> Shop:  # type: ignore[no-untyped-def]
    shop_faqs()
    return Shop(dispatcher)


def conversation_of(user: str) -> Conversation:
    customer = Customer.get(Customer.external_id == user)
    return Conversation.select().where(Conversation.customer == customer).order_by(Conversation.id.desc()).get()


def joined(lines: list[str]) -> str:
    return "\n".join(lines)


# -- reception modes ---------------------------------------------------------------------


def test_bot_first_answers_then_hands_off_on_request(shop: Shop) -> None:
    mei = make_agent("小美", "mei")
    assert shop.says("u1", "发货要多久") == [SHIPPING]
    assert shop.inbox("mei") == []
    reply = shop.says("u1", "转人工")
    assert "小美" in joined(reply)
    brief = joined(shop.inbox("mei"))
    assert "新的人工会话" in brief and "发货要多久" in brief and "顾客要求转人工" in brief
    assert conversation_of("u1").agent_id == mei.id


def test_bot_first_hands_off_after_unanswered_turns(shop: Shop) -> None:
    make_agent("小美", "mei")
    settings.put("handoff_after_unanswered", 2)
    first = shop.says("u1", "你们老板叫什么名字")
    assert "小美" not in joined(first)
    second = shop.says("u1", "仓库在哪个城市")
    assert "小美" in joined(second)
    assert "机器人多次未能回答" in joined(shop.inbox("mei"))


def test_human_first_goes_to_a_human_when_one_is_free(shop: Shop) -> None:
    settings.put("reception_mode", "human_first")
    mei = make_agent("小美", "mei", max_open=1)
    assert "小美" in joined(shop.says("u1", "发货要多久"))
    assert conversation_of("u1").agent_id == mei.id
    # 小美 is full now: the next customer gets the bot
    assert shop.says("u2", "发货要多久") == [SHIPPING]
    assert conversation_of("u2").status == "bot"


def test_mixed_answers_confidently_and_hands_the_rest_to_humans(shop: Shop) -> None:
    settings.put("reception_mode", "mixed")
    make_agent("小美", "mei")
    assert shop.says("u1", "怎么退货") == [RETURNS]
    assert "小美" in joined(shop.says("u1", "我的包裹被邻居拿走了怎么办"))
    assert "机器人没有把握" in joined(shop.inbox("mei"))


# -- the silence rule ----------------------------------------------------------------------


def test_once_a_human_has_it_the_bot_is_silent_until_resolved(shop: Shop) -> None:
    make_agent("小美", "mei")
    shop.says("u1", "转人工")
    shop.inbox("mei")
    # an FAQ question, but the human answers; the bot only says it reached them (once, issue 25)
    assert shop.says("u1", "发货要多久") == [settings.DEFAULTS["handoff_ack_message"]]
    assert shop.inbox("mei")[-1].endswith("发货要多久")
    assert shop.says("mei", "亲，今天就发") == []
    assert shop.inbox("u1") == ["亲，今天就发"]
    assert shop.says("u1", "转人工") == []  # still with 小美, no bot chatter
    shop.says("mei", "/resolve")
    assert "打分" in shop.inbox("u1")[-1]
    assert shop.says("u1", "5") == ["感谢您的评价，祝您生活愉快！"]
    assert shop.says("u1", "发货要多久") == [SHIPPING]  # resolved: the bot is back


# -- business hours ---------------------------------------------------------------------------


WEEKDAYS = {"timezone": "Asia/Shanghai", "always_open": False, "holidays": ["2026-11-25"],
            "weekly": {d: ["09:00", "18:00"] for d in ("mon", "tue", "wed", "thu", "fri")}}


def test_outside_hours_the_request_is_queued_with_when_humans_are_back(shop: Shop, fake_clock) -> None:
    settings.put("business_hours", WEEKDAYS)
    make_agent("小美", "mei")
    fake_clock.set(datetime(2026, 11, 24, 12, 0, tzinfo=timezone.utc))  # Tue 20:00 in Shanghai
    reply = joined(shop.says("u1", "转人工"))
    assert "周一至周五 09:00-18:00" in reply
    assert "11月26日（周四）09:00" in reply  # Wednesday the 25th is a holiday
    assert conversation_of("u1").status == "queued"
    assert shop.says("u1", "发货要多久") == [SHIPPING]  # the bot still answers what it can
    assert shop.inbox("mei") == []
    fake_clock.set(datetime(2026, 11, 26, 1, 0, tzinfo=timezone.utc))  # Thu 09:00
    run_sla()  # the scheduler's pass assigns the queue once humans are back
    assert conversation_of("u1").status == "assigned"
    assert "小美" in joined(shop.inbox("u1"))
    assert "新的人工会话" in joined(shop.inbox("mei"))


# -- the queue ---------------------------------------------------------------------------------


def test_queue_positions_and_updates_when_it_moves(shop: Shop, fake_clock) -> None:
    mei = make_agent("小美", "mei", max_open=1)
    shop.says("u0", "转人工")
    positions = []
    for user in ("u1", "u2", "u3"):
        fake_clock.advance(seconds=10)
        positions.append(joined(shop.says(user, "人工")))
    # the first in line is told it is first, not that one person is ahead of it
    assert ["排在第 1 位" in positions[0], "排在第 2 位" in positions[1], "排在第 3 位" in positions[2]] == [True] * 3
    shop.says("mei", "/resolve")
    # the longest-waiting (u1) gets 小美; the others hear their new place
    assert conversation_of("u1").agent_id == mei.id
    assert "小美" in joined(shop.inbox("u1"))
    assert shop.inbox("u2") == ["排队进度更新：您现在排在第 1 位，请耐心等待。"]
    assert shop.inbox("u3") == ["排队进度更新：您现在排在第 2 位，请耐心等待。"]


def test_an_agent_coming_online_takes_the_longest_waiting(shop: Shop, fake_clock) -> None:
    mei = make_agent("小美", "mei", status="offline")
    shop.says("u1", "转人工")
    fake_clock.advance(seconds=5)
    shop.says("u2", "转人工")
    reply = shop.says("mei", "上线")  # what the agent gets back comes inline, in order
    assert "在线" in reply[0]
    assert conversation_of("u1").agent_id == mei.id and conversation_of("u2").agent_id == mei.id
    briefs = [r for r in reply if "新的人工会话" in r]
    assert len(briefs) == 2 and briefs[0].startswith("【#%d " % conversation_of("u1").id)
    assert "小美" in joined(shop.inbox("u1")) and "小美" in joined(shop.inbox("u2"))


# -- SLA ---------------------------------------------------------------------------------------


def test_sla_reassigns_to_the_next_agent_and_tells_the_first(shop: Shop, fake_clock) -> None:
    settings.put("agent_sla_seconds", 180)
    mei = make_agent("小美", "mei")
    shop.says("u1", "转人工")
    ali = make_agent("阿力", "ali")
    fake_clock.advance(seconds=179)
    assert run_sla()["reassigned"] == 0
    fake_clock.advance(seconds=2)
    assert run_sla()["reassigned"] == 1
    assert conversation_of("u1").agent_id == ali.id
    assert "超过 3 分钟未回复，已转给「阿力」" in joined(shop.inbox("mei"))
    assert "超时未回复" in joined(shop.inbox("ali"))
    assert "阿力" in shop.inbox("u1")[-1]
    assert run_sla()["reassigned"] == 0  # not again: 阿力's clock starts now
    reasons = [r.end_reason for r in AssignmentLog.select().order_by(AssignmentLog.id)]
    assert reasons == ["sla", ""]
    assert mei.id != ali.id


def test_sla_leaves_alone_an_agent_who_replied(shop: Shop, fake_clock) -> None:
    make_agent("小美", "mei")
    shop.says("u1", "转人工")
    make_agent("阿力", "ali")
    fake_clock.advance(seconds=30)
    shop.says("mei", "您好，我来看看")
    fake_clock.advance(seconds=600)
    assert run_sla()["reassigned"] == 0


# -- agents going offline ------------------------------------------------------------------------


def test_offline_agent_returns_the_conversations_awaiting_a_reply(shop: Shop, fake_clock) -> None:
    mei = make_agent("小美", "mei")
    shop.says("u1", "转人工")  # 小美 never answers u1
    shop.says("u2", "转人工")
    shop.says("mei", "/switch %d" % conversation_of("u2").id)
    shop.says("mei", "好的，已经处理")  # u2 has the ball now
    ali = make_agent("阿力", "ali", status="offline")
    reply = joined(shop.says("mei", "下线"))
    assert "1 个待您回复的会话已转回排队" in reply and "1 个会话" in reply
    assert conversation_of("u1").status == "queued"
    assert conversation_of("u2").agent_id == mei.id
    assert "已为您重新排队" in joined(shop.inbox("u1"))
    shop.says("ali", "上线")
    assert conversation_of("u1").agent_id == ali.id
    # u2 writes while 小美 is offline: 阿力 takes over
    assert "阿力" in joined(shop.says("u2", "还在吗"))
    assert conversation_of("u2").agent_id == ali.id
    assert "还在吗" in joined(shop.inbox("ali"))


def test_customer_writing_to_an_offline_agent_with_nobody_free_is_queued(shop: Shop) -> None:
    mei = make_agent("小美", "mei")
    shop.says("u1", "转人工")
    shop.says("mei", "在的")
    Agent.update(status="offline").where(Agent.id == mei.id).execute()
    reply = joined(shop.says("u1", "喂？"))
    assert "重新排队" in reply and "1 位" in reply
    assert conversation_of("u1").status == "queued"


# -- returning customers ----------------------------------------------------------------------------


def test_a_returning_customer_goes_back_to_their_agent(shop: Shop, fake_clock) -> None:
    mei = make_agent("小美", "mei")
    ali = make_agent("阿力", "ali")
    shop.says("u1", "转人工")
    assert conversation_of("u1").agent_id == mei.id  # equal agents: the lower id first
    shop.says("mei", "/resolve")
    fake_clock.advance(days=2)
    # round-robin alone would now pick 阿力 (小美 was assigned more recently)
    shop.says("u1", "转人工")
    assert conversation_of("u1").agent_id == mei.id
    shop.says("u2", "转人工")
    assert conversation_of("u2").agent_id == ali.id


def test_a_private_pool_owner_wins_when_free_else_round_robin(shop: Shop) -> None:
    mei = make_agent("小美", "mei", max_open=1)
    ali = make_agent("阿力", "ali")
    shop.says("u1", "你好")
    assert "私海" in joined(shop.says("mei", "认领 %d" % Customer.get(Customer.external_id == "u1").id))
    shop.says("u9", "转人工")
    assert conversation_of("u9").agent_id == mei.id  # 小美 is now full
    shop.says("u1", "转人工")
    assert conversation_of("u1").agent_id == ali.id  # owner busy: round-robin
    shop.says("ali", "/resolve")
    shop.says("mei", "/resolve")
    shop.says("u1", "5")
    shop.says("u1", "转人工")
    assert conversation_of("u1").agent_id == mei.id  # owner free again: the owner


def test_nobody_jumps_the_queue_when_an_agent_frees_up_unnoticed(shop: Shop, fake_clock) -> None:
    mei = make_agent("小美", "mei", status="offline")
    shop.says("u1", "转人工")
    fake_clock.advance(seconds=5)
    shop.says("u2", "转人工")
    # 小美 is set online in the admin: nobody has served the queue yet
    Agent.update(status="online", max_open=1).where(Agent.id == mei.id).execute()
    fake_clock.advance(seconds=5)
    reply = joined(shop.says("u3", "转人工"))
    assert conversation_of("u1").agent_id == mei.id  # the longest-waiting, not the newcomer
    assert "3 位" not in reply and "2 位" in reply
    assert conversation_of("u3").status == "queued"
    assert "小美" in joined(shop.inbox("u1"))
    assert shop.inbox("u2") == ["排队进度更新：您现在排在第 1 位，请耐心等待。"]
