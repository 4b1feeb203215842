"""The dashboard's figures, computed from the rows the bot writes."""

from __future__ import annotations

from typing import Any

from admin import dashboard
from bot.crm import conversations
from bot.core import clock
from bot.conversation.dispatcher import Dispatcher
from bot.core.models import Conversation
from tests.admin.conftest import Panel
from tests.factories import make_agent, shop_faqs, text


def test_figures_from_a_day_of_traffic(dispatcher: Dispatcher, fake_clock: clock.FakeClock) -> None:
    shop_faqs()
    make_agent("xiaomei")
    dispatcher.handle(text("a", "发货要多久"))
    dispatcher.handle(text("b", "怎么退货"))
    dispatcher.handle(text("c", "你们老板叫什么名字"))  # the bot abstains
    dispatcher.handle(text("d", "转人工"))
    handed = Conversation.get(Conversation.status == "assigned")
    fake_clock.advance(seconds=40)
    dispatcher.handle(text("agent-xiaomei", "您好，我是小美，马上为您处理"))  # the agent's first reply
    fake_clock.advance(minutes=5)
    conversations.resolve(Conversation.get_by_id(handed.id), "agent")
    Conversation.update(satisfaction=4).where(Conversation.id == handed.id).execute()
    fake_clock.advance(minutes=10)
    summary = dashboard.summary()
    today = summary["today"]
    assert today["messages_in"] == 4  # the agent's message is not a customer's
    assert today["bot_answered"] == 2 and today["bot_abstained"] == 1
    assert today["answer_rate"] == round(2 / 3, 4)
    assert today["handoffs"] == 1
    assert today["first_response_seconds"] == 40.0 and today["reply_rate"] == 1.0
    assert today["satisfaction"] == 4.0 and today["rated"] == 1
    assert summary["last_30_days"]["messages_in"] == 4
    assert summary["series"]["messages_in"][-1] == 4 and len(summary["series"]["labels"]) == 30
    agent = next(a for a in summary["agents"] if a["agent"] == "xiaomei")
    assert agent["assigned"] == 1


def test_yesterday_is_not_today(dispatcher: Dispatcher, fake_clock: clock.FakeClock) -> None:
    shop_faqs()
    dispatcher.handle(text("a", "发货要多久"))
    fake_clock.advance(days=1)
    summary = dashboard.summary()
    assert summary["today"]["messages_in"] == 0
    assert summary["last_30_days"]["messages_in"] == 1
    assert summary["series"]["messages_in"][-2:] == [1, 0]


def test_queue_now_and_json_endpoint(admin_panel: Panel, dispatcher: Dispatcher, database: Any) -> None:
    dispatcher.handle(text("a", "转人工"))  # no agent: queued
    data = admin_panel.get("/admin/dashboard.json").get_json()
    assert data["queue_now"] == 1 and data["today"]["handoffs"] == 1
    html = admin_panel.get("/admin/").get_data(as_text=True)
    assert 'data-kpi="queue_now">1<' in html and "chart.umd.min.js" in html


def test_days_are_the_shops_local_days(dispatcher: Dispatcher, fake_clock: clock.FakeClock) -> None:
    from datetime import datetime, timezone

    shop_faqs()
    fake_clock.set(datetime(2026, 11, 24, 15, 30, tzinfo=timezone.utc))  # 23:30 on the 24th in Shanghai
    dispatcher.handle(text("a", "发货要多久"))
    fake_clock.set(datetime(2026, 11, 24, 16, 30, tzinfo=timezone.utc))  # 00:30 on the 25th in Shanghai
    dispatcher.handle(text("b", "发货要多久"))
    dispatcher.handle(text("c", "怎么退货"))
    summary = dashboard.summary()
    assert summary["series"]["labels"][-2:] == ["11-24", "11-25"]
    assert summary["series"]["messages_in"][-2:] == [1, 2]
    assert summary["today"]["messages_in"] == 2


def test_the_learning_loop_per_day_unanswered_handled_and_self_service_rate(
        admin_panel: Panel, dispatcher: Dispatcher, fake_clock: clock.FakeClock) -> None:
    from bot.faq import learning

    faqs = shop_faqs()
    dispatcher.handle(text("a", "发货要多久"))  # answered
    dispatcher.handle(text("b", "顺丰包邮吗"))  # the bot abstains
    dispatcher.handle(text("c", "你们老板叫什么名字"))  # abstains
    fake_clock.advance(days=1)
    [group] = [g for g in learning.unanswered_groups() if g.text == "顺丰包邮吗"]
    learning.add_as_phrasing(group, faqs["shipping"].id)  # handled today, asked yesterday
    dispatcher.handle(text("d", "顺丰包邮吗？"))  # answered now
    dispatcher.handle(text("e", "你们老板叫什么名字"))  # abstains again: the same text
    fake_clock.advance(minutes=5)
    [boss] = [g for g in learning.unanswered_groups() if g.text == "你们老板叫什么名字"]
    learning.dismiss(boss.question_ids[:1])  # one action: its twin asked yesterday goes with it
    data = admin_panel.get("/admin/dashboard.json").get_json()["learning"]
    assert len(data["labels"]) == 30
    # asked per day; handled on the day the operator acted (two actions, three questions)
    assert data["unanswered"][-2:] == [2, 1] and data["resolved"][-2:] == [0, 3]
    assert data["groups_resolved"][-2:] == [0, 2]
    assert data["self_service_rate"][-2:] == [round(1 / 3, 4), 0.5]
    assert data["self_service_rate"][0] is None  # a day without questions has no rate
    html = admin_panel.get("/admin/").get_data(as_text=True)
    assert 'id="chart-learning"' in html and "kefu-learning.js" in html and 'data-url="/admin/dashboard.json"' in html
    script = admin_panel.get("/kefu-static/kefu-learning.js")
    assert script.status_code == 200 and b"chart-learning" in script.data
