"""Waiting customers in sight (issue 25): 待回复 and the longest wait on the dashboard, the
wait on the conversation list; a customer the agent answered no longer counts."""

from __future__ import annotations

from bot.core import clock
from bot.conversation.dispatcher import Dispatcher
from bot.core.models import Conversation
from tests.admin.conftest import Panel
from tests.factories import make_agent, shop_faqs, text


def _two_waiting(dispatcher: Dispatcher, fake_clock: clock.FakeClock) -> None:
    """Two handed-off customers: a was answered, b waits 200 s unanswered (limit 180 s)."""
    shop_faqs()
    make_agent("xiaomei")
    dispatcher.handle(text("a", "转人工"))
    dispatcher.handle(text("agent-xiaomei", "您好，马上处理"))  # a's conversation, the only one
    fake_clock.advance(seconds=60)
    dispatcher.handle(text("b", "转人工"))
    fake_clock.advance(seconds=200)


def test_dashboard_counts_who_waits_and_for_how_long(
        admin_panel: Panel, dispatcher: Dispatcher, fake_clock: clock.FakeClock) -> None:
    _two_waiting(dispatcher, fake_clock)
    assert Conversation.select().where(Conversation.status == "assigned").count() == 2
    waiting = admin_panel.get("/admin/dashboard.json").get_json()["waiting"]
    assert waiting == {"count": 1, "longest_seconds": 200.0, "over_limit": 1}  # limit 180 s
    html = admin_panel.get("/admin/").get_data(as_text=True)
    assert "待回复" in html and "最长等待" in html and 'data-kpi="waiting">1<' in html and "border-danger" in html
    assert "<script>" not in html  # the refresh lives in admin/static


def test_a_customer_writing_after_the_agents_reply_waits_again(
        admin_panel: Panel, dispatcher: Dispatcher, fake_clock: clock.FakeClock) -> None:
    _two_waiting(dispatcher, fake_clock)
    b = Conversation.select().where(Conversation.status == "assigned").order_by(Conversation.id.desc()).get()
    dispatcher.handle(text("agent-xiaomei", "/switch %d" % b.id))
    dispatcher.handle(text("agent-xiaomei", "您好"))  # now both were answered
    assert admin_panel.get("/admin/dashboard.json").get_json()["waiting"]["count"] == 0
    fake_clock.advance(seconds=30)
    dispatcher.handle(text("b", "还有一个问题"))
    fake_clock.advance(seconds=12)
    assert admin_panel.get("/admin/dashboard.json").get_json()["waiting"] == {
        "count": 1, "longest_seconds": 12.0, "over_limit": 0}


def test_conversation_list_shows_the_wait(
        admin_panel: Panel, dispatcher: Dispatcher, fake_clock: clock.FakeClock) -> None:
    _two_waiting(dispatcher, fake_clock)
    html = admin_panel.get("/admin/conversation/").get_data(as_text=True)
    assert "等待" in html and "⚠ 3 分钟" in html
    english = admin_panel.get("/admin/conversation/?lang=en").get_data(as_text=True)
    assert "⚠ 3 min" in english
