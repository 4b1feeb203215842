"""The outbox: every send that is not answered inline is a row first, then delivered.

Why: a crash between deciding to send and sending must lose nothing, and a retry must not
send twice. A row's `key` is unique (the outbound message's key, or a job's delivery key),
so writing it twice is a no-op. Rows are claimed before delivery (`FOR UPDATE SKIP LOCKED`
on PostgreSQL, an IMMEDIATE transaction on SQLite) with a claim that expires, so several
sender processes share the work and a dead sender's rows come back.

Channel senders live in adapters/ and implement `Sender`; they classify platform errors
into a `SendResult` and this module decides retry, back-off or give-up.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Mapping, Protocol

from bot import clock
from bot.db import insert_new, is_postgres, transaction
from bot.models import Message, Outbox

log = logging.getLogger("kefu.outbox")

CLAIM_SECONDS = 60


@dataclass(frozen=True)
class SendResult:
    """What a channel said about one send.

    outcome: sent | retry (transient: back off and try again) | window_closed (the 48-hour
    window is shut) | limit_reached (per-turn reply limit) | failed (permanent).
    """

    outcome: str
    error: str = ""
    retry_after: float | None = None
    # A send split into parts (long text): how many parts the platform has accepted so
    # far, kept in the row's content so a retry resumes after them instead of resending.
    parts_sent: int | None = None

    @classmethod
    def ok(cls) -> "SendResult":
        return cls("sent")


class Sender(Protocol):
    """A channel's sender. Optionally also `channel_kind` (whose platform send limits
    apply, see bot/send_window.py) and `plan(content)` (what a send makes, worked out
    once): a sender with `plan` is called as `send(recipient, content, planned)`.

    A sender with `polled = True` and `text_of(content)` serves a channel whose people read
    their messages from the message table (web chat polls it): nothing is called, and a
    send with no message row of its own (a campaign, a reminder) gets one (`post_for_polling`)."""

    def send(self, recipient: str, content: Mapping[str, Any]) -> SendResult: ...


def enqueue(key: str, channel: str, recipient: str, content: Mapping[str, Any], message: Message | None = None) -> bool:
    """Write a send; False when the key was already there (nothing doubled)."""
    inserted = insert_new(
        Outbox.insert(
            key=key, channel=channel, recipient=recipient, content=dict(content),
            message=message, status="pending", next_attempt_at=clock.now(), created_at=clock.now(),
        ).on_conflict_ignore()
    )
    if message is not None:
        Message.update(state="queued").where(Message.id == message.id).execute()
    return inserted is not None


def claim(limit: int = 100, channels: tuple[str, ...] | None = None) -> list[Outbox]:
    """Take up to `limit` due rows for this process."""
    now = clock.now()
    due = (
        ((Outbox.status == "pending") & (Outbox.next_attempt_at <= now))
        | ((Outbox.status == "sending") & (Outbox.claimed_until < now))
    )
    if channels is not None:
        due &= Outbox.channel.in_(channels)
    with transaction():
        query = Outbox.select().where(due).order_by(Outbox.id).limit(limit)
        if is_postgres():
            query = query.for_update("FOR UPDATE SKIP LOCKED")
        rows = list(query)
        if rows:
            Outbox.update(status="sending", claimed_until=now + timedelta(seconds=CLAIM_SECONDS)).where(
                Outbox.id.in_([r.id for r in rows])
            ).execute()
    return rows


def backoff_seconds(attempts: int) -> float:
    return min(2.0 ** attempts, 600.0)


GAVE_UP = ("failed", "window_closed", "limit_reached")
# Called as listener(row, status) when a row ends undelivered; `bot.relay` registers the one
# that reports an agent's undeliverable relay back to the agent.
give_up_listeners: list[Callable[[Outbox, str], None]] = []


def record(row: Outbox, result: SendResult, max_attempts: int) -> str:
    """Store the outcome of one delivery attempt; returns the row's new status."""
    now = clock.now()
    attempts = row.attempts + 1
    if result.outcome == "sent":
        status, update = "sent", {"sent_at": now, "last_error": ""}
    elif result.outcome == "retry" and attempts < max_attempts:
        delay = result.retry_after if result.retry_after is not None else backoff_seconds(attempts)
        status, update = "pending", {"next_attempt_at": now + timedelta(seconds=delay), "last_error": result.error}
    elif result.outcome in ("window_closed", "limit_reached"):
        status, update = result.outcome, {"last_error": result.error}
    else:
        status, update = "failed", {"last_error": result.error or "too many attempts"}
    if result.parts_sent is not None and status != "sent":
        update["content"] = {**dict(row.content or {}), "parts_sent": result.parts_sent}
    Outbox.update(status=status, attempts=attempts, claimed_until=None, **update).where(Outbox.id == row.id).execute()
    if row.message_id:
        Message.update(state="sent" if status == "sent" else ("queued" if status == "pending" else status)).where(
            Message.id == row.message_id
        ).execute()
    if status != "sent":
        log.warning("outbox %s %s: %s", row.key, status, result.error)
    if status in GAVE_UP:
        for listener in list(give_up_listeners):
            try:
                listener(row, status)
            except Exception:  # a listener must never undo the recorded outcome
                log.exception("outbox give-up listener failed for %s", row.key)
    return status


