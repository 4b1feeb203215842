"""Housekeeping: replies a dead process left pending, idle conversations, old rows.

Why: every other guarantee (nothing lost, nothing doubled) leaves traces that must be
swept: pending replies to queue, conversations nobody closed, dedup keys and outbox rows
past their retention.
"""

from __future__ import annotations

from datetime import timedelta

from bot.campaigns import fanout
from bot.crm import conversations
from bot.core import clock, settings
from bot.conversation.dispatcher import recover_pending
from bot.core.models import Conversation, Delivery, Message, Outbox


def resolve_idle_conversations() -> int:
    """Resolve conversations with no message for `idle_resolve_minutes` (bot or queued)."""
    minutes = int(settings.get("idle_resolve_minutes") or 0)
    if minutes <= 0:
        return 0
    cutoff = clock.now() - timedelta(minutes=minutes)
    idle = list(Conversation.select().where(
        Conversation.status.in_(("bot",)) & (Conversation.last_message_at < cutoff)
    ))
    for conversation in idle:
        conversations.resolve(conversation, by="idle")
    return len(idle)


# in doubt is final enough to purge past the retention (months later nobody resends it)
FINAL_OUTBOX = ("sent", "failed", "window_closed", "limit_reached", "cancelled", "in_doubt")
FINAL_DELIVERY = ("sent", "skipped", "failed", "in_doubt")


def _retention(key: str, default: int) -> int:
    return int((settings.get("retention") or {}).get(key, default) or 0)


def purge_outbox(days: int | None = None) -> int:
    """Outbox rows in a final state older than `retention.outbox_days` (0: keep)."""
    days = _retention("outbox_days", 30) if days is None else days
    if days <= 0:
        return 0
    cutoff = clock.now() - timedelta(days=days)
    return Outbox.delete().where(Outbox.status.in_(FINAL_OUTBOX) & (Outbox.created_at < cutoff)).execute()


def purge_deliveries(days: int | None = None) -> int:
    """Job deliveries in a final state older than `retention.delivery_days` (0: keep). A
    purged per-item key (a coupon reminder) stays single through its own marker column."""
    days = _retention("delivery_days", 180) if days is None else days
    if days <= 0:
        return 0
    cutoff = clock.now() - timedelta(days=days)
    return Delivery.delete().where(Delivery.status.in_(FINAL_DELIVERY) & (Delivery.updated_at < cutoff)).execute()


FINAL_MESSAGE = ("done", "inline", "sent", "failed", "window_closed", "limit_reached")


def purge_messages(days: int | None = None, batch: int = 5000) -> int:
    """Messages (and with them the inbound dedup keys) older than `retention.message_days`
    (0, the default: keep the history forever). Only messages in a final state and outside
    open conversations go: a platform retries within seconds, so any retention of a day or
    more never lets a retried message through twice."""
    days = _retention("message_days", 0) if days is None else days
    if days <= 0:
        return 0
    cutoff = clock.now() - timedelta(days=days)
    open_conversations = Conversation.select(Conversation.id).where(Conversation.status != "resolved")
    purgeable = (
        (Message.created_at < cutoff) & Message.state.in_(FINAL_MESSAGE)
        & (Message.conversation.is_null() | Message.conversation.not_in(open_conversations))
    )
    purged = 0
    while True:
        ids = [row.id for row in Message.select(Message.id).where(purgeable).order_by(Message.id).limit(batch)]
        if not ids:
            return purged
        purged += Message.delete().where(Message.id.in_(ids)).execute()


def sync_delivery_outcomes() -> int:
    """Copy the outbox's final states onto every claimed delivery. Campaigns sync their own
    run as they go; the per-recipient jobs (birthdays, coupon reminders, revisits) hand their
    sends to the outbox and never looked back, so the panel showed them 已排队发送 forever."""
    return fanout.sync_outcomes(Delivery.job_key.is_null(False))  # every job (the sync takes claimed ones)


def run_housekeeping() -> dict[str, int]:
    return {
        "deliveries_synced": sync_delivery_outcomes(),
        "recovered": recover_pending(60.0),
        "idle_resolved": resolve_idle_conversations(),
        "outbox_purged": purge_outbox(),
        "deliveries_purged": purge_deliveries(),
        "messages_purged": purge_messages(),
    }
