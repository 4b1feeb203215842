"""Builders for CRM tests: order events and customers."""

from __future__ import annotations

from typing import Any

from bot.crm.conversations import upsert_customer
from bot.crm.orders import Applied, apply, parse_event
from bot.core.models import Customer


def order_event(order_id: str = "T1001", status: str = "paid", at: str = "2026-11-24T10:00:00+08:00",
                amount: Any = "199.00", user: str | None = "u1", channel: str = "web", phone: str | None = None,
                **extra: Any) -> dict[str, Any]:
    buyer: dict[str, Any] = {}
    if user is not None:
        buyer.update(channel=channel, user_id=user)
    if phone is not None:
        buyer["phone"] = phone
    data: dict[str, Any] = {"shop_order_id": order_id, "status": status, "event_at": at, **extra}
    if amount is not None:
        data["amount"] = amount
    if buyer:
        data["customer"] = buyer
    return data


def send(**kwargs: Any) -> Applied:
    return apply(parse_event(order_event(**kwargs)))


def customer(user: str = "u1", channel: str = "web", **fields: Any) -> Customer:
    row = upsert_customer(channel, user)
    if fields:
        Customer.update(**fields).where(Customer.id == row.id).execute()
    return Customer.get_by_id(row.id)
