from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from bot.crm.orders import OrderError, link_orders_for, normalize_phone, parse_event
from bot.core.models import Customer, Order
from tests.bot.crm.helpers import customer, order_event, send


@pytest.mark.parametrize("change, field", [
    ({"shop_order_id": ""}, "shop_order_id"),
    ({"shop_order_id": "has space"}, "shop_order_id"),
    ({"status": "lost"}, "status"),
    ({"event_at": "2026-11-24 10:00"}, "event_at"),  # no offset
    ({"event_at": "yesterday"}, "event_at"),
    ({"event_at": None}, "event_at"),
    ({"amount": "-1"}, "amount"),
    ({"amount": "9.999"}, "amount"),
    ({"amount": "abc"}, "amount"),
    ({"amount": True}, "amount"),
    ({"customer": "u1"}, "customer"),
    ({"customer": {"channel": "web"}}, "customer.user_id"),
    ({"customer": {"user_id": "u1"}}, "customer.channel"),
    ({"customer": {"phone": "call me"}}, "customer.phone"),
    ({"items": {"sku": "1"}}, "items"),
    ({"created_at": "soon"}, "created_at"),
])
def test_a_bad_field_is_named(change: dict, field: str) -> None:
    with pytest.raises(OrderError) as info:
        parse_event({**order_event(), **change})
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_a_good_event_parses_to_utc() -> None:
    event = parse_event(order_event(amount=199.5, phone="+86 138-0013-8000"))
    assert event.event_at == datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
    assert event.amount == Decimal("199.50")
    assert event.phone == "13800138000"
    naive = parse_event(order_event(at="2026-11-24 10:00:00"), default_tz=ZoneInfo("Asia/Shanghai"))
    assert naive.event_at == event.event_at
    assert parse_event(order_event(at=1764036000)).event_at == datetime.fromtimestamp(1764036000, timezone.utc)


def test_normalize_phone() -> None:
    assert normalize_phone("0086 13800138000") == "13800138000"
    assert normalize_phone("010-6552-9988") == "01065529988"


def test_an_order_for_a_known_customer_counts_towards_spend(database) -> None:
    c = customer("u1")
    applied = send(order_id="T1", status="paid", amount="199.00")
    assert (applied.outcome, applied.status, applied.customer_id) == ("created", "paid", c.id)
    send(order_id="T2", status="created", amount="50.00")  # not paid yet: does not count
    row = Customer.get_by_id(c.id)
    assert (row.total_spend, row.order_count) == (Decimal("199.00"), 1)
    order = Order.get(Order.shop_order_id == "T1")
    assert order.paid_at == datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)


def test_the_same_event_twice_changes_nothing(database) -> None:
    customer("u1")
    send(order_id="T1", status="paid")
    again = send(order_id="T1", status="paid")
    assert again.outcome == "duplicate"
    assert Order.select().count() == 1
    assert Customer.get().order_count == 1


def test_an_older_event_never_overwrites_a_newer_state(database) -> None:
    customer("u1")
    send(order_id="T1", status="shipped", at="2026-11-24T12:00:00+08:00", amount="88.00")
    late = send(order_id="T1", status="paid", at="2026-11-24T10:00:00+08:00", amount="1.00")
    assert (late.outcome, late.status) == ("stale", "shipped")
    order = Order.get()
    assert order.status == "shipped"
    assert order.amount == Decimal("88.00")
    assert order.paid_at == datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)  # the late event's time is kept
    assert order.shipped_at == datetime(2026, 11, 24, 4, 0, tzinfo=timezone.utc)
    newer = send(order_id="T1", status="delivered", at="2026-11-25T09:00:00+08:00", amount=None)
    assert (newer.outcome, newer.status) == ("updated", "delivered")
    assert Order.get().amount == Decimal("88.00")  # an event without amount keeps it


