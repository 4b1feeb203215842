from datetime import date
from decimal import Decimal

import pytest

from bot.crm import segments
from bot.crm.erasure import erase
from bot.core.models import Customer, CustomerGroup, CustomerTag, GroupMember, Segment, Tag
from tests.bot.crm.helpers import customer, send


@pytest.fixture
def shop(database, fake_clock) -> dict[str, Customer]:
    """Five customers with different levels, tags, spend, orders, groups and birthdays."""
    people = {
        "an": customer("an", level=1, total_spend=Decimal("150"), birthday=date(1990, 11, 3)),
        "bo": customer("bo", level=2, total_spend=Decimal("800"), birthday=date(1985, 12, 24)),
        "cai": customer("cai", level=0, total_spend=Decimal("0")),
        "dong": customer("dong", level=3, total_spend=Decimal("3000"), birthday=date(2000, 11, 30)),
        "er": customer("er", level=1, total_spend=Decimal("200"), channel="mp"),
    }
    vip, old = Tag.create(name="VIP"), Tag.create(name="老客户")
    for who, tags in {"an": [vip, old], "bo": [old], "dong": [vip, old]}.items():
        for tag in tags:
            CustomerTag.create(customer=people[who], tag=tag)
    live = CustomerGroup.create(name="直播群", kind="直播群")
    for who in ("bo", "cai"):
        GroupMember.create(group=live, customer=people[who])
    people["group"] = live  # type: ignore[assignment]
    return people


def ids(spec: dict, shop: dict) -> set[str]:
    found = {c.id for c in segments.customers_in(spec, batch=2)}
    assert segments.count(spec) == len(found)
    return {name for name, c in shop.items() if isinstance(c, Customer) and c.id in found}


def test_each_filter(shop) -> None:
    assert ids({}, shop) == {"an", "bo", "cai", "dong", "er"}
    assert ids({"levels": [1, 3]}, shop) == {"an", "dong", "er"}
    assert ids({"tags": ["VIP"]}, shop) == {"an", "dong"}
    assert ids({"tags": ["VIP", "老客户"]}, shop) == {"an", "bo", "dong"}
    assert ids({"tags": ["VIP", "老客户"], "tags_match": "all"}, shop) == {"an", "dong"}
    assert ids({"spend_min": 150, "spend_max": "800"}, shop) == {"an", "bo", "er"}
    assert ids({"groups": [shop["group"].id]}, shop) == {"bo", "cai"}
    assert ids({"birthday_month": 11}, shop) == {"an", "dong"}
    assert ids({"channels": ["mp"]}, shop) == {"er"}
    assert ids({"levels": [1], "tags": ["老客户"]}, shop) == {"an"}


def test_last_order_date(shop, fake_clock) -> None:
    send(order_id="A1", user="an", at="2026-10-01T10:00:00+08:00", created_at="2026-10-01T10:00:00+08:00")
    send(order_id="B1", user="bo", at="2026-11-20T10:00:00+08:00", created_at="2026-11-20T10:00:00+08:00")
    send(order_id="B0", user="bo", at="2026-09-01T10:00:00+08:00", created_at="2026-09-01T10:00:00+08:00")
    assert ids({"last_order_after": "2026-11-01"}, shop) == {"bo"}
    assert ids({"last_order_before": "2026-11-01"}, shop) == {"an"}  # bo ordered since
    assert ids({"last_order_within_days": 30}, shop) == {"bo"}  # the fake clock is 2026-11-24
    assert ids({"no_order_for_days": 30}, shop) == {"an"}


def test_a_saved_segment_counts_live(shop) -> None:
    segment = Segment.create(name="11月生日VIP", filter={"birthday_month": [11], "tags": ["VIP"]})
    assert segments.count(segment) == 2
    Customer.update(birthday=date(1991, 11, 11)).where(Customer.id == shop["bo"].id).execute()
    CustomerTag.create(customer=shop["bo"], tag=Tag.get(Tag.name == "VIP"))
    assert segments.count(segment) == 3
    erase(shop["an"])
    assert segments.count(segment) == 2


def test_customers_in_walks_every_customer_once_in_id_order(database) -> None:
    made = [customer(f"c{n}").id for n in range(7)]
    assert [c.id for c in segments.customers_in({}, batch=3)] == made


@pytest.mark.parametrize("spec, word", [
    ({"level": [1]}, "level"), ({"levels": [9]}, "levels"), ({"spend_min": "lots"}, "spend_min"),
    ({"spend_min": 10, "spend_max": 5}, "spend_min"), ({"birthday_month": 13}, "birthday_month"),
    ({"last_order_after": "2026-13-01"}, "last_order_after"), ({"tags_match": "some"}, "tags_match"),
    ("levels", "filter"),
])
def test_a_bad_filter_names_its_key(spec, word) -> None:
    with pytest.raises(segments.SegmentError, match=f"^{word}: "):
        segments.validate(spec)


def test_the_campaign_style_keys(shop, fake_clock) -> None:
    """The keys bot/campaigns/targets.py uses work here too, so a saved Segment means the
    same thing in the admin count and in a campaign."""
    Customer.update(order_count=3).where(Customer.id.in_([shop["bo"].id, shop["dong"].id])).execute()
    fake_clock.advance(days=10)
    customer("an")  # writes again today
    assert ids({"level_min": 1, "level_max": 2}, shop) == {"an", "bo", "er"}
    assert ids({"channel": "mp"}, shop) == {"er"}
    assert ids({"source": "web", "min_spend": 800}, shop) == {"bo", "dong"}
    assert ids({"min_orders": 3}, shop) == {"bo", "dong"}
    assert ids({"active_within_days": 5}, shop) == {"an"}
    assert ids({"inactive_days": 5}, shop) == {"bo", "cai", "dong", "er"}
    assert Customer.select().where(segments.condition({"levels": [3]})).count() == 1
