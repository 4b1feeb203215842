"""The outbox: every send that is not answered inline is a row first, then delivered.

Why: a crash between deciding to send and sending must lose nothing, and a retry must not
send twice. A row's `key` is unique (the outbound message's key, or a job's delivery key),
so writing it twice is a no-op. Rows are claimed before delivery (`FOR UPDATE SKIP LOCKED`
on PostgreSQL, an IMMEDIATE transaction on SQLite), so several sender processes share the
work.

A row's life: pending -> (claim) sending -> (attempt) sending + `attempted_at` ->
(outcome) sent | pending again (retry) | failed | window_closed | limit_reached.

- The claim is a short lease (`[outbox] lease_seconds`, a few seconds) with an owner
  (`claim_token`), renewed while the batch is being sent (`renew`): a dead sender's rows
  come back within seconds, and a live one keeps them however long its batch takes.
- The attempt is recorded before the platform is called (`mark_attempts`, one UPDATE for
  the sends that go out together), and cleared with the outcome. So after a crash the
  two cases differ: claimed but never attempted (safe to send: nothing went out) and
  attempted with the outcome unknown (the platform may have it).
- A lapsed claim with an attempt under way is settled at the next claim (`settle_lapsed`)
  by the row's kind, never by sending it again blindly:
  * a mass send carrying `clientmsgid` is sent again: the platform deduplicates it (a
    repeat answers 45065 with the first job's id, recorded as sent);
  * a reply in a conversation (a row with its message) is sent again: a customer waiting
    for an answer who gets none is the worse failure; a doubled answer in a one-to-one
    conversation is recognisable as such and costs the shop nothing with the platform;
  * anything else (campaign, broadcast, reminder, test send) becomes `in_doubt`: reported
    and left for the operator (the admin's "resend the ones in doubt", `resend_in_doubt`).
- Recording an outcome needs the claim still ours (or the row in doubt: a late answer
  settles the doubt), so a sender whose lease lapsed cannot overwrite a newer claim.

Channel senders live in adapters/ and implement `Sender`; they classify platform errors
into a `SendResult` and this module decides retry, back-off or give-up.
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Mapping, Protocol

import peewee

from bot.core import changes, clock
from bot.core.db import execute, insert_new, insert_row, is_postgres, new_row, transaction
from bot.core.models import Message, Outbox
from bot.core.logs import REQUEST_ID, request_scope
from bot.core.runtime import LogFields
from bot.sending import send_window
from bot.sending.results import SendResult

log = logging.getLogger("kefu.outbox")

LEASE_SECONDS = 5.0  # the default of `[outbox] lease_seconds`
IN_DOUBT = "in_doubt"
IN_DOUBT_REASON = "attempted at {at}, outcome unknown: the sending process stopped before the platform's answer was stored"
RESENT_REASON = "resent: the attempt at {at} was cut short before its outcome was stored ({why})"


class Sender(Protocol):
    """A channel's sender. Optionally also `channel_kind` (whose platform send limits
    apply, see bot/sending/send_window.py) and `plan(content)` (what a send makes, worked out
    once): a sender with `plan` is called as `send(recipient, content, planned)`.

    A sender with `polled = True` and `text_of(content)` serves a channel whose people read
    their messages from the message table (web chat polls it): nothing is called, and a
    send with no message row of its own (a campaign, a reminder) gets one (`post_for_polling`)."""

    def send(self, recipient: str, content: Mapping[str, Any]) -> SendResult: ...


def enqueue(key: str, channel: str, recipient: str, content: Mapping[str, Any], message: Message | None = None,
            request_id: str | None = None) -> bool:
    """Write a send; False when the key was already there (nothing doubled). `message`, the
    message row it sends, is marked queued unless the caller's copy already says so. The row keeps
    `request_id`, by default the id of the webhook request being handled (the contextvar
    the logs use; none in a scheduled job), for the sender's log line (`log_outcome`)."""
    request_id = request_id if request_id is not None else REQUEST_ID.get()
    now = clock.now()
    row = new_row(Outbox, key=key, channel=channel, recipient=recipient, content=dict(content),
                  message=message, status="pending", next_attempt_at=now, created_at=now,
                  request_id=request_id[:64] or None)
    inserted = insert_row(row, ignore_conflict=True)  # fixed SQL: every send of every path comes through here
    if message is not None and message.state != "queued":  # as read or written in this transaction
        execute('UPDATE "message" SET "state" = ? WHERE "id" = ?', ("queued", message.id))
        message.state = "queued"
    return inserted is not None