def record_many(outcomes: list[tuple[Outbox, SendResult]], max_attempts: int) -> list[str]:
    """`record` for many rows in one transaction; plain successes (no message row, no
    listeners to tell) share one UPDATE. Returns each row's new status, in order."""
    plain = [row.id for row, result in outcomes if result.outcome == "sent" and not row.message_id]
    statuses: list[str] = []
    with transaction():
        if plain:
            Outbox.update(status="sent", attempts=Outbox.attempts + 1, claimed_until=None, sent_at=clock.now(),
                          last_error="").where(Outbox.id.in_(plain)).execute()
        for row, result in outcomes:
            if result.outcome == "sent" and not row.message_id:
                statuses.append("sent")
            else:
                statuses.append(record(row, result, max_attempts))
    return statuses


def release(row_ids: list[int]) -> int:
    """Give claimed rows back untouched (a sender stopping before it tried them)."""
    if not row_ids:
        return 0
    return Outbox.update(status="pending", claimed_until=None).where(
        Outbox.id.in_(row_ids) & (Outbox.status == "sending")
    ).execute()


def deliver_due(senders: Mapping[str, Sender], limit: int = 100, max_attempts: int = 8) -> int:
    """Claim due rows and deliver them one by one in this thread; returns how many were
    attempted. The synchronous twin of adapters/delivery.py (for senders whose `send` is a
    plain function): the same claim, the same plan and platform send limits checked before
    calling (`bot.send_window.prepare`), the same bookkeeping (`record`)."""
    from bot import send_window  # it imports SendResult from here: a top-level import would be circular

    rows = claim(limit, tuple(senders))
    for row in rows:
        sender = senders.get(row.channel)
        if sender is None:
            record(row, SendResult("failed", f"no sender for channel {row.channel!r}"), max_attempts)
            continue
        content = row.content or {}
        if getattr(sender, "polled", False):
            with transaction():  # the message row and the outcome, both or neither
                if not row.message_id:
                    post_for_polling(row, sender.text_of(content))  # type: ignore[attr-defined]
                record(row, SendResult.ok(), max_attempts)
            continue
        prepared = send_window.prepare(row.channel, row.recipient, content, sender)
        record(row, prepared.refusal or _send(sender, row, prepared.send_args(row.recipient, content)),
               max_attempts)
    return len(rows)


def post_for_polling(row: Outbox, text: str) -> None:
    """Give a send with no message row of its own one, so a polled channel's reader sees it:
    keyed by the outbox key (a retry after a crash finds it, nothing doubled), linked to the
    customer when known and to the outbox row (whose outcome `record` then copies onto it)."""
    from bot.models import Customer  # the outbox itself needs only Message and Outbox

    content = dict(row.content or {})
    key = f"outbox:{row.key}"[:128]
    customer = Customer.get_or_none((Customer.channel == row.channel) & (Customer.external_id == row.recipient))
    message_id = insert_new(Message.insert(
        channel=row.channel, external_id=key, customer=customer, direction="out", author="bot",
        peer_id=row.recipient, kind=str(content.get("kind") or "text")[:16], text=text, payload=content,
        state="queued", created_at=clock.now(),
    ).on_conflict_ignore())
    if message_id is None:
        message_id = Message.get((Message.channel == row.channel) & (Message.external_id == key)).id
    Outbox.update(message=message_id).where(Outbox.id == row.id).execute()
    row.message = message_id


def _send(sender: Sender, row: Outbox, args: tuple[Any, ...]) -> SendResult:
    """One call of a synchronous sender; an exception (a sender bug, a network error) is a
    retry later, the row is kept."""
    try:
        return sender.send(*args)
    except Exception as exc:
        log.exception("outbox send raised for %s", row.key)
        return SendResult("retry", f"{type(exc).__name__}: {exc}")
