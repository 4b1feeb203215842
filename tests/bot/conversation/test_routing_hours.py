"""Business hours (weekly schedule, holidays, the next opening) and the queue updates."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from bot.agents import business_hours
from bot.crm import conversations
from bot.core import settings
from bot.core.models import Outbox
from bot.conversation.routing import QUEUE_UPDATE_TOP, closed_text, queue_position_updates, queue_snapshot
from tests.factories import make_agent, text

SH = ZoneInfo("Asia/Shanghai")
SCHEDULE = {"timezone": "Asia/Shanghai", "always_open": False, "holidays": ["2026-10-01", "2026-10-02"],
            "weekly": {"mon": ["09:00", "22:00"], "tue": ["09:00", "22:00"], "wed": ["09:00", "22:00"],
                       "thu": ["09:00", "22:00"], "fri": ["09:00", "22:00"], "sat": ["10:00", "18:00"]}}


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)


def test_open_and_closed() -> None:
    assert business_hours.is_open(at(2026, 11, 24, 9, 0), SCHEDULE)  # Tuesday
    assert not business_hours.is_open(at(2026, 11, 24, 22, 0), SCHEDULE)
    assert not business_hours.is_open(at(2026, 11, 29, 12, 0), SCHEDULE)  # Sunday: no window
    assert not business_hours.is_open(at(2026, 10, 1, 12, 0), SCHEDULE)  # holiday
    assert business_hours.is_open(at(2026, 10, 1, 12, 0), {**SCHEDULE, "always_open": True})


def test_next_open() -> None:
    assert business_hours.next_open(at(2026, 11, 24, 12, 0), SCHEDULE) == at(2026, 11, 24, 12, 0)  # open now
    assert business_hours.next_open(at(2026, 11, 24, 7, 30), SCHEDULE) == at(2026, 11, 24, 9, 0)
    assert business_hours.next_open(at(2026, 11, 24, 23, 0), SCHEDULE) == at(2026, 11, 25, 9, 0)
    assert business_hours.next_open(at(2026, 11, 28, 19, 0), SCHEDULE) == at(2026, 11, 30, 9, 0)  # Sat eve -> Mon
    # Wed 30 Sep evening: Thu 1 and Fri 2 Oct are holidays, Sat 3 Oct opens at 10:00
    assert business_hours.next_open(at(2026, 9, 30, 23, 0), SCHEDULE) == at(2026, 10, 3, 10, 0)
    assert business_hours.next_open(at(2026, 9, 30, 23, 0), {"weekly": {}, "always_open": False}) is None


def test_next_open_in_words() -> None:
    assert business_hours.describe_next_open(at(2026, 11, 24, 7, 0), SCHEDULE) == "今天 09:00"
    assert business_hours.describe_next_open(at(2026, 11, 24, 23, 0), SCHEDULE) == "明天 09:00"
    assert business_hours.describe_next_open(at(2026, 9, 30, 23, 0), SCHEDULE) == "10月3日（周六）10:00"
    assert business_hours.describe(SCHEDULE) == "周一至周五 09:00-22:00，周六 10:00-18:00"


def test_closed_text_uses_the_operators_template(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    settings.put("business_hours", SCHEDULE)
    fake_clock.set(at(2026, 11, 24, 23, 0).astimezone(timezone.utc))
    assert "明天 09:00" in closed_text() and "周一至周五" in closed_text()
    settings.put("offline_message", "下班啦，{next_open} 见！")
    assert closed_text() == "下班啦，明天 09:00 见！"
    settings.put("offline_message", "下班啦 {oops}")
    assert closed_text().startswith("下班啦 {oops}")  # a broken template is shown, not crashed on


def test_queue_updates_reach_only_the_front_of_a_long_queue(database, dispatcher, fake_clock) -> None:  # type: ignore[no-untyped-def]
    make_agent("busy", status="offline")
    for n in range(QUEUE_UPDATE_TOP + 3):
        dispatcher.handle(text(f"q{n}", "转人工"))
        fake_clock.advance(seconds=1)
    head = conversations.queued()[0]
    before = queue_snapshot()
    conversations.resolve(head, by="customer")
    updates = queue_position_updates(before)
    assert [u.to_user for u in updates] == [f"q{n}" for n in range(1, QUEUE_UPDATE_TOP + 1)]
    assert updates[0].reply.text == "排队进度更新：您现在排在第 1 位，请耐心等待。"
    assert queue_position_updates(queue_snapshot()) == []  # nothing moved: nothing said
    assert Outbox.select().count() == 0  # building updates sends nothing by itself


def test_a_window_may_end_at_midnight() -> None:
    late = {"timezone": "Asia/Shanghai", "always_open": False, "weekly": {"tue": ["18:00", "24:00"]}}
    assert business_hours.is_open(at(2026, 11, 24, 23, 59), late)
    assert not business_hours.is_open(at(2026, 11, 24, 17, 59), late)


def test_a_place_past_the_counted_ones_reads_as_100_plus(database, dispatcher, fake_clock) -> None:  # type: ignore[no-untyped-def]
    make_agent("busy", status="online", max_open=0)  # online but full: the busy message
    for n in range(conversations.QUEUE_COUNTED - 1):
        conversation, _ = conversations.open_conversation(conversations.upsert_customer("web", f"early{n}"))
        conversations.enqueue(conversation, "requested")
    fake_clock.advance(seconds=1)
    assert "第 100 位" in dispatcher.handle(text("on-the-line", "转人工")).replies[0].text  # 99 ahead
    fake_clock.advance(seconds=1)
    assert "第 100+ 位" in dispatcher.handle(text("late", "转人工")).replies[0].text


def test_a_handoff_while_others_wait_reads_the_queue_once(database, dispatcher, fake_clock) -> None:  # type: ignore[no-untyped-def]
    """Others waiting and nobody free: the handoff learns both, and the customer's place, from
    one statement (`assignment.queue_outlook`), and ends no agent stint it never had."""
    from bot.core.db import database as proxy

    make_agent("busy", status="online", max_open=0)
    for n in range(3):
        dispatcher.handle(text(f"early{n}", "转人工"))
        fake_clock.advance(seconds=1)
    dispatcher.handle(text("late", "你好"))  # a conversation with the bot first
    seen: list[str] = []
    proxy.obj.query_hooks.append(lambda event: seen.append(event.sql))
    try:
        reply = dispatcher.handle(text("late", "转人工")).replies[0].text
    finally:
        proxy.obj.query_hooks.pop()
    assert "第 4 位" in reply
    assert len([sql for sql in seen if sql.startswith("SELECT") and "'queued'" in sql]) == 1  # one read of the queue
    assert not [sql for sql in seen if "assignment_log" in sql]
