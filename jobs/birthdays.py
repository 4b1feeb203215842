"""Birthday greetings (生日祝福), with an optional coupon.

Why `birthday:{year}` as the job key: UNIQUE(job_key, customer) then means one greeting
per customer per year, however often the job runs that day. "Today" is the shop's
timezone; customers born on 29 February are greeted on the 28th in other years.
Settings: `birthday_greeting` = {"enabled", "coupon_id", "text", "template"}.
"""

from __future__ import annotations

import calendar

import peewee

from bot.campaigns import fanout
from bot.core import settings
from bot.campaigns.content import placeholder_values
from bot.campaigns.runs import today_in
from bot.crm.coupons import issue_coupon
from bot.core.db import is_postgres
from bot.core.models import Customer
from jobs.common import batches, rendered


def _month_day() -> peewee.Node:
    if is_postgres():
        return peewee.fn.to_char(Customer.birthday, "MM-DD")
    return peewee.fn.substr(Customer.birthday, 6, 5)


def greet_birthdays(channel_kinds: dict[str, str], tz: str = "Asia/Shanghai") -> dict[str, int]:
    cfg = settings.get("birthday_greeting") or {}
    result = {"queued": 0, "skipped": 0, "duplicate": 0}
    if not cfg.get("enabled", True):
        return result
    today = today_in(tz)
    days = [f"{today:%m-%d}"]
    if today.month == 2 and today.day == 28 and not calendar.isleap(today.year):
        days.append("02-29")
    due = Customer.select().where(Customer.birthday.is_null(False) & _month_day().in_(days))
    job_key = f"birthday:{today.year}"
    for page in batches(due, Customer.id):
        for customer in page:
            def render(c: Customer = customer) -> fanout.Rendered:
                coupon_key = f"{job_key}:{c.id}"
                issued = issue_coupon(int(cfg["coupon_id"]), c.id, coupon_key) if cfg.get("coupon_id") else None
                return rendered(cfg, placeholder_values(c, issued.code if issued else ""))

            result[fanout.deliver_one(job_key, customer, render, channel_kinds.get(customer.channel, ""))] += 1
    return result