def claim(limit: int = 100, channels: tuple[str, ...] | None = None,
          lease_seconds: float = LEASE_SECONDS) -> list[Outbox]:
    """Take up to `limit` due rows for this process under one lease (each row returned
    carries its `claim_token`). Lapsed claims are settled first (`settle_lapsed`)."""
    now = clock.now()
    token = secrets.token_hex(8)
    with transaction():
        settle_lapsed(now, channels)
        due = (
            ((Outbox.status == "pending") & (Outbox.next_attempt_at <= now))
            | ((Outbox.status == "sending") & (Outbox.claimed_until < now) & Outbox.attempted_at.is_null())
        )
        if channels is not None:
            due &= Outbox.channel.in_(channels)
        query = Outbox.select().where(due).order_by(Outbox.id).limit(limit)
        if is_postgres():
            query = query.for_update("FOR UPDATE SKIP LOCKED")
        rows = list(query)
        if rows:
            Outbox.update(status="sending", claim_token=token, attempted_at=None,
                          claimed_until=now + timedelta(seconds=lease_seconds)).where(
                Outbox.id.in_([r.id for r in rows])
            ).execute()
    for row in rows:
        row.status, row.claim_token, row.attempted_at = "sending", token, None
    return rows


def resent_when_in_doubt(row: Outbox) -> bool:
    """The policy for a send whose attempt a crash left without an outcome (module
    docstring): True to send it again, False to report it in doubt."""
    content = row.content or {}
    if content.get("kind") == "mass" and content.get("clientmsgid"):
        return True  # the platform deduplicates by clientmsgid
    return row.message_id is not None  # a reply or relay in a conversation


def settle_lapsed(now: datetime, channels: tuple[str, ...] | None = None) -> tuple[int, int]:
    """Rows whose claim lapsed while their attempt was under way (the sender died between
    marking the attempt and storing the outcome): resent when the platform or the kind
    makes that the better failure, else `in_doubt`. Returns (resent, in doubt). Call it in
    the claim's transaction."""
    lapsed = (Outbox.status == "sending") & (Outbox.claimed_until < now) & Outbox.attempted_at.is_null(False)
    if channels is not None:
        lapsed &= Outbox.channel.in_(channels)
    query = Outbox.select(Outbox.id, Outbox.content, Outbox.message, Outbox.attempted_at).where(lapsed)
    if is_postgres():
        query = query.for_update("FOR UPDATE SKIP LOCKED")
    resend: list[Outbox] = []
    doubt: list[Outbox] = []
    for row in query:
        (resend if resent_when_in_doubt(row) else doubt).append(row)
    for row in resend:
        why = "the platform deduplicates mass sends" if row.message_id is None else "a reply the customer waits for"
        Outbox.update(status="pending", next_attempt_at=now, attempts=Outbox.attempts + 1, attempted_at=None,
                      claim_token=None, claimed_until=None,
                      last_error=RESENT_REASON.format(at=_stamp(row.attempted_at), why=why)).where(
            (Outbox.id == row.id) & lapsed).execute()
    for row in doubt:
        Outbox.update(status=IN_DOUBT, claim_token=None, claimed_until=None,
                      last_error=IN_DOUBT_REASON.format(at=_stamp(row.attempted_at))).where(
            (Outbox.id == row.id) & lapsed).execute()
    if resend or doubt:
        log.warning("outbox: %d sends cut short by a stopped sender resent, %d in doubt", len(resend), len(doubt))
    return len(resend), len(doubt)


