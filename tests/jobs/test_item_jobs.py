"""Per-item jobs with a fake clock: coupon reminders, revisits (after delivery, dormant),
birthdays, member levels, housekeeping. Each runs twice to prove it is idempotent."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from bot.conversation import revisits
from bot.core import clock, settings
from bot.core.models import Conversation, Coupon, Customer, Delivery, IssuedCoupon, Order, Outbox
from jobs import birthdays, coupons, housekeeping, levels
from jobs import revisits as revisit_jobs
from tests.jobs.conftest import KINDS, RecordingSender, deliver_all, make_customers

pytestmark = pytest.mark.usefixtures("database", "fake_clock")


def issue(customer: Customer, coupon: Coupon, code: str, expires_in: timedelta, used: bool = False) -> IssuedCoupon:
    return IssuedCoupon.create(coupon=coupon, customer=customer, code=code, expires_at=clock.now() + expires_in,
                               used_at=clock.now() if used else None)


def test_coupon_reminders_once_each_and_never_for_used_or_expired(fake_clock) -> None:  # type: ignore[no-untyped-def]
    people = make_customers(5)
    coupon = Coupon.create(name="满200减30", value=30)
    due = issue(people[0], coupon, "SOON", timedelta(days=2))
    issue(people[1], coupon, "USED", timedelta(days=2), used=True)
    issue(people[2], coupon, "GONE", timedelta(hours=-1))
    issue(people[3], coupon, "LATER", timedelta(days=10))
    later_used = issue(people[4], coupon, "SOON2", timedelta(days=1))
    IssuedCoupon.update(used_at=clock.now()).where(IssuedCoupon.id == later_used.id).execute()

    assert coupons.remind_expiring(KINDS) == {"queued": 1, "skipped": 0}
    assert coupons.remind_expiring(KINDS) == {"queued": 0, "skipped": 0}  # twice: nothing new
    sender = RecordingSender()
    deliver_all({"web": sender})
    assert [(r, c["text"]) for r, c in sender.sent] == [("c0", "亲爱的顾客0，您的优惠券 SOON 将于 11月26日 10:00 到期，别忘了使用哦～")]
    assert IssuedCoupon.get_by_id(due.id).reminded_at == clock.now()
    # days later the 10-day coupon enters the window and gets its own single reminder
    fake_clock.advance(days=8)
    assert coupons.remind_expiring(KINDS) == {"queued": 1, "skipped": 0}
    assert coupons.remind_expiring(KINDS) == {"queued": 0, "skipped": 0}
    assert deliver_all({"web": sender}) == 1 and sender.recipients() == ["c0", "c3"]
    # the panel's 发送明细 learns the outcome at the next housekeeping (it said 已排队发送 forever)
    assert {d.status for d in Delivery.select()} == {"claimed"}
    assert housekeeping.run_housekeeping()["deliveries_synced"] == 2
    assert {d.status for d in Delivery.select()} == {"sent"}


def test_coupon_reminder_settings(fake_clock) -> None:  # type: ignore[no-untyped-def]
    people = make_customers(1)
    issue(people[0], Coupon.create(name="券", value=5), "FIVE", timedelta(days=5))
    assert coupons.remind_expiring(KINDS)["queued"] == 0  # default window: 3 days
    settings.put("coupon_reminder", {"enabled": True, "days": 7, "text": "{coupon} 快过期了", "template": None})
    assert coupons.remind_expiring(KINDS)["queued"] == 1
    assert Outbox.get().content == {"kind": "text", "text": "FIVE 快过期了"}


def delivered_order(customer: Customer, number: str, days_ago: float) -> Order:
    when = clock.now() - timedelta(days=days_ago)
    return Order.create(shop_order_id=number, customer=customer, channel=customer.channel, status="delivered",
                        amount=99, created_at=when - timedelta(days=3), delivered_at=when)


def test_revisit_n_days_after_delivery_once(fake_clock) -> None:  # type: ignore[no-untyped-def]
    people = make_customers(2)
    old = delivered_order(people[0], "SO-1", days_ago=4)
    fresh = delivered_order(people[1], "SO-2", days_ago=1)
    assert revisit_jobs.revisit_delivered(KINDS) == {"queued": 1, "skipped": 0}
    assert revisit_jobs.revisit_delivered(KINDS) == {"queued": 0, "skipped": 0}
    assert Order.get_by_id(old.id).revisited_at == clock.now()
    assert Order.get_by_id(fresh.id).revisited_at is None
    fake_clock.advance(days=2)
    assert revisit_jobs.revisit_delivered(KINDS) == {"queued": 1, "skipped": 0}
    sender = RecordingSender()
    deliver_all({"web": sender})
    assert [c["text"] for _, c in sender.sent][0].startswith("亲爱的顾客0，您的订单 SO-1 已签收")


def test_revisit_answer_recorded_and_low_score_opens_a_conversation() -> None:
    people = make_customers(2)
    good, bad = delivered_order(people[0], "SO-9", 5), delivered_order(people[1], "SO-10", 5)
    revisit_jobs.revisit_delivered(KINDS)
    assert revisits.record_answer(people[0], "好") is None  # not a score
    assert revisits.record_answer(people[0], "5") is not None
    assert revisits.record_answer(people[0], "4") is None  # answered already
    assert Order.get_by_id(good.id).revisit_score == 5
    assert "回访评分 5（订单 SO-9）" in Customer.get_by_id(people[0].id).notes
    assert Conversation.select().where(Conversation.customer == people[0].id).count() == 0
    assert revisits.record_answer(people[1], "1") is not None
    assert Order.get_by_id(bad.id).revisit_score == 1
    conversation = Conversation.get(Conversation.customer == people[1].id)
    assert conversation.status == "queued" and conversation.handoff_reason == "revisit"


def test_a_low_revisit_score_is_noted_on_the_shops_date_and_briefed_in_chinese(fake_clock) -> None:  # type: ignore[no-untyped-def]
    from bot.conversation.routing import handoff_messages
    from tests.factories import make_agent

    fake_clock.advance(hours=18)  # 2026-11-24 20:00 UTC is already the 25th in Shanghai
    person = make_customers(1)[0]
    delivered_order(person, "SO-11", 5)
    revisit_jobs.revisit_delivered(KINDS)
    assert revisits.record_answer(person, "1") is not None
    assert "2026-11-25 回访评分 1（订单 SO-11）" in Customer.get_by_id(person.id).notes
    conversation = Conversation.get(Conversation.customer == person.id)
    brief = handoff_messages(conversation, Customer.get_by_id(person.id), make_agent("小美", "mei"))[1].reply.text
    assert "新的人工会话（回访低分）" in brief


def test_dormant_revisit_once_per_quiet_stretch_with_coupon(fake_clock) -> None:  # type: ignore[no-untyped-def]
    people = make_customers(2)
    coupon = Coupon.create(name="回归礼", value=10)
    settings.put("dormant_revisit", {"enabled": True, "days": 90, "coupon_id": coupon.id,
                                     "text": "好久不见，送您 {coupon}", "template": None})
    Order.create(shop_order_id="OLD", customer=people[0], amount=10, created_at=clock.now() - timedelta(days=120))
    Order.create(shop_order_id="NEW", customer=people[1], amount=10, created_at=clock.now() - timedelta(days=10))
    assert revisit_jobs.revisit_dormant(KINDS) == {"queued": 1, "skipped": 0, "duplicate": 0}
    assert revisit_jobs.revisit_dormant(KINDS) == {"queued": 0, "skipped": 0, "duplicate": 1}
    issued = IssuedCoupon.get()
    assert issued.customer_id == people[0].id and Outbox.get().content["text"] == f"好久不见，送您 {issued.code}"
    # a new order, then another quiet stretch: a new revisit
    Order.create(shop_order_id="BACK", customer=people[0], amount=10, created_at=clock.now())
    fake_clock.advance(days=91)
    assert revisit_jobs.revisit_dormant(KINDS)["queued"] == 2
    assert IssuedCoupon.select().count() == 3


def test_birthdays_once_a_year_in_shop_time(fake_clock) -> None:  # type: ignore[no-untyped-def]
    people = make_customers(3)
    Customer.update(birthday=date(1990, 11, 24)).where(Customer.id == people[0].id).execute()
    Customer.update(birthday=date(1995, 11, 25)).where(Customer.id == people[1].id).execute()
    fake_clock.set(datetime(2026, 11, 23, 17, 0, tzinfo=timezone.utc))  # 01:00 on the 24th in Shanghai
    assert birthdays.greet_birthdays(KINDS) == {"queued": 1, "skipped": 0, "duplicate": 0}
    assert birthdays.greet_birthdays(KINDS) == {"queued": 0, "skipped": 0, "duplicate": 1}
    fake_clock.advance(days=1)
    assert birthdays.greet_birthdays(KINDS)["queued"] == 1
    fake_clock.advance(days=365)
    assert birthdays.greet_birthdays(KINDS)["queued"] == 1  # next year, again
    assert Delivery.select().where(Delivery.job_key == "birthday:2026").count() == 2


def test_leap_day_birthdays_on_the_28th(fake_clock) -> None:  # type: ignore[no-untyped-def]
    people = make_customers(1)
    Customer.update(birthday=date(2000, 2, 29)).where(Customer.id == people[0].id).execute()
    fake_clock.set(datetime(2027, 2, 28, 4, 0, tzinfo=timezone.utc))
    assert birthdays.greet_birthdays(KINDS)["queued"] == 1


def test_birthday_outside_the_window_is_skipped_with_reason(fake_clock) -> None:  # type: ignore[no-untyped-def]
    people = make_customers(1, channel="mp")
    Customer.update(birthday=date(1990, 11, 24), last_inbound_at=clock.now() - timedelta(days=3)).execute()
    assert birthdays.greet_birthdays(KINDS) == {"queued": 0, "skipped": 1, "duplicate": 0}
    assert Delivery.get().reason == "outside the 48-hour window and no template"
    assert people


def test_member_levels_job_recomputes() -> None:
    people = make_customers(2)
    Customer.update(total_spend=3500, order_count=4).where(Customer.id == people[0].id).execute()
    levels.recompute_levels()
    assert Customer.get_by_id(people[0].id).level == 2  # default thresholds: 3000 spend is VIP2
    assert Customer.get_by_id(people[1].id).level == 0


def test_housekeeping_purges_by_retention(fake_clock) -> None:  # type: ignore[no-untyped-def]
    people = make_customers(1)
    Outbox.create(key="old", channel="web", recipient="c0", content={}, status="sent", created_at=clock.now())
    Outbox.create(key="waiting", channel="web", recipient="c0", content={}, status="pending", created_at=clock.now())
    Delivery.create(job_key="x", customer=people[0], status="sent", updated_at=clock.now())
    fake_clock.advance(days=31)
    assert housekeeping.purge_outbox() == 1
    assert [o.key for o in Outbox.select()] == ["waiting"]
    assert housekeeping.purge_deliveries() == 0
    fake_clock.advance(days=150)
    assert housekeeping.purge_deliveries() == 1


def test_message_retention_ends_old_dedup_keys_but_keeps_open_conversations(dispatcher, fake_clock) -> None:  # type: ignore[no-untyped-def]
    from bot.core.models import Message
    from tests.factories import make_agent, shop_faqs, text

    shop_faqs()
    make_agent("xm")
    dispatcher.handle(text("done-user", "发货要多久", msg_id="old-1"))
    dispatcher.handle(text("open-user", "转人工", msg_id="old-2"))
    Conversation.update(status="resolved", open_key=None).where(
        Conversation.customer == Customer.get(Customer.external_id == "done-user")).execute()
    assert housekeeping.purge_messages() == 0  # default: keep history forever
    settings.put("retention", {"outbox_days": 30, "delivery_days": 180, "message_days": 90})
    fake_clock.advance(days=89)
    assert housekeeping.purge_messages() == 0
    fake_clock.advance(days=2)
    assert housekeeping.purge_messages() == 2  # the resolved conversation's question and answer
    left = {m.external_id for m in Message.select().where(Message.direction == "in")}
    assert left == {"old-2"}  # the open conversation keeps its messages
    # once purged, the old key no longer blocks: a (very) late duplicate is handled afresh
    assert not dispatcher.handle(text("done-user", "发货要多久", msg_id="old-1")).duplicate


def test_revisit_answer_through_the_dispatcher(dispatcher) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import text

    people = make_customers(1)
    order = delivered_order(people[0], "SO-77", 4)
    revisit_jobs.revisit_delivered(KINDS)
    result = dispatcher.handle(text("c0", "2"))
    assert [r.text for r in result.replies] == [revisits.SORRY]
    assert Order.get_by_id(order.id).revisit_score == 2
    assert Conversation.get(Conversation.customer == people[0].id).status == "queued"
    # the next digit is no longer a revisit answer
    assert revisits.reply_to(Customer.get_by_id(people[0].id), "5") is None
