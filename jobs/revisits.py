"""Revisits (回访): a satisfaction question N days after delivery, and dormant customers.

Why per-order and per-dormancy keys: `revisit:{order id}` reaches each delivered order once;
`dormant:{customer id}:{last order date}` reaches a customer once per quiet stretch (a new
order starts a new stretch). Answers are recorded by `bot.conversation.revisits`.
Settings: `revisit` = {"enabled", "days", "low_score", "text", "template"} ({order});
`dormant_revisit` = {"enabled", "days", "coupon_id", "text", "template"} ({coupon}).
"""

from __future__ import annotations

from datetime import timedelta

import peewee

from bot.campaigns import fanout
from bot.core import clock, settings
from bot.campaigns.content import placeholder_values
from bot.crm.coupons import issue_coupon
from bot.core.models import Customer, Order
from jobs.common import batches, deliver_item, rendered


def revisit_delivered(channel_kinds: dict[str, str]) -> dict[str, int]:
    cfg = settings.get("revisit") or {}
    result = {"queued": 0, "skipped": 0}
    if not cfg.get("enabled", True):
        return result
    now = clock.now()
    cutoff = now - timedelta(days=float(cfg.get("days", 3)))
    due = (Order.select(Order, Customer).join(Customer)
           .where((Order.status == "delivered") & (Order.delivered_at <= cutoff) & Order.revisited_at.is_null()))
    for page in batches(due, Order.id):
        for order in page:
            customer = order.customer
            values = {**placeholder_values(customer), "order": order.shop_order_id}

            def mark(order_id: int = order.id) -> None:
                Order.update(revisited_at=now).where(Order.id == order_id).execute()

            deliver_item(f"revisit:{order.id}", customer, cfg, values,
                         channel_kinds.get(customer.channel, ""), mark, result)
    return result


def revisit_dormant(channel_kinds: dict[str, str]) -> dict[str, int]:
    cfg = settings.get("dormant_revisit") or {}
    result = {"queued": 0, "skipped": 0, "duplicate": 0}
    if not cfg.get("enabled", False):
        return result
    cutoff = clock.now() - timedelta(days=float(cfg.get("days", 90)))
    last_order = peewee.fn.MAX(Order.created_at)
    dormant = (Order.select(Order.customer, last_order.alias("last_order"))
               .where(Order.customer.is_null(False)).group_by(Order.customer).having(last_order < cutoff))
    last_id = 0
    while True:
        rows = list(dormant.where(Order.customer > last_id).order_by(Order.customer).limit(500).tuples())
        if not rows:
            return result
        last_id = rows[-1][0]
        customers = {c.id: c for c in Customer.select().where(Customer.id.in_([r[0] for r in rows]))}
        for customer_id, last in rows:
            customer = customers.get(customer_id)
            if customer is None:
                continue
            stamp = Order.created_at.python_value(last)
            key = f"dormant:{customer_id}:{stamp:%Y%m%d}"

            def render(c: Customer = customer, k: str = key) -> fanout.Rendered:
                issued = issue_coupon(int(cfg["coupon_id"]), c.id, k) if cfg.get("coupon_id") else None
                return rendered(cfg, placeholder_values(c, issued.code if issued else ""))

            outcome = fanout.deliver_one(key, customer, render, channel_kinds.get(customer.channel, ""))
            result[outcome] += 1
