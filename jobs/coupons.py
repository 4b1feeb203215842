"""Coupon reminders: an issued, unused coupon expiring within N days gets one reminder.

Why a delivery per coupon (`coupon-reminder:{issued id}`) and `reminded_at` in the same
transaction: a second run, a second scheduler or a crash between the two can never remind
twice, and a coupon used or expired before the run is not selected at all.
Settings: `coupon_reminder` = {"enabled", "days", "text", "template"}; placeholders
{nickname} {level} {coupon} {expires} {name}.
"""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from bot.core import clock, settings
from bot.campaigns.content import placeholder_values
from bot.core.models import Coupon, Customer, IssuedCoupon
from jobs.common import batches, deliver_item


def remind_expiring(channel_kinds: dict[str, str], tz: str = "Asia/Shanghai") -> dict[str, int]:
    cfg = settings.get("coupon_reminder") or {}
    result = {"queued": 0, "skipped": 0}
    if not cfg.get("enabled", True):
        return result
    now = clock.now()
    horizon = now + timedelta(days=float(cfg.get("days", 3)))
    due = (
        IssuedCoupon.select(IssuedCoupon, Customer, Coupon).join(Customer).switch(IssuedCoupon).join(Coupon)
        .where(IssuedCoupon.used_at.is_null() & IssuedCoupon.reminded_at.is_null()
               & (IssuedCoupon.expires_at > now) & (IssuedCoupon.expires_at <= horizon))
    )
    for page in batches(due, IssuedCoupon.id):
        for issued in page:
            customer = issued.customer
            values = {**placeholder_values(customer, issued.code), "name": issued.coupon.name,
                      "expires": issued.expires_at.astimezone(ZoneInfo(tz)).strftime("%m月%d日 %H:%M")}

            def mark(issued_id: int = issued.id) -> None:
                IssuedCoupon.update(reminded_at=now).where(IssuedCoupon.id == issued_id).execute()

            deliver_item(f"coupon-reminder:{issued.id}", customer, cfg, values,
                         channel_kinds.get(customer.channel, ""), mark, result)
    return result
