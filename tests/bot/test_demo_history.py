"""The demo shop's four weeks of history (bot.demo_history): a living dashboard on a fresh
`kefu run`, the same on every run, and seeded once however often it is asked."""

from __future__ import annotations

from datetime import timedelta

from bot import demo
from bot.agents import kpi_shop
from bot.core import settings
from bot.core.models import AssignmentLog, Conversation, Customer, CustomerGroup, GroupMember, Message, Order


def counts() -> tuple[int, ...]:
    return tuple(m.select().count() for m in (Customer, Conversation, Message, AssignmentLog, Order, GroupMember))


def test_history_fills_the_shop_figures_once(config, database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    created = demo.seed(config, history=True)
    assert created["history_customers"] == 60 and created["history_conversations"] >= 28 * 8
    first = counts()
    again = demo.seed(config, history=True)
    assert again["history_conversations"] == 0 and counts() == first  # twice doubles nothing
    zone = settings.shop_zone()
    today = fake_clock.now().astimezone(zone).date()
    f = kpi_shop.figures(*kpi_shop.local_range(today - timedelta(days=29), today, zone))
    assert f.customers > 40 and f.conversations == first[1]
    assert 0.5 < f.self_service_rate < 0.95 and 0.05 < f.handoff_rate < 0.5  # mostly the bot, some humans
    assert f.first_response_median_seconds is not None and f.csat is not None and f.rated > 10
    hours = kpi_shop.hours_of_day(*kpi_shop.local_range(today - timedelta(days=29), today, zone), zone)
    assert hours[21] > hours[3]  # busy evenings, quiet nights
    assert not Conversation.select().where(Conversation.status != "resolved").exists()  # queue and 待回复 start at 0
    assert Order.select().count() > 20
    assert GroupMember.select().join(CustomerGroup).where(CustomerGroup.name == "新品尝鲜群").count() == 0


def test_history_is_the_same_on_every_run(config, database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    demo.seed(config, history=True)
    texts = [m.text for m in Message.select().order_by(Message.id).limit(50)]
    ratings = [c.satisfaction for c in Conversation.select().order_by(Conversation.id)]
    for model in (GroupMember, Order, AssignmentLog, Message, Conversation, Customer):
        model.delete().execute()
    demo.seed(config, history=True)
    assert [m.text for m in Message.select().order_by(Message.id).limit(50)] == texts
    assert [c.satisfaction for c in Conversation.select().order_by(Conversation.id)] == ratings