def test_a_refund_takes_the_order_out_of_the_totals(database) -> None:
    customer("u1")
    send(order_id="T1", status="paid", amount="300.00")
    send(order_id="T2", status="paid", amount="100.00")
    send(order_id="T1", status="refunded", at="2026-11-26T10:00:00+08:00", amount=None)
    row = Customer.get()
    assert (row.total_spend, row.order_count) == (Decimal("100.00"), 1)
    # a later "delivered" for a refunded order ranks lower: it does not bring it back
    assert send(order_id="T1", status="delivered", at="2026-11-27T10:00:00+08:00").outcome == "stale"


def test_an_unmatched_order_is_kept_and_linked_when_the_customer_writes(database) -> None:
    applied = send(order_id="T9", user="stranger", amount="520.00")
    assert applied.customer_id is None
    assert Order.get().platform_user_id == "stranger"
    c = customer("stranger")  # first contact: upsert_customer links the order
    assert Order.get().customer_id == c.id
    assert (c.total_spend, c.order_count) == (Decimal("520.00"), 1)


def test_matching_by_phone_and_linking_when_the_phone_is_learned(database) -> None:
    known = customer("u1", phone="13800138000")
    by_phone = send(order_id="P1", user=None, phone="+86 13800138000")
    assert by_phone.customer_id == known.id
    send(order_id="P2", user=None, phone="13900139000", amount="10.00")
    later = customer("u2")
    assert link_orders_for(later) == 0
    Customer.update(phone="139 0013 9000").where(Customer.id == later.id).execute()
    assert link_orders_for(Customer.get_by_id(later.id)) == 1
    assert Customer.get_by_id(later.id).order_count == 1


def test_a_new_order_needs_a_buyer_but_an_update_does_not(database) -> None:
    with pytest.raises(OrderError) as info:
        send(order_id="T1", user=None)
    assert info.value.field == "customer"
    assert Order.select().count() == 0
    customer("u1")
    send(order_id="T1")
    assert send(order_id="T1", status="shipped", at="2026-11-25T10:00:00+08:00", user=None).status == "shipped"


def test_concurrent_deliveries_of_one_order_apply_once(database) -> None:
    from concurrent.futures import ThreadPoolExecutor

    customer("u1")
    events = [order_event(order_id="C1", status="paid", amount="50.00")] * 6 + [
        order_event(order_id="C1", status="shipped", at="2026-11-24T12:00:00+08:00", amount=None)] * 6

    def deliver(data: dict) -> str:
        try:
            return send(**{"order_id": data["shop_order_id"], "status": data["status"], "at": data["event_at"],
                           "amount": data.get("amount")}).outcome
        finally:
            database.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(deliver, events))
    assert outcomes.count("created") == 1
    assert Order.select().count() == 1
    order = Order.get()
    assert (order.status, order.amount) == ("shipped", Decimal("50.00"))
    assert Customer.get().order_count == 1


def test_the_first_message_links_orders_placed_before(dispatcher) -> None:
    from tests.factories import text

    send(order_id="E1", user="v_first", amount="30.00")
    dispatcher.handle(text("v_first", "你好"))
    c = Customer.get(Customer.external_id == "v_first")
    assert Order.get().customer_id == c.id and c.order_count == 1


def test_customers_upserted_together_get_the_orders_that_named_them(database) -> None:
    """The SQLite batch upserts its senders at once (`upsert_customers`): one read finds which
    of them an unlinked order names; the others are not linked to anything."""
    from bot.crm.conversations import upsert_customers

    send(order_id="G1", user="g_buyer", amount="88.00")
    send(order_id="G2", user="g_other_shop_user", amount="1.00")
    got = upsert_customers([("web", "g_buyer", "买家"), ("web", "g_browser", ""), ("web", "g_third", "")])
    buyer = Customer.get(Customer.external_id == "g_buyer")
    assert got[("web", "g_buyer")].id == buyer.id and buyer.nickname == "买家"
    assert Order.get(Order.shop_order_id == "G1").customer_id == buyer.id
    assert (buyer.order_count, buyer.total_spend) == (1, Decimal("88.00"))
    assert Order.get(Order.shop_order_id == "G2").customer_id is None  # nobody of that name wrote
    assert Customer.select().where(Customer.external_id.in_(["g_browser", "g_third"])).count() == 2

