"""Segments: saved customer filters, turned into one peewee query.

Why a query and not a list: a segment is a campaign target and shows a live count in the
admin, so it must always reflect today's customers; `customers_in` walks it in id-ordered
batches (keyset, not OFFSET), so a campaign over many customers neither loads them all nor
skips anyone when rows change meanwhile.

A filter is a JSON object (stored in `Segment.filter`); every key is optional and they
combine with AND:
  levels: [0..4]                      member level in the list (0 = 普通会员)
  tags: ["老客户", ...]; tags_match: "any" (default) | "all"
  spend_min, spend_max: yuan          total spend in the range (inclusive)
  last_order_after, last_order_before: "YYYY-MM-DD" (shop timezone) or an ISO time
  last_order_within_days, no_order_for_days: N
  groups: [group id, ...]             member of any of these groups
  birthday_month: 1..12 (or a list)
  channels: ["mp", ...]
  level_min, level_max: 0..4; channel, source: a name; min_spend (= spend_min);
  min_orders: N orders at least; active_within_days / inactive_days: N (last contact)
Erased customers are never in a segment. `condition(spec)` is the same filter as a
condition on Customer, for callers that build their own query (campaign targets).
"""

from __future__ import annotations

import operator
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from functools import reduce
from typing import Any, Iterator, Mapping
from zoneinfo import ZoneInfo

import peewee

from bot.core import clock, settings
from bot.core.models import Customer, CustomerTag, GroupMember, Order, Segment, Tag

KEYS = ("levels", "tags", "tags_match", "spend_min", "spend_max", "last_order_after", "last_order_before",
        "last_order_within_days", "no_order_for_days", "groups", "birthday_month", "channels",
        "level_min", "level_max", "channel", "source", "min_spend", "min_orders", "active_within_days", "inactive_days")


class SegmentError(ValueError):
    """A filter key is wrong; the message names it."""


def _ints(value: Any, key: str, low: int, high: int) -> list[int]:
    items = value if isinstance(value, list) else [value]
    out: list[int] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (int, str)) or not str(item).strip().isdigit():
            raise SegmentError(f"{key}: expected whole numbers, got {item!r}")
        number = int(item)
        if not low <= number <= high:
            raise SegmentError(f"{key}: {number} is outside {low}..{high}")
        out.append(number)
    if not out:
        raise SegmentError(f"{key}: give at least one value")
    return out


def _money(value: Any, key: str) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise SegmentError(f"{key}: not a number: {value!r}") from None
    if not amount.is_finite() or amount < 0:
        raise SegmentError(f"{key}: must be a number ≥ 0")
    return amount


def _when(value: Any, key: str, zone: ZoneInfo) -> datetime:
    if not isinstance(value, str):
        raise SegmentError(f"{key}: expected a date YYYY-MM-DD")
    try:
        if len(value.strip()) == 10:
            day = date.fromisoformat(value.strip())
            return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(timezone.utc)
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise SegmentError(f"{key}: not a date: {value!r}") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)).astimezone(timezone.utc)


def validate(spec: Any) -> dict[str, Any]:
    """Check a filter; returns it cleaned (unknown keys refused, values normalized)."""
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise SegmentError("filter: must be a JSON object")
    unknown = sorted(set(spec) - set(KEYS))
    if unknown:
        raise SegmentError(f"{unknown[0]}: unknown filter key (known: {', '.join(KEYS)})")
    clean: dict[str, Any] = {}
    for key, value in spec.items():
        if value is None or value == "" or value == []:
            continue
        if key == "levels":
            clean[key] = _ints(value, key, 0, 4)
        elif key in ("level_min", "level_max"):
            clean[key] = _ints(value, key, 0, 4)[0]
        elif key in ("channel", "source"):
            if not isinstance(value, str):
                raise SegmentError(f"{key}: expected a name")
            clean[key] = value.strip()
        elif key == "min_spend":
            clean["spend_min"] = str(max(_money(value, key), Decimal(clean.get("spend_min", "0"))))
        elif key == "min_orders":
            clean[key] = _ints(value, key, 0, 10**9)[0]
        elif key in ("active_within_days", "inactive_days"):
            clean[key] = _ints(value, key, 1, 36500)[0]
        elif key in ("tags", "channels"):
            items = value if isinstance(value, list) else [value]
            if not all(isinstance(v, str) and v.strip() for v in items):
                raise SegmentError(f"{key}: expected a list of names")
            clean[key] = [v.strip() for v in items]
        elif key == "tags_match":
            if value not in ("any", "all"):
                raise SegmentError("tags_match: must be any or all")
            clean[key] = value
        elif key in ("spend_min", "spend_max"):
            clean[key] = str(_money(value, key))
        elif key in ("last_order_after", "last_order_before"):
            _when(value, key, ZoneInfo("UTC"))
            clean[key] = value.strip()
        elif key in ("last_order_within_days", "no_order_for_days"):
            clean[key] = _ints(value, key, 1, 36500)[0]
        elif key == "groups":
            clean[key] = _ints(value, key, 1, 2**31 - 1)
        elif key == "birthday_month":
            clean[key] = _ints(value, key, 1, 12)
    if "spend_min" in clean and "spend_max" in clean and Decimal(clean["spend_min"]) > Decimal(clean["spend_max"]):
        raise SegmentError("spend_min: is greater than spend_max")
    return clean


