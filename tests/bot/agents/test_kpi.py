"""Agent KPIs from the assignment log: per agent, per day, spam left out."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from bot.agents import assignment, kpi
from bot.crm import conversations
from bot.core.models import Conversation, Customer
from tests.factories import make_agent


def handoff(user: str, prefer: int) -> Conversation:
    customer = conversations.upsert_customer("web", user)
    conversation, _ = conversations.open_conversation(customer)
    assignment.assign_next_agent(conversation, prefer_id=prefer)
    return Conversation.get_by_id(conversation.id)


def test_per_agent_figures(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    mei, ali = make_agent("mei"), make_agent("ali")
    start = fake_clock.now()
    # mei: replies after 10 s and 30 s and 100 s, resolves two, one rated 4 and one rated 2
    for n, (wait, rating) in enumerate([(10, 4), (30, 2), (100, None)]):
        conversation = handoff(f"m{n}", mei.id)
        fake_clock.advance(seconds=wait)
        conversations.record_agent_reply(conversation)
        if n < 2:
            fake_clock.advance(seconds=50)
            conversations.resolve(conversation, by="agent")
            Conversation.update(satisfaction=rating).where(Conversation.id == conversation.id).execute()
    # ali: one assignment never answered
    handoff("a0", ali.id)
    # a spam customer is invisible
    spam = handoff("spam", mei.id)
    Customer.update(is_spam=True).where(Customer.id == spam.customer_id).execute()
    rows = {r.agent: r for r in kpi.per_agent(start, fake_clock.now() + timedelta(seconds=1))}
    m, a = rows["mei"], rows["ali"]
    assert (m.assigned, m.replied, m.reply_rate, m.handled, m.resolved) == (3, 3, 1.0, 3, 2)
    assert m.first_response_seconds == round((10 + 30 + 100) / 3, 2)
    assert m.first_response_p90_seconds == 100
    assert m.resolution_seconds == (10 + 50 + 30 + 50) / 2
    assert (m.satisfaction, m.rated) == (3.0, 2)
    assert m.open_now == 2  # m2 and the spam conversation are still open
    assert (a.assigned, a.replied, a.reply_rate, a.first_response_seconds) == (1, 0, 0.0, None)


def test_a_reassigned_stint_counts_against_the_late_agent(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    mei = make_agent("mei")
    make_agent("ali")  # free: the overdue conversation goes to ali
    start = fake_clock.now()
    conversation = handoff("u1", mei.id)
    fake_clock.advance(minutes=4)
    assert assignment.reassign_overdue(conversation, conversation.assigned_at) is not None
    fake_clock.advance(seconds=20)
    conversations.record_agent_reply(Conversation.get_by_id(conversation.id))
    rows = {r.agent: r for r in kpi.per_agent(start, fake_clock.now() + timedelta(seconds=1))}
    assert (rows["mei"].assigned, rows["mei"].reply_rate) == (1, 0.0)
    assert (rows["ali"].assigned, rows["ali"].reply_rate, rows["ali"].first_response_seconds) == (1, 1.0, 20.0)


def test_daily_rows_use_the_shops_local_day(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    mei = make_agent("mei")
    # 2026-11-24 16:30 UTC is already the 25th in Shanghai
    fake_clock.set(datetime(2026, 11, 24, 16, 30, tzinfo=timezone.utc))
    handoff("late", mei.id)
    fake_clock.set(datetime(2026, 11, 24, 3, 0, tzinfo=timezone.utc))
    handoff("early", mei.id)
    rows = kpi.daily(date(2026, 11, 24), date(2026, 11, 25), timezone="Asia/Shanghai")
    assert [(r.agent, r.day, r.assigned) for r in rows] == [("mei", date(2026, 11, 24), 1), ("mei", date(2026, 11, 25), 1)]
    utc_rows = kpi.daily(date(2026, 11, 24), date(2026, 11, 24), timezone="UTC")
    assert [(r.day, r.assigned) for r in utc_rows] == [(date(2026, 11, 24), 2)]


def test_percentile_nearest_rank() -> None:
    assert kpi.percentile([], 90) is None
    assert kpi.percentile([5.0], 90) == 5.0
    assert kpi.percentile([float(n) for n in range(1, 11)], 90) == 9.0
    assert kpi.percentile([float(n) for n in range(1, 11)], 50) == 5.0