def _stamp(when: datetime | None) -> str:
    return when.isoformat(timespec="seconds") if when is not None else "?"


def mark_attempts(rows: Iterable[Outbox], lease_seconds: float = LEASE_SECONDS) -> set[int]:
    """Record that these rows' platform calls are about to be made: one UPDATE for all of
    them, before any call. Returns the ids marked: a row whose claim is no longer ours (the
    lease lapsed and another sender took it) is not, and must not be sent."""
    rows = list(rows)
    if not rows:
        return set()
    now = clock.now()
    ids = [r.id for r in rows]
    tokens = sorted({str(r.claim_token) for r in rows if r.claim_token})
    ours = Outbox.id.in_(ids) & (Outbox.status == "sending") & Outbox.claim_token.in_(tokens)
    with transaction():
        marked = Outbox.update(attempted_at=now, claimed_until=now + timedelta(seconds=lease_seconds)).where(
            ours).execute()
        if marked == len(ids):
            ids_marked = set(ids)
        else:
            ids_marked = {r.id for r in Outbox.select(Outbox.id).where(ours & (Outbox.attempted_at == now))}
    for row in rows:
        if row.id in ids_marked:
            row.attempted_at = now
    if len(ids_marked) < len(ids):
        log.warning("outbox: %d claimed sends were taken over by another sender, not sent here",
                    len(ids) - len(ids_marked))
    return ids_marked


def renew(tokens: Iterable[str], lease_seconds: float = LEASE_SECONDS) -> int:
    """Extend the lease of the rows these claims still hold (a batch still being sent)."""
    tokens = sorted(set(tokens))
    if not tokens:
        return 0
    return Outbox.update(claimed_until=clock.now() + timedelta(seconds=lease_seconds)).where(
        (Outbox.status == "sending") & Outbox.claim_token.in_(tokens)
    ).execute()


def _ours(rows: Iterable[Outbox]) -> peewee.Expression:
    """Rows whose outcome this sender may store: its claim still holds them, or they were
    put in doubt meanwhile (the answer that arrives late settles the doubt)."""
    tokens = {r.claim_token for r in rows}
    held = Outbox.claim_token.in_(sorted(t for t in tokens if t)) if any(tokens) else None
    unclaimed = Outbox.claim_token.is_null() if None in tokens else None
    condition = Outbox.status == IN_DOUBT
    for part in (held, unclaimed):
        if part is not None:
            condition |= part
    return condition


def resend_in_doubt(keys: peewee.Expression | Iterable[str]) -> int:
    """The operator's decision to send again the sends in doubt among `keys` (a key list or
    a subquery of keys): they go back to pending, knowing some may then arrive twice."""
    where = keys if isinstance(keys, peewee.Expression) else Outbox.key.in_(list(keys))
    return Outbox.update(status="pending", next_attempt_at=clock.now(), attempted_at=None, claim_token=None,
                         last_error="resent by the operator after being in doubt").where(
        (Outbox.status == IN_DOUBT) & where).execute()


def log_outcome(row: Outbox, status: str) -> None:
    """The sender's one line per attempt, under the request id of the message that caused
    the send (a late reply is traced from the webhook to its send by that id)."""
    if log.isEnabledFor(logging.INFO):
        log.info("%s", LogFields(event="send", key=row.key, channel=row.channel, status=status,
                                 attempt=row.attempts + 1, request_id=row.request_id or ""))


def backoff_seconds(attempts: int) -> float:
    return min(2.0 ** attempts, 600.0)


GAVE_UP = ("failed", "window_closed", "limit_reached")
# Called as listener(row, status) when a row ends undelivered; `bot.conversation.relay` registers the one
# that reports an agent's undeliverable relay back to the agent.
give_up_listeners: list[Callable[[Outbox, str], None]] = []