def _spec(segment: Segment | Mapping[str, Any]) -> dict[str, Any]:
    return validate(segment.filter if isinstance(segment, Segment) else segment)




def condition(segment: Segment | Mapping[str, Any]) -> peewee.Expression:
    """The segment's filter as one condition on Customer (SegmentError when it is wrong)."""
    spec = _spec(segment)
    zone = settings.shop_zone()
    where: list[peewee.Expression] = [Customer.erased_at.is_null()]
    if "levels" in spec:
        where.append(Customer.level.in_(spec["levels"]))
    if "level_min" in spec:
        where.append(Customer.level >= spec["level_min"])
    if "level_max" in spec:
        where.append(Customer.level <= spec["level_max"])
    if "channels" in spec:
        where.append(Customer.channel.in_(spec["channels"]))
    if "channel" in spec:
        where.append(Customer.channel == spec["channel"])
    if "source" in spec:
        where.append(Customer.source == spec["source"])
    if "min_orders" in spec:
        where.append(Customer.order_count >= spec["min_orders"])
    if "active_within_days" in spec:
        where.append(Customer.last_contact_at >= clock.now() - timedelta(days=spec["active_within_days"]))
    if "inactive_days" in spec:
        where.append(Customer.last_contact_at < clock.now() - timedelta(days=spec["inactive_days"]))
    if "spend_min" in spec:
        where.append(Customer.total_spend >= Decimal(spec["spend_min"]))
    if "spend_max" in spec:
        where.append(Customer.total_spend <= Decimal(spec["spend_max"]))
    if "tags" in spec:
        tagged = (CustomerTag.select(CustomerTag.customer).join(Tag)
                  .where(Tag.name.in_(spec["tags"])).group_by(CustomerTag.customer))
        if spec.get("tags_match") == "all":
            tagged = tagged.having(peewee.fn.COUNT(peewee.fn.DISTINCT(Tag.id)) == len(set(spec["tags"])))
        where.append(Customer.id.in_(tagged))
    if "groups" in spec:
        members = GroupMember.select(GroupMember.customer).where(GroupMember.group.in_(spec["groups"]))
        where.append(Customer.id.in_(members))
    if "birthday_month" in spec:
        where.append(Customer.birthday.is_null(False) & Customer.birthday.month.in_(spec["birthday_month"]))
    after = _when(spec["last_order_after"], "last_order_after", zone) if "last_order_after" in spec else None
    before = _when(spec["last_order_before"], "last_order_before", zone) if "last_order_before" in spec else None
    if "last_order_within_days" in spec:
        since = clock.now() - timedelta(days=spec["last_order_within_days"])
        after = max(after, since) if after else since
    if "no_order_for_days" in spec:
        until = clock.now() - timedelta(days=spec["no_order_for_days"])
        before = min(before, until) if before else until
    live_orders = Order.customer.is_null(False) & (Order.status != "cancelled")
    if after is not None:
        where.append(Customer.id.in_(Order.select(Order.customer).where(live_orders & (Order.created_at >= after))))
    if before is not None:
        # last order before: has ordered, and nothing since
        where.append(Customer.id.in_(Order.select(Order.customer).where(live_orders)))
        where.append(Customer.id.not_in(Order.select(Order.customer).where(live_orders & (Order.created_at >= before))))
    return reduce(operator.and_, where)


def query(segment: Segment | Mapping[str, Any]) -> peewee.ModelSelect:
    """The customers a segment selects, as a query (not yet run)."""
    return Customer.select().where(condition(segment))


def count(segment: Segment | Mapping[str, Any]) -> int:
    """How many customers the segment selects right now."""
    return query(segment).count()


def customers_in(segment: Segment | Mapping[str, Any], batch: int = 500) -> Iterator[Customer]:
    """Every customer of the segment, in id order, fetched `batch` at a time."""
    base = query(segment)
    last = 0
    while True:
        rows = list(base.where(Customer.id > last).order_by(Customer.id).limit(batch))
        if not rows:
            return
        yield from rows
        last = rows[-1].id
