"""Coupons issued to customers: once per key, with a code derived from that key, so a retried
hand-over (a campaign's delivery, a channel code's welcome) issues the same coupon again.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

from bot.core import clock
from bot.core.models import Coupon, IssuedCoupon

def coupon_code(delivery_key: str) -> str:
    """A deterministic coupon code per delivery: a retried hand-over issues the same one."""
    return "K" + hashlib.sha1(delivery_key.encode()).hexdigest()[:11].upper()


def issue_coupon(coupon_id: int, customer_id: int, key: str) -> IssuedCoupon | None:
    """Issue a coupon once per `key` (idempotent); None when the coupon is gone or inactive."""
    coupon = Coupon.get_or_none((Coupon.id == coupon_id) & (Coupon.active == True))  # noqa: E712
    if coupon is None:
        return None
    code, now = coupon_code(key), clock.now()
    IssuedCoupon.insert(coupon=coupon.id, customer=customer_id, code=code, issued_at=now,
                        expires_at=now + timedelta(days=coupon.valid_days)).on_conflict_ignore().execute()
    return IssuedCoupon.get(IssuedCoupon.code == code)
