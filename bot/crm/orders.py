"""Orders from the shop system: validate an event, apply it once, link it to a customer.

Why this shape: the shop sends one event per change (created, paid, shipped, delivered,
refunded, cancelled), retries when unsure, and its events can overtake each other. So:
- an event is keyed by the shop's order id; applying the same event twice changes nothing;
- an order's state only moves forward: an event wins when (status rank, event time) is
  greater than the stored one, so a late "paid" never undoes "shipped" (its time is still
  recorded as `paid_at`);
- the buyer is named by channel + platform user id, or by phone; an order nobody matches
  is kept with those fields and linked when the customer appears (`link_orders_for`).
Every applied event recomputes the customer's totals and member level in the same
transaction. The HTTP endpoint and the CSV import share `parse_event`, so both report a
bad field the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Collection, Mapping, Sequence

import peewee

from bot.crm import levels
from bot.core.db import advisory_xact_lock, execute, transaction
from bot.core.models import Customer, Order

STATUS_RANK: dict[str, int] = {"created": 0, "paid": 1, "shipped": 2, "delivered": 3, "refunded": 4, "cancelled": 4}
COUNTED_STATUSES = ("paid", "shipped", "delivered")  # orders that count towards spend and order count
MAX_AMOUNT = Decimal("1000000000")
_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_CHANNEL = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class OrderError(ValueError):
    """A field of an order event is missing or wrong; `field` names it."""

    def __init__(self, field: str, problem: str) -> None:
        self.field, self.problem = field, problem
        super().__init__(f"{field}: {problem}")


@dataclass(frozen=True)
class OrderEvent:
    shop_order_id: str
    status: str
    event_at: datetime
    amount: Decimal | None = None  # None: keep the stored amount
    channel: str = ""
    user_id: str = ""
    phone: str = ""
    items: tuple[Mapping[str, Any], ...] | None = None
    created_at: datetime | None = None  # when the order was placed; default: the first event's time

    @property
    def has_buyer(self) -> bool:
        return bool((self.channel and self.user_id) or self.phone)


@dataclass(frozen=True)
class Applied:
    """What applying one event did. outcome: created | updated | stale | duplicate."""

    shop_order_id: str
    outcome: str
    status: str
    customer_id: int | None
    level_change: levels.LevelChange | None = field(default=None)


# --- parsing -------------------------------------------------------------------------


def normalize_phone(value: str) -> str:
    """Digits only, without a +86 / 0086 prefix: '+86 138-0013-8000' -> '13800138000'."""
    digits = re.sub(r"\D", "", value)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) == 11:
            return digits[len(prefix):]
    return digits


def parse_time(value: Any, name: str, default_tz: tzinfo | None = None) -> datetime:
    """ISO 8601 with an offset, or unix seconds; a naive time only with `default_tz`."""
    if isinstance(value, bool):
        raise OrderError(name, "must be an ISO 8601 time with offset or unix seconds")
    if isinstance(value, (int, float)):
        if not 0 < value < 32503680000:
            raise OrderError(name, f"unix seconds out of range: {value}")
        return datetime.fromtimestamp(value, timezone.utc)
    if not isinstance(value, str) or not value.strip():
        raise OrderError(name, "is required: an ISO 8601 time with offset (2026-11-24T10:00:00+08:00) or unix seconds")
    text = value.strip()
    if text.isdigit():
        return parse_time(int(text), name, default_tz)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise OrderError(name, f"not an ISO 8601 time: {text!r}") from None
    if parsed.tzinfo is None:
        if default_tz is None:
            raise OrderError(name, f"needs a UTC offset, e.g. {text}+08:00")
        parsed = parsed.replace(tzinfo=default_tz)
    return parsed.astimezone(timezone.utc)


def _text(data: Mapping[str, Any], key: str, name: str, max_len: int) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise OrderError(name, "must be a string")
    value = value.strip()
    if len(value) > max_len:
        raise OrderError(name, f"is longer than {max_len} characters")
    return value


def parse_amount(value: Any, name: str = "amount") -> Decimal | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise OrderError(name, "must be a number of yuan, e.g. 199.00")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise OrderError(name, f"not a number: {value!r}") from None
    if not amount.is_finite() or amount < 0 or amount >= MAX_AMOUNT:
        raise OrderError(name, f"must be between 0 and {MAX_AMOUNT}")
    if amount != amount.quantize(Decimal("0.01")):
        raise OrderError(name, "has more than 2 decimal places (yuan with fen)")
    return amount.quantize(Decimal("0.01"))


def parse_event(data: Any, default_tz: tzinfo | None = None, channels: Collection[str] | None = None) -> OrderEvent:
    """Validate one order event (the API's JSON object, or a CSV row made into one). With
    `channels` (the configured channel names), a buyer on another channel is refused: that
    order could never be linked to a customer."""
    if not isinstance(data, Mapping):
        raise OrderError("body", "must be a JSON object")
    shop_order_id = _text(data, "shop_order_id", "shop_order_id", 64)
    if not shop_order_id:
        raise OrderError("shop_order_id", "is required")
    if not _ID.match(shop_order_id):
        raise OrderError("shop_order_id", "use 1-64 letters, digits, _ . : -")
    status = _text(data, "status", "status", 16).lower()
    if status not in STATUS_RANK:
        raise OrderError("status", f"must be one of {', '.join(STATUS_RANK)}; got {status or 'nothing'}")
    event_at = parse_time(data.get("event_at"), "event_at", default_tz)
    created_at = parse_time(data["created_at"], "created_at", default_tz) if data.get("created_at") else None
    amount = parse_amount(data.get("amount"))
    buyer = data.get("customer", {})
    if buyer is None:
        buyer = {}
    if not isinstance(buyer, Mapping):
        raise OrderError("customer", 'must be an object: {"channel", "user_id", "phone"}')
    channel = _text(buyer, "channel", "customer.channel", 32)
    user_id = _text(buyer, "user_id", "customer.user_id", 128)
    phone_raw = _text(buyer, "phone", "customer.phone", 32)
    if channel and not _CHANNEL.match(channel):
        raise OrderError("customer.channel", "use the channel's configured name (lowercase letters, digits, - _)")
    if channel and channels is not None and channel not in channels:
        raise OrderError("customer.channel", f"no channel named {channel!r} (configured: {', '.join(sorted(channels))})")
    if bool(channel) != bool(user_id):
        raise OrderError("customer.user_id" if channel else "customer.channel", "channel and user_id go together")
    phone = normalize_phone(phone_raw) if phone_raw else ""
    if phone_raw and not 5 <= len(phone) <= 20:
        raise OrderError("customer.phone", f"not a phone number: {phone_raw!r}")
    items = data.get("items")
    if items is not None:
        if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
            raise OrderError("items", "must be a list of objects, e.g. [{\"sku\", \"name\", \"qty\", \"price\"}]")
        if len(items) > 500:
            raise OrderError("items", "more than 500 items")
        items = tuple(dict(i) for i in items)
    return OrderEvent(shop_order_id=shop_order_id, status=status, event_at=event_at, amount=amount, channel=channel,
                      user_id=user_id, phone=phone, items=items, created_at=created_at)


# --- matching ------------------------------------------------------------------------


def match_customer(channel: str, user_id: str, phone: str) -> Customer | None:
    """The customer an order names: by channel + platform user id, else by phone."""
    live = Customer.erased_at.is_null()
    if channel and user_id:
        found = Customer.get_or_none((Customer.channel == channel) & (Customer.external_id == user_id) & live)
        if found is not None:
            return found
    if phone:
        return (Customer.select().where((Customer.phone == phone) & live)
                .order_by(Customer.last_contact_at.desc(), Customer.id).first())
    return None


def link_orders_for(customer: Customer) -> int:
    """Link orders that named this customer before they existed (or before their phone
    was known); returns how many were linked. Cheap when there are none: one indexed query."""
    if customer.erased_at is not None:
        return 0
    phone = normalize_phone(customer.phone or "")
    # Fixed SQL, for it runs on every customer message (the dispatcher's hot path), and each
    # half on its own index: written as one OR, SQLite takes the customer_id index and
    # walks every unlinked order (a shop that imported its order history has many).
    by_identity = ('SELECT "id" FROM "shop_order" WHERE "channel" = ? AND "platform_user_id" = ? '
                   'AND "customer_id" IS NULL')
    if phone:
        rows = execute(f'{by_identity} UNION SELECT "id" FROM "shop_order" WHERE "phone" = ? AND "customer_id" IS NULL',
                       (customer.channel, customer.external_id, phone))
    else:
        rows = execute(by_identity, (customer.channel, customer.external_id))
    ids = [row[0] for row in rows]
    if not ids:
        return 0
    with transaction():
        linked = Order.update(customer=customer).where(Order.id.in_(ids) & Order.customer.is_null()).execute()
        if linked:
            refresh_customer(customer.id)
    return linked


def link_orders_for_many(customers: Sequence[Customer]) -> int:
    """`link_orders_for` each customer, with one read per channel for those known by their IM
    identity alone (no phone): only the ones an unlinked order names are linked one by one."""
    linked = 0
    by_identity: dict[str, list[Customer]] = {}
    for customer in customers:
        if customer.erased_at is not None:
            continue
        if normalize_phone(customer.phone or ""):
            linked += link_orders_for(customer)
        else:
            by_identity.setdefault(customer.channel, []).append(customer)
    for channel, group in by_identity.items():
        if len(group) == 1:
            linked += link_orders_for(group[0])
            continue
        users = list(dict.fromkeys(c.external_id for c in group))
        named = {row[0] for row in execute(
            f'SELECT DISTINCT "platform_user_id" FROM "shop_order" WHERE "channel" = ? AND "platform_user_id" IN '
            f'({", ".join("?" * len(users))}) AND "customer_id" IS NULL', (channel, *users))}
        linked += sum(link_orders_for(c) for c in group if c.external_id in named)
    return linked


def refresh_customer(customer_id: int) -> levels.LevelChange | None:
    """Recompute a customer's total spend and order count from their orders, then the level."""
    amounts = [o.amount for o in Order.select(Order.amount).where(
        (Order.customer == customer_id) & Order.status.in_(COUNTED_STATUSES))]
    total = sum((Decimal(a) for a in amounts), Decimal("0")).quantize(Decimal("0.01"))
    Customer.update(total_spend=total, order_count=len(amounts)).where(Customer.id == customer_id).execute()
    return levels.recompute(customer_id)


# --- applying ------------------------------------------------------------------------

_MILESTONES: dict[str, peewee.Field] = {
    "paid": Order.paid_at, "shipped": Order.shipped_at, "delivered": Order.delivered_at, "refunded": Order.refunded_at,
}


def apply(event: OrderEvent) -> Applied:
    """Apply one order event idempotently; an older event never overwrites a newer state."""
    with transaction():
        advisory_xact_lock(f"kefu:order:{event.shop_order_id}")
        order = Order.get_or_none(Order.shop_order_id == event.shop_order_id)
        if order is None:
            return _create(event)
        return _update(order, event)


def _create(event: OrderEvent) -> Applied:
    if not event.has_buyer:
        raise OrderError("customer", "a new order needs the buyer: {\"channel\", \"user_id\"} and/or {\"phone\"}")
    customer = match_customer(event.channel, event.user_id, event.phone)
    values: dict[peewee.Field, Any] = {
        Order.shop_order_id: event.shop_order_id, Order.customer: customer, Order.channel: event.channel,
        Order.platform_user_id: event.user_id, Order.phone: event.phone, Order.status: event.status,
        Order.amount: event.amount if event.amount is not None else Decimal("0"), Order.items: _items(event),
        Order.event_at: event.event_at, Order.created_at: event.created_at or event.event_at,
    }
    if event.status in _MILESTONES:
        values[_MILESTONES[event.status]] = event.event_at
    Order.insert(values).execute()
    change = refresh_customer(customer.id) if customer is not None else None
    return Applied(event.shop_order_id, "created", event.status, customer.id if customer else None, change)


def _update(order: Order, event: OrderEvent) -> Applied:
    updates: dict[peewee.Field, Any] = {}
    milestone = _MILESTONES.get(event.status)
    if milestone is not None and getattr(order, milestone.name) is None:
        updates[milestone] = event.event_at  # a late event's time is still a fact
    if event.created_at is not None and event.created_at < order.created_at:
        updates[Order.created_at] = event.created_at
    if order.customer_id is None and event.has_buyer:
        customer = match_customer(event.channel, event.user_id, event.phone)
        for column, value in ((Order.channel, event.channel), (Order.platform_user_id, event.user_id),
                              (Order.phone, event.phone)):
            if value and value != getattr(order, column.name):
                updates[column] = value
        if customer is not None:
            updates[Order.customer] = customer.id
    incoming = (STATUS_RANK[event.status], event.event_at)
    stored = (STATUS_RANK.get(order.status, 0), order.event_at or order.created_at)
    if incoming > stored:
        outcome = "updated"
        updates.update({Order.status: event.status, Order.event_at: event.event_at})
        if event.amount is not None:
            updates[Order.amount] = event.amount
        if event.items is not None:
            updates[Order.items] = _items(event)
    else:
        outcome = "duplicate" if incoming == stored and event.status == order.status else "stale"
    if not updates:
        return Applied(order.shop_order_id, outcome, order.status, order.customer_id)
    Order.update(updates).where(Order.id == order.id).execute()
    customer_id = updates.get(Order.customer, order.customer_id)
    change = None
    if customer_id is not None:
        change = refresh_customer(customer_id)
    status = updates.get(Order.status, order.status)
    return Applied(order.shop_order_id, outcome if outcome != "duplicate" else "updated", status, customer_id, change)


def _items(event: OrderEvent) -> list[dict[str, Any]] | None:
    return None if event.items is None else [dict(i) for i in event.items]
