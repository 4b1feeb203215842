"""Member levels VIP1–VIP4 from thresholds on total spend or order count.

Why computed, not typed in: the level must follow the orders (every order event
recomputes it) and the thresholds are an operator setting (`member_levels`), so a changed
threshold is applied to everyone by `recompute_all` (run by the scheduler). Reaching the
threshold on either basis qualifies. A change can send the customer a message: the level
is changed by a conditional UPDATE and the message is written in the same transaction, so
it goes out exactly once per change.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from bot.sending import outbox
from bot.core import clock, settings
from bot.core.db import insert_new, transaction
from bot.core.models import Customer, Message

log = logging.getLogger("kefu.crm.levels")

SETTING = "member_levels"
NAMES = ("普通会员", "VIP1", "VIP2", "VIP3", "VIP4")
NOTIFY_MODES = ("up", "any", "off")


@dataclass(frozen=True)
class Rules:
    spend: tuple[Decimal, ...] = ()  # VIP1..VIP4 spend thresholds (yuan); empty: basis off
    orders: tuple[int, ...] = ()
    notify: str = "up"
    message: str = "恭喜您成为{level}会员！"


@dataclass(frozen=True)
class LevelChange:
    customer_id: int
    old: int
    new: int
    notified: bool


def name(level: int) -> str:
    return NAMES[level] if 0 <= level < len(NAMES) else f"VIP{level}"


def parse_rules(value: Any) -> Rules:
    """The setting's value as Rules; ValueError naming the key when it is wrong."""
    if not isinstance(value, dict):
        raise ValueError(f"{SETTING}: must be an object with spend, orders, notify, message")
    spend = _thresholds(value.get("spend"), "spend", Decimal)
    orders = _thresholds(value.get("orders"), "orders", int)
    notify = value.get("notify", "up")
    if notify not in NOTIFY_MODES:
        raise ValueError(f"{SETTING}.notify: must be one of {', '.join(NOTIFY_MODES)}")
    message = value.get("message") or Rules.message
    if not isinstance(message, str):
        raise ValueError(f"{SETTING}.message: must be text")
    return Rules(spend=spend, orders=orders, notify=notify, message=message)  # type: ignore[arg-type]


def _thresholds(value: Any, key: str, cast: type) -> tuple[Any, ...]:
    if value is None or value == []:
        return ()
    if not isinstance(value, list) or len(value) != 4:
        raise ValueError(f"{SETTING}.{key}: give 4 thresholds (VIP1..VIP4) or null")
    try:
        parsed = tuple(cast(str(v)) for v in value)
    except (InvalidOperation, ValueError, TypeError):
        raise ValueError(f"{SETTING}.{key}: thresholds must be numbers") from None
    if any(b <= a for a, b in zip(parsed, parsed[1:])) or parsed[0] <= 0:
        raise ValueError(f"{SETTING}.{key}: thresholds must be positive and increasing")
    return parsed


def current_rules() -> Rules:
    """The operator's rules; a broken setting falls back to the defaults (and says so)
    rather than failing every order event."""
    try:
        return parse_rules(settings.get(SETTING))
    except ValueError as exc:
        log.error("setting %s is invalid, using the defaults: %s", SETTING, exc)
        return parse_rules(settings.DEFAULTS[SETTING])


def level_for(total_spend: Decimal | float | int, order_count: int, rules: Rules) -> int:
    spend = Decimal(str(total_spend))
    by_spend = sum(1 for t in rules.spend if spend >= t)
    by_orders = sum(1 for t in rules.orders if order_count >= t)
    return max(by_spend, by_orders)


def recompute(customer_id: int, rules: Rules | None = None) -> LevelChange | None:
    """Set the customer's level from their totals; the change, or None when unchanged."""
    rules = rules or current_rules()
    with transaction():
        customer = Customer.get_or_none(Customer.id == customer_id)
        if customer is None or customer.erased_at is not None:
            return None
        new = level_for(customer.total_spend, customer.order_count, rules)
        old = customer.level
        if new == old:
            return None
        changed = Customer.update(level=new).where((Customer.id == customer_id) & (Customer.level == old)).execute()
        if not changed:
            return None  # someone else changed it first; their transaction notifies
        wanted = rules.notify == "any" or (rules.notify == "up" and new > old)
        notified = wanted and _notify(customer, old, new, rules)
    return LevelChange(customer_id, old, new, notified)


def _notify(customer: Customer, old: int, new: int, rules: Rules) -> bool:
    if customer.blocked or customer.is_spam or not customer.subscribed:
        return False
    text = rules.message.replace("{level}", name(new)).replace("{old}", name(old))
    key = f"level:{customer.id}:{old}-{new}:{clock.now():%Y%m%d%H%M%S%f}"
    content = {"kind": "text", "text": text}
    message_id = insert_new(Message.insert(
        channel=customer.channel, external_id=key, customer=customer.id, direction="out", author="system",
        peer_id=customer.external_id, kind="text", text=text, payload=content, state="pending", created_at=clock.now(),
    ).on_conflict_ignore())
    if message_id is None:
        return False
    return outbox.enqueue(key, customer.channel, customer.external_id, content, message=Message.get_by_id(message_id))


def recompute_all(batch: int = 500) -> int:
    """Recompute every customer's level (after the thresholds changed); returns how many
    changed. Reads id-ordered batches and writes only the customers whose level differs."""
    rules = current_rules()
    changed, last = 0, 0
    while True:
        rows = list(Customer.select(Customer.id, Customer.level, Customer.total_spend, Customer.order_count)
                    .where((Customer.id > last) & Customer.erased_at.is_null()).order_by(Customer.id).limit(batch))
        if not rows:
            return changed
        for row in rows:
            if level_for(row.total_spend, row.order_count, rules) != row.level and recompute(row.id, rules):
                changed += 1
        last = rows[-1].id