def record(row: Outbox, result: SendResult, max_attempts: int) -> str:
    """Store the outcome of one delivery attempt; returns the row's new status. Nothing is
    stored when another sender has claimed the row meanwhile (its outcome will be)."""
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
    if result.platform_id and status == "sent":
        update["content"] = {**dict(row.content or {}), "msg_id": result.platform_id}
    if status == "sent" and "content" not in update:  # the common case (every web chat line), in fixed SQL
        stored = _store_sent(row, attempts, now)
    else:
        stored = Outbox.update(status=status, attempts=attempts, claimed_until=None, claim_token=None,
                               attempted_at=None, **update).where((Outbox.id == row.id) & _ours([row])).execute()
    if not stored:
        log.warning("outbox %s: outcome %s not stored, another sender holds the row now", row.key, status)
        return status
    if row.message_id:
        execute('UPDATE "message" SET "state" = ? WHERE "id" = ?',
                ("sent" if status == "sent" else ("queued" if status == "pending" else status), row.message_id))
    if status != "sent":
        log.warning("outbox %s %s: %s", row.key, status, result.error)
    if status in GAVE_UP:
        for listener in list(give_up_listeners):
            try:
                listener(row, status)
            except Exception:  # a listener must never undo the recorded outcome
                log.exception("outbox give-up listener failed for %s", row.key)
    return status


def _store_sent(row: Outbox, attempts: int, now: datetime) -> int:
    """`record`'s UPDATE of a plain success, as fixed SQL (the same condition as `_ours`):
    how many rows it stored (0: another sender holds the row now)."""
    params: tuple[Any, ...] = ("sent", attempts, Outbox.sent_at.db_value(now), "", row.id, IN_DOUBT)
    if row.claim_token:
        ours, params = ' OR "claim_token" = ?', params + (row.claim_token,)
    else:
        ours = ' OR "claim_token" IS NULL' if row.claim_token is None else ""
    return execute('UPDATE "outbox" SET "status" = ?, "attempts" = ?, "claimed_until" = NULL, "claim_token" = NULL,'
                   ' "attempted_at" = NULL, "sent_at" = ?, "last_error" = ? WHERE "id" = ? AND ("status" = ?'
                   + ours + ')', params).rowcount


def record_many(outcomes: list[tuple[Outbox, SendResult]], max_attempts: int) -> list[str]:
    """`record` for many rows in one transaction; plain successes (no message row, no
    listeners to tell) share one UPDATE. Returns each row's new status, in order."""
    plain = [row for row, result in outcomes if _plain(row, result)]
    statuses: list[str] = []
    with transaction():
        if plain:
            Outbox.update(status="sent", attempts=Outbox.attempts + 1, claimed_until=None, claim_token=None,
                          attempted_at=None, sent_at=clock.now(), last_error="").where(
                Outbox.id.in_([row.id for row in plain]) & _ours(plain)).execute()
        for row, result in outcomes:
            if _plain(row, result):
                statuses.append("sent")
            else:
                statuses.append(record(row, result, max_attempts))
    return statuses


def _plain(row: Outbox, result: SendResult) -> bool:
    """A success with nothing to store but the status (no message row, no platform id)."""
    return result.outcome == "sent" and not row.message_id and not result.platform_id


def release(row_ids: list[int]) -> int:
    """Give claimed rows back untouched (a sender stopping before it tried them)."""
    if not row_ids:
        return 0
    return Outbox.update(status="pending", claimed_until=None, claim_token=None).where(
        Outbox.id.in_(row_ids) & (Outbox.status == "sending") & Outbox.attempted_at.is_null()
    ).execute()


