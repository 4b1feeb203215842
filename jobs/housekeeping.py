"""Housekeeping: replies a dead process left pending, idle conversations, old rows.

Why: every other guarantee (nothing lost, nothing doubled) leaves traces that must be
swept: pending replies to queue, conversations nobody closed, dedup keys and outbox rows
past their retention.
"""

from __future__ import annotations

from datetime import timedelta

from bot import clock, conversations, settings
from bot.dispatcher import recover_pending
from bot.models import Conversation, Outbox


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


def purge_outbox(days: int = 30) -> int:
    cutoff = clock.now() - timedelta(days=days)
    return Outbox.delete().where((Outbox.status == "sent") & (Outbox.sent_at < cutoff)).execute()


def run_housekeeping() -> dict[str, int]:
    return {
        "recovered": recover_pending(60.0),
        "idle_resolved": resolve_idle_conversations(),
        "outbox_purged": purge_outbox(),
    }
