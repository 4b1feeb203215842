from decimal import Decimal

import pytest

from bot.core import settings
from bot.crm import levels
from bot.core.models import Customer, Message, Outbox
from tests.bot.crm.helpers import customer, send

RULES = {"spend": [100, 500, 1000, 5000], "orders": [2, 5, 10, 20], "notify": "up", "message": "恭喜升级为{level}！"}


@pytest.fixture
def rules(database) -> dict:
    settings.put("member_levels", RULES)
    return RULES


def test_level_for_takes_the_better_basis() -> None:
    r = levels.parse_rules(RULES)
    assert levels.level_for(Decimal("0"), 0, r) == 0
    assert levels.level_for(Decimal("100"), 0, r) == 1
    assert levels.level_for(Decimal("999.99"), 0, r) == 2
    assert levels.level_for(Decimal("10"), 10, r) == 3
    assert levels.level_for(Decimal("5000"), 1, r) == 4
    only_orders = levels.parse_rules({**RULES, "spend": None})
    assert levels.level_for(Decimal("99999"), 1, only_orders) == 0


@pytest.mark.parametrize("bad", [
    {"spend": [100, 50, 200, 300]}, {"spend": [1, 2, 3]}, {"orders": ["a", 2, 3, 4]}, {"notify": "maybe"}, [],
])
def test_bad_rules_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        levels.parse_rules({**RULES, **bad} if isinstance(bad, dict) else bad)


def test_an_order_event_recomputes_the_level_and_sends_one_message(rules) -> None:
    c = customer("u1")
    first = send(order_id="T1", amount="120.00")
    assert first.level_change is not None and (first.level_change.old, first.level_change.new) == (0, 1)
    assert first.level_change.notified
    second = send(order_id="T2", amount="400.00")
    assert (second.level_change.old, second.level_change.new) == (1, 2)
    assert Customer.get_by_id(c.id).level == 2
    sent = list(Outbox.select().where(Outbox.recipient == "u1").order_by(Outbox.id))
    assert [o.content["text"] for o in sent] == ["恭喜升级为VIP1！", "恭喜升级为VIP2！"]
    assert Message.select().where((Message.author == "system") & (Message.peer_id == "u1")).count() == 2
    assert send(order_id="T2", amount="400.00").level_change is None  # the same event again: nothing


def test_a_downgrade_is_silent_by_default(rules) -> None:
    customer("u1")
    send(order_id="T1", amount="600.00")
    down = send(order_id="T1", status="refunded", at="2026-11-25T10:00:00+08:00")
    assert (down.level_change.old, down.level_change.new, down.level_change.notified) == (2, 0, False)
    assert Outbox.select().count() == 1


def test_no_message_when_notify_is_off_or_the_customer_unsubscribed(rules) -> None:
    settings.put("member_levels", {**RULES, "notify": "off"})
    customer("u1")
    assert send(order_id="T1", user="u1", amount="150.00").level_change.notified is False
    settings.put("member_levels", RULES)
    customer("u2", subscribed=False)
    assert send(order_id="T2", user="u2", amount="150.00").level_change.notified is False
    assert Outbox.select().count() == 0
    assert Customer.select().where(Customer.level == 1).count() == 2


def test_recompute_all_applies_new_thresholds(rules) -> None:
    for n, spend in enumerate(["50", "150", "700", "2000"]):
        customer(f"c{n}", total_spend=Decimal(spend), order_count=1)
    assert levels.recompute_all(batch=2) == 3
    assert [c.level for c in Customer.select().order_by(Customer.id)] == [0, 1, 2, 3]
    settings.put("member_levels", {**RULES, "spend": [1000, 2000, 3000, 4000]})
    assert levels.recompute_all(batch=2) == 3
    assert [c.level for c in Customer.select().order_by(Customer.id)] == [0, 0, 0, 2]
    assert levels.recompute_all() == 0


def test_a_broken_setting_falls_back_to_the_defaults(database) -> None:
    settings.put("member_levels", {"spend": "lots"})
    assert levels.current_rules() == levels.parse_rules(settings.DEFAULTS["member_levels"])
    customer("u1")
    assert send(order_id="T1", amount="5.00").outcome == "created"  # orders still flow