def deliver_due(senders: Mapping[str, Sender], limit: int = 100, max_attempts: int = 8,
                lease_seconds: float = LEASE_SECONDS) -> int:
    """Claim due rows and deliver them in this thread (the polled channels' together, the
    others one by one); returns how many were attempted. The synchronous twin of
    adapters/delivery.py (for senders whose `send` is a plain function): the same claim, the
    same plan and platform send limits checked before calling
    (`bot.sending.send_window.prepare`), the same attempt mark before the call and the same
    bookkeeping (`record`). One call at a time, so each call's mark is its own batch; the
    lease is renewed between rows."""
    rows = claim(limit, tuple(senders), lease_seconds)
    polled: list[Outbox] = []
    direct: list[Outbox] = []
    for row in rows:
        (polled if getattr(senders.get(row.channel), "polled", False) else direct).append(row)
    if polled:
        _deliver_polled(senders, polled, max_attempts, lease_seconds)
    renewed = clock.now()
    for row in direct:
        if (clock.now() - renewed).total_seconds() > lease_seconds / 3:
            renew([str(row.claim_token)], lease_seconds)
            renewed = clock.now()
        with request_scope(row.request_id):
            status = _deliver_one(senders.get(row.channel), row, max_attempts, lease_seconds)
            if status:
                log_outcome(row, status)
    return len(rows)


def _deliver_one(sender: Sender | None, row: Outbox, max_attempts: int, lease_seconds: float) -> str:
    """One claimed row through a synchronous sender; its new status ("" when the claim was
    taken over and nothing was sent here)."""
    if sender is None:
        return record(row, SendResult("failed", f"no sender for channel {row.channel!r}"), max_attempts)
    content = row.content or {}
    if getattr(sender, "polled", False):
        with transaction():  # the message row and the outcome, both or neither
            if not row.message_id:
                post_for_polling(row, sender.text_of(content))  # type: ignore[attr-defined]
            status = record(row, SendResult.ok(), max_attempts)
        changes.delivered(row.channel, row.recipient)  # committed: the reader's waiting poll answers now
        return status
    prepared = send_window.prepare(row.channel, row.recipient, content, sender)
    if prepared.refusal is not None:
        return record(row, prepared.refusal, max_attempts)
    if mark_attempts([row], lease_seconds):
        return record(row, _send(sender, row, prepared.send_args(row.recipient, content)), max_attempts)
    return ""


def _deliver_polled(senders: Mapping[str, Sender], rows: list[Outbox], max_attempts: int,
                    lease_seconds: float) -> None:
    """Claimed rows of polled channels (the web chat), delivered in one transaction: each
    one's message row and outcome, then one commit, then each reader's waiting poll answered.
    Why together: such a delivery is only writes, and one transaction each was one commit (on
    PostgreSQL a round trip and a WAL flush) per line, in the sender's one thread: under the
    workbench bench's 150 lines a second it fell behind, and a reply took up to a second to
    reach the customer's poll. If the transaction fails, each row goes alone, as before."""
    linked = [row.message_id for row in rows]
    statuses: list[str] = []
    try:
        with transaction():
            for row in rows:
                with request_scope(row.request_id):
                    if not row.message_id:
                        post_for_polling(row, senders[row.channel].text_of(row.content or {}))  # type: ignore[attr-defined]
                    statuses.append(record(row, SendResult.ok(), max_attempts))
    except Exception:  # noqa: BLE001 - rolled back: nothing of it is stored; each row alone
        log.exception("outbox: %d polled sends failed together; delivering them one by one", len(rows))
        for row, message_id in zip(rows, linked):
            row.message = message_id  # what this attempt linked was rolled back with it
            with request_scope(row.request_id):
                try:
                    status = _deliver_one(senders.get(row.channel), row, max_attempts, lease_seconds)
                except Exception:  # noqa: BLE001 - its claim lapses and it is tried again; the others go on
                    log.exception("outbox %s: polled send failed", row.key)
                    continue
                if status:
                    log_outcome(row, status)
        return
    for row, status in zip(rows, statuses):
        changes.delivered(row.channel, row.recipient)  # committed: the reader's waiting poll answers now
        with request_scope(row.request_id):
            log_outcome(row, status)


def post_for_polling(row: Outbox, text: str) -> None:
    """Give a send with no message row of its own one, so a polled channel's reader sees it:
    keyed by the outbox key (a retry after a crash finds it, nothing doubled), linked to the
    customer when known and to the outbox row (whose outcome `record` then copies onto it)."""
    from bot.core.models import Customer  # the outbox itself needs only Message and Outbox

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
