"""Commerce and sending: coupons, orders, campaigns, their deliveries and the outbox."""

from __future__ import annotations

import peewee

from bot.core import clock
from bot.core.db import UTCDateTimeField
from bot.core.models.base import BaseModel, JSONField
from bot.core.models.base import BaseModel, JSONField
from bot.core.models.conversations import Message
from bot.core.models.people import Customer


# --- commerce -----------------------------------------------------------------------


class Coupon(BaseModel):
    name = peewee.CharField(max_length=64)
    kind = peewee.CharField(max_length=16, default="amount")  # amount | percent
    value = peewee.DecimalField(max_digits=10, decimal_places=2)
    min_spend = peewee.DecimalField(max_digits=10, decimal_places=2, default=0)
    valid_days = peewee.IntegerField(default=30)
    active = peewee.BooleanField(default=True)
    created_at = UTCDateTimeField(default=clock.now)

    def __str__(self) -> str:
        return self.name


class IssuedCoupon(BaseModel):
    coupon = peewee.ForeignKeyField(Coupon, backref="issued", on_delete="CASCADE")
    customer = peewee.ForeignKeyField(Customer, backref="coupons", on_delete="CASCADE")
    code = peewee.CharField(max_length=32, unique=True)
    issued_at = UTCDateTimeField(default=clock.now)
    expires_at = UTCDateTimeField(index=True)
    used_at = UTCDateTimeField(null=True)
    reminded_at = UTCDateTimeField(null=True)  # the expiry reminder was handed to the outbox (version 5)


class Order(BaseModel):
    STATUSES = ("created", "paid", "shipped", "delivered", "refunded", "cancelled")

    shop_order_id = peewee.CharField(max_length=64, unique=True)
    customer = peewee.ForeignKeyField(Customer, null=True, backref="orders", on_delete="SET NULL")
    channel = peewee.CharField(max_length=32, default="")
    platform_user_id = peewee.CharField(max_length=128, default="")
    phone = peewee.CharField(max_length=32, default="", index=True)
    status = peewee.CharField(max_length=16, default="created")
    amount = peewee.DecimalField(max_digits=14, decimal_places=2, default=0)
    items = JSONField(null=True)
    event_at = UTCDateTimeField(null=True)  # time of the latest applied shop event
    created_at = UTCDateTimeField(default=clock.now)
    paid_at = UTCDateTimeField(null=True)
    shipped_at = UTCDateTimeField(null=True)
    delivered_at = UTCDateTimeField(null=True, index=True)
    refunded_at = UTCDateTimeField(null=True)
    revisit_score = peewee.IntegerField(null=True)
    revisited_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "shop_order"


# --- campaigns and delivery ----------------------------------------------------------


class Campaign(BaseModel):
    STATUSES = ("draft", "scheduled", "running", "paused", "done", "cancelled")

    name = peewee.CharField(max_length=128)
    target_kind = peewee.CharField(max_length=16, default="group")  # group | tag | level | segment | all
    target_value = peewee.CharField(max_length=64, default="")
    content_kind = peewee.CharField(max_length=16, default="text")  # text | image | news | template
    content = JSONField(default=dict)
    cron = peewee.CharField(max_length=64, default="")
    run_at = UTCDateTimeField(null=True)
    status = peewee.CharField(max_length=16, default="draft", index=True)
    run_key = peewee.CharField(max_length=128, default="")  # the current or last run's Delivery.job_key (version 5)
    run_planned = peewee.BooleanField(default=False)  # every recipient of the run has a Delivery (version 10)
    created_at = UTCDateTimeField(default=clock.now)

    def __str__(self) -> str:
        return self.name


class Delivery(BaseModel):
    """One (job run, recipient): claimed before sending, so a crash never sends twice."""

    job_key = peewee.CharField(max_length=128)  # e.g. campaign:12:2026-11-24T10:00
    customer = peewee.ForeignKeyField(Customer, backref="deliveries", on_delete="CASCADE")
    campaign = peewee.ForeignKeyField(Campaign, null=True, backref="deliveries", on_delete="SET NULL")
    # pending|claimed|sent|skipped|failed|in_doubt (attempted, the outcome unknown: bot/sending/outbox.py)
    status = peewee.CharField(max_length=16, default="pending", index=True)
    reason = peewee.CharField(max_length=255, default="")
    outbox_key = peewee.CharField(max_length=160, null=True)
    created_at = UTCDateTimeField(default=clock.now)
    updated_at = UTCDateTimeField(default=clock.now)

    class Meta:
        indexes = ((("job_key", "customer"), True),)


class Outbox(BaseModel):
    """A send waiting to be delivered through a channel's API. Written before sending."""

    STATUSES = ("pending", "sending", "sent", "failed", "window_closed", "limit_reached", "in_doubt", "cancelled")

    key = peewee.CharField(max_length=160, unique=True)
    channel = peewee.CharField(max_length=32, index=True)
    recipient = peewee.CharField(max_length=128)
    content = JSONField()
    message = peewee.ForeignKeyField(Message, null=True, on_delete="SET NULL")
    status = peewee.CharField(max_length=16, default="pending")
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = UTCDateTimeField(default=clock.now)
    claimed_until = UTCDateTimeField(null=True)  # the claim's lease, renewed while the batch is sent
    claim_token = peewee.CharField(max_length=32, null=True)  # whose claim (version 10)
    attempted_at = UTCDateTimeField(null=True)  # the platform call is under way (version 10; bot/sending/outbox.py)
    last_error = peewee.TextField(default="")
    created_at = UTCDateTimeField(default=clock.now)
    sent_at = UTCDateTimeField(null=True)
    # the webhook request whose handling wrote the send (version 13): the sender logs it, so
    # a late reply's send is found by the id of the message that caused it
    request_id = peewee.CharField(max_length=64, null=True)

    class Meta:
        indexes = ((("status", "next_attempt_at"), False),)
