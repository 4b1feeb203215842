"""Fan-out: (job run, recipient) delivery rows, planned in batches, handed to the outbox once.

Why: a broadcast to 100,000 customers must survive a crash at any point without sending
anyone twice or skipping anyone, with memory flat in the number of recipients. So:
- `plan` inserts one `Delivery` per recipient under UNIQUE(job_key, customer), in id-ordered
  batches (keyset pagination); a restart continues after the highest customer id planned;
- `hand_over` claims a batch of pending deliveries (`FOR UPDATE SKIP LOCKED` on PostgreSQL,
  an IMMEDIATE transaction on SQLite) and, in the same transaction, writes each one's outbox
  row (key `delivery:{id}`) or marks it skipped with the reason. A delivery is either still
  pending or has exactly one outcome, never both;
- the outbox sends (retries, back-off) and `sync_outcomes` copies its results back.
Per-item jobs (a reminder per coupon) use `deliver_one`, the same rule for a single row.

The platform's rate limit applies at send (adapters/delivery.py, per channel); the fan-out
only keeps the outbox backlog bounded (`bot.campaigns.runs.drive`), so pause and cancel act on
what is still ahead rather than on a queue of everything.

The 48-hour customer-service window: on channels that have one, a customer whose last
message is older than 48 hours can only get a template message or, on a 公众号, a mass
send. Without either the delivery is skipped with the reason.

The 公众号 mass path (`message/mass/send` to a list of openids): followers outside the
window whose campaign content can go as one message to all (`Rendered.mass`: a text
without per-customer placeholders, an image) are collected, per run and channel, into
mass rows of at most `MASS_BATCH` openids (the platform takes 2 to 10,000 a call). A
row fills across hand-overs while `held` (no sender takes it), goes out once full or when
the run is handed over completely (`release_mass`), and carries a `clientmsgid` derived
from its key, so a retry after a crash is deduplicated by the platform. Its deliveries
share its outcome; the platform's MASSSENDJOBFINISH report gives the job's figures
(`bot.campaigns.runs.mass_figures`). A row left with a single follower cannot go (the
platform needs two): that delivery is skipped with the reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Protocol

import peewee

from bot.sending import outbox
from bot.core import clock
from bot.core.db import database, insert_new, is_postgres, transaction
from bot.core.models import Customer, Delivery, Outbox
from bot.sending.send_window import CUSTOMER_SERVICE_WINDOW, WINDOWED_KINDS

PLAN_BATCH = 1000
HAND_OVER_BATCH = 500
MASS_BATCH = 10_000  # openids per message/mass/send (the platform: at least 2, at most 10,000)
MASS_MIN = 2
MP = "wechat_mp"


class Person(Protocol):
    """A recipient: a Customer row or a `Recipient` tuple."""

    id: int
    channel: str
    external_id: str
    nickname: str
    name: str
    level: int
    subscribed: bool
    blocked: bool
    erased_at: datetime | None
    last_inbound_at: datetime | None


# What to send one recipient, given its delivery id.
Render = Callable[[Person, int], "Rendered"]


@dataclass(frozen=True)
class Rendered:
    content: Mapping[str, Any] | None  # None: nothing to send to this customer
    template: Mapping[str, Any] | None = None
    reason: str = ""  # why content is None
    # the same message for every follower as a 公众号 mass send ({"kind": "mass", "msgtype",
    # and its body}), for followers outside the window; None: the content cannot go as one
    mass: Mapping[str, Any] | None = None


@dataclass
class Counts:
    queued: int = 0
    skipped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def add(self, other: "Counts") -> None:
        self.queued += other.queued
        self.skipped += other.skipped
        for reason, n in other.reasons.items():
            self.reasons[reason] = self.reasons.get(reason, 0) + n


def outbox_key(delivery_id: int) -> str:
    return f"delivery:{delivery_id}"


# --- planning -----------------------------------------------------------------------------


def plan(job_key: str, targets: peewee.Select, campaign_id: int | None = None, batch: int = PLAN_BATCH,
         max_batches: int | None = None) -> tuple[int, bool]:
    """Insert a pending delivery for every customer id `targets` selects (a query whose first
    column is Customer.id), at most `max_batches` batches now; returns (inserted, complete).
    Resumable and idempotent: it continues after the highest customer already planned."""
    last = Delivery.select(peewee.fn.MAX(Delivery.customer)).where(Delivery.job_key == job_key).scalar() or 0
    inserted = batches = 0
    while max_batches is None or batches < max_batches:
        ids = [row[0] for row in targets.where(Customer.id > last).order_by(Customer.id).limit(batch).tuples()]
        if not ids:
            return inserted, True
        now = clock.now()
        rows = [(job_key, cid, campaign_id, "pending", "", now, now) for cid in ids]
        with transaction():
            Delivery.insert_many(rows, fields=[
                Delivery.job_key, Delivery.customer, Delivery.campaign, Delivery.status, Delivery.reason,
                Delivery.created_at, Delivery.updated_at,
            ]).on_conflict_ignore().execute()
        inserted += len(ids)
        batches += 1
        last = ids[-1]
        if len(ids) < batch:
            return inserted, True
    return inserted, False


# --- the 48-hour window and who may be sent to ------------------------------------------------


def refusal(customer: Person) -> str:
    """Why a customer must not get proactive messages, or ''."""
    if customer.erased_at is not None:
        return "erased"
    if customer.blocked:
        return "blocked"
    if not customer.subscribed:
        return "unsubscribed"
    return ""


def in_window(customer: Person, channel_kind: str) -> bool:
    if channel_kind not in WINDOWED_KINDS:
        return True
    last = customer.last_inbound_at
    return last is not None and clock.now() - last <= CUSTOMER_SERVICE_WINDOW


def choose(customer: Person, channel_kind: str, rendered: Rendered) -> tuple[Mapping[str, Any] | None, str]:
    """The content to send (or None) and the skip reason."""
    reason = refusal(customer)
    if reason:
        return None, reason
    if rendered.content is None and rendered.template is None:
        return None, rendered.reason or "nothing to send"
    if in_window(customer, channel_kind):
        return (rendered.content or rendered.template), ""
    if rendered.template is not None:
        return rendered.template, ""
    if rendered.mass is not None and channel_kind == MP:
        return rendered.mass, ""
    return None, "outside the 48-hour window and no template"


# --- hand-over -----------------------------------------------------------------------------


class Recipient(NamedTuple):
    """The customer columns a hand-over needs (read as tuples: a batch of full models costs
    more than the rest of the hand-over together)."""

    id: int
    channel: str
    external_id: str
    nickname: str
    name: str
    level: int
    subscribed: bool
    blocked: bool
    erased_at: datetime | None
    last_inbound_at: datetime | None


_RECIPIENT_COLUMNS = (Customer.id, Customer.channel, Customer.external_id, Customer.nickname, Customer.name,
                      Customer.level, Customer.subscribed, Customer.blocked, Customer.erased_at,
                      Customer.last_inbound_at)


def hand_over(job_key: str, render: Render, channel_kinds: Mapping[str, str], limit: int = HAND_OVER_BATCH) -> Counts:
    """Claim up to `limit` pending deliveries of a job and, in one transaction, turn each into
    an outbox row or a skip. Returns the counts; `queued + skipped == 0` means none pending."""
    counts = Counts()
    with transaction():
        query = (
            Delivery.select(Delivery.id, *_RECIPIENT_COLUMNS).join(Customer)
            .where((Delivery.job_key == job_key) & (Delivery.status == "pending"))
            .order_by(Delivery.id).limit(limit)
        )
        if is_postgres():
            query = query.for_update(of=Delivery, skip_locked=True)
        rows = list(query.tuples())
        if not rows:
            return counts
        now = clock.now()
        out_rows: list[tuple[str, str, str, Mapping[str, Any]]] = []
        queued_ids: list[int] = []
        skipped: dict[str, list[int]] = {}
        mass: dict[str, tuple[Mapping[str, Any], list[tuple[int, str]]]] = {}  # channel -> (content, members)
        for row in rows:
            delivery_id = row[0]
            person = Recipient(row[1], row[2], row[3], row[4], row[5], row[6], bool(row[7]), bool(row[8]),
                               row[9], row[10])
            content, reason = choose(person, channel_kinds.get(person.channel, ""), render(person, delivery_id))
            if content is None:
                skipped.setdefault(reason, []).append(delivery_id)
                counts.skip(reason)
                continue
            if content.get("kind") == "mass":
                mass.setdefault(person.channel, (content, []))[1].append((delivery_id, person.external_id))
                counts.queued += 1
                continue
            out_rows.append((outbox_key(delivery_id), person.channel, person.external_id, content))
            queued_ids.append(delivery_id)
        if out_rows:
            _insert_outbox(out_rows, now)
            Delivery.update(status="claimed", outbox_key=peewee.SQL("'delivery:' || id"), updated_at=now).where(
                Delivery.id.in_(queued_ids)
            ).execute()
            counts.queued += len(out_rows)
        for channel, (content, members) in mass.items():
            _add_to_mass(job_key, channel, content, members, now)
        for reason, ids in skipped.items():
            Delivery.update(status="skipped", reason=reason[:255], updated_at=now).where(Delivery.id.in_(ids)).execute()
    return counts


def mass_prefix(job_key: str, channel: str = "") -> str:
    """The keys of a run's mass rows: `mass:{job_key}:{channel}:{n}`."""
    return f"mass:{job_key}:{channel}:" if channel else f"mass:{job_key}:"


def client_msg_id(key: str) -> str:
    """The mass row's clientmsgid: fixed by its key, so every retry carries the same one
    (the platform allows 64 bytes)."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _add_to_mass(job_key: str, channel: str, content: Mapping[str, Any], members: list[tuple[int, str]],
                 now: datetime) -> None:
    """Put followers on the run's open (`held`) mass row of their channel, opening a new one
    when it is full; a full row is released to the senders at once. Inside the hand-over's
    transaction (its claim on the deliveries makes this the only writer of the run)."""
    prefix = mass_prefix(job_key, channel)
    mine = Outbox.key.startswith(prefix)
    row = Outbox.select().where(mine & (Outbox.status == "held")).order_by(Outbox.id.desc()).first()
    while members:
        if row is None:
            key = f"{prefix}{Outbox.select().where(mine).count() + 1}"
            row = Outbox.create(key=key, channel=channel, recipient=f"openids:{job_key}"[:128], status="held",
                                content={**dict(content), "touser": [], "clientmsgid": client_msg_id(key)},
                                next_attempt_at=now, created_at=now)
        body = dict(row.content)
        room = MASS_BATCH - len(body["touser"])
        taken, members = members[:room], members[room:]
        body["touser"] = list(body["touser"]) + [openid for _, openid in taken]
        full = len(body["touser"]) >= MASS_BATCH
        Outbox.update(content=body, status="pending" if full else "held").where(Outbox.id == row.id).execute()
        Delivery.update(status="claimed", outbox_key=row.key, updated_at=now).where(
            Delivery.id.in_([delivery_id for delivery_id, _ in taken])).execute()
        row = None if full else row


def release_mass(job_key: str) -> int:
    """The run is handed over: its mass rows still filling go to the senders. A row with a
    single follower cannot go (the platform takes 2 or more): its delivery is skipped.
    Returns how many rows were released."""
    now = clock.now()
    released = 0
    with transaction():
        for row in Outbox.select().where(Outbox.key.startswith(mass_prefix(job_key)) & (Outbox.status == "held")):
            if len((row.content or {}).get("touser") or ()) >= MASS_MIN:
                released += Outbox.update(status="pending", next_attempt_at=now).where(Outbox.id == row.id).execute()
                continue
            Outbox.update(status="cancelled", last_error="a mass send needs at least two followers").where(
                Outbox.id == row.id).execute()
            Delivery.update(status="skipped", reason=MASS_TOO_FEW, updated_at=now).where(
                Delivery.outbox_key == row.key).execute()
    return released


MASS_TOO_FEW = "outside the 48-hour window; a mass send needs at least two followers"


def _insert_outbox(rows: list[tuple[str, str, str, Mapping[str, Any]]], now: datetime) -> None:
    """INSERT ... ON CONFLICT DO NOTHING of many pending outbox rows in one statement batch.
    Peewee's insert_many builds the SQL value by value, which was most of a hand-over's time;
    here only key, channel, recipient and content vary, the other columns are computed once."""
    fields = [f for f in Outbox._meta.sorted_fields if not isinstance(f, peewee.AutoField)]
    varying = ("key", "channel", "recipient", "content")
    fixed: dict[str, Any] = {"status": "pending", "next_attempt_at": now, "created_at": now}
    constant: dict[str, Any] = {}
    for f in fields:
        if f.name not in varying:
            value = fixed[f.name] if f.name in fixed else (f.default() if callable(f.default) else f.default)
            constant[f.name] = f.db_value(value)
    columns = ", ".join(f'"{f.column_name}"' for f in fields)
    content_value = Outbox.content.db_value
    values = []
    for key, channel, recipient, content in rows:
        row = {"key": key, "channel": channel, "recipient": recipient, "content": content_value(dict(content))}
        values.append(tuple(row[f.name] if f.name in row else constant[f.name] for f in fields))
    db = database.obj
    cursor = db.cursor()
    table = Outbox._meta.table_name
    if is_postgres():
        from psycopg2.extras import execute_values

        execute_values(cursor, f'INSERT INTO "{table}" ({columns}) VALUES %s ON CONFLICT DO NOTHING', values,
                       page_size=len(values))
    else:
        marks = ", ".join("?" for _ in fields)
        cursor.executemany(f'INSERT INTO "{table}" ({columns}) VALUES ({marks}) ON CONFLICT DO NOTHING', values)


def deliver_one(job_key: str, customer: Customer, render: Callable[[], Rendered], channel_kind: str,
                campaign_id: int | None = None, on_new: Callable[[], None] | None = None) -> str:
    """The single-recipient form: create the delivery and its outcome in one transaction.
    Returns 'queued', 'skipped' or 'duplicate' (this job already reached this customer).
    `on_new` runs inside the transaction when the delivery is new (e.g. mark the coupon);
    `render` runs only then too, so a coupon it issues is issued once."""
    now = clock.now()
    with transaction():
        delivery_id = insert_new(Delivery.insert(
            job_key=job_key, customer=customer.id, campaign=campaign_id, status="pending", created_at=now,
            updated_at=now,
        ).on_conflict_ignore())
        if delivery_id is None:
            return "duplicate"
        if on_new is not None:
            on_new()
        reason = refusal(customer)
        content, reason = (None, reason) if reason else choose(customer, channel_kind, render())
        if content is None:
            Delivery.update(status="skipped", reason=reason[:255]).where(Delivery.id == delivery_id).execute()
            return "skipped"
        key = outbox_key(delivery_id)
        Outbox.insert(key=key, channel=customer.channel, recipient=customer.external_id, content=dict(content),
                      status="pending", next_attempt_at=now, created_at=now).on_conflict_ignore().execute()
        Delivery.update(status="claimed", outbox_key=key).where(Delivery.id == delivery_id).execute()
    return "queued"


# --- outcomes ------------------------------------------------------------------------------


# outbox status -> the delivery's status once the outbox has settled it
OUTCOMES = (("sent", "sent"), ("failed", "failed"), ("window_closed", "failed"), ("limit_reached", "failed"),
            ("cancelled", "skipped"), ("in_doubt", "in_doubt"))
# deliveries whose outcome may still change: handed over, or in doubt (a late answer, the
# operator's resend)
OPEN = ("claimed", "in_doubt")


def sync_outcomes(job_keys: Iterable[str] | peewee.Expression) -> int:
    """Copy the outbox's states onto handed-over deliveries; returns rows updated.

    One write transaction, taken before the first read: readers such as `kefu campaign list`
    call this while `kefu serve` writes, and on SQLite a statement that reads before it
    writes gets "database is locked" at once instead of waiting its turn."""
    where = job_keys if isinstance(job_keys, peewee.Expression) else Delivery.job_key.in_(list(job_keys))
    now = clock.now()
    changed = 0
    with transaction():
        for outbox_status, status in OUTCOMES:
            # per claimed delivery, its outbox row by the unique key: the work follows the claimed
            # deliveries, not every outbox row ever sent (housekeeping runs this each minute)
            done = peewee.fn.EXISTS(Outbox.select(peewee.SQL("1")).where(
                (Outbox.key == Delivery.outbox_key) & (Outbox.status == outbox_status)))
            update: dict[str, Any] = {"status": status, "updated_at": now}
            if status != "sent":
                update["reason"] = "cancelled" if outbox_status == "cancelled" else f"outbox: {outbox_status}"
            else:
                update["reason"] = ""
            changed += Delivery.update(**update).where(
                where & Delivery.status.in_(OPEN) & (Delivery.status != status) & done).execute()
        # sent again (the operator resent those in doubt): handed over once more
        back = peewee.fn.EXISTS(Outbox.select(peewee.SQL("1")).where(
            (Outbox.key == Delivery.outbox_key) & Outbox.status.in_(("pending", "sending"))))
        changed += Delivery.update(status="claimed", reason="", updated_at=now).where(
            where & (Delivery.status == "in_doubt") & back).execute()
    return changed


def counts_by_status(job_key: str) -> dict[str, int]:
    rows = (Delivery.select(Delivery.status, peewee.fn.COUNT(Delivery.id))
            .where(Delivery.job_key == job_key).group_by(Delivery.status).tuples())
    return {status: n for status, n in rows}


def progress(job_key: str) -> dict[str, int]:
    """Every recipient of a run by where it stands: queued (planned, or handed to the
    outbox and waiting), sending (a sender holds it), sent, failed, in_doubt (attempted,
    outcome unknown), skipped; plus total. Outcomes synced first."""
    sync_outcomes([job_key])
    counts = dict.fromkeys(("queued", "sending", "sent", "failed", "in_doubt", "skipped"), 0)
    for status, n in counts_by_status(job_key).items():
        if status == "pending":
            counts["queued"] += n
        elif status != "claimed":
            counts[status] = counts.get(status, 0) + n
    # the handed-over ones still open: the outbox says whether a sender holds them
    held = (Delivery.select(Outbox.status, peewee.fn.COUNT(Delivery.id))
            .join(Outbox, on=(Outbox.key == Delivery.outbox_key))
            .where((Delivery.job_key == job_key) & (Delivery.status == "claimed"))
            .group_by(Outbox.status).tuples())
    for status, n in held:
        counts["sending" if status == "sending" else "queued"] += n
    counts["total"] = sum(counts.values())
    return counts


def unsettled(job_key: str) -> int:
    """Recipients of a run still queued or being sent (a run is done only at 0)."""
    return Delivery.select().where((Delivery.job_key == job_key) & Delivery.status.in_(("pending", "claimed"))).count()


def resend_in_doubt(job_key: str) -> int:
    """The operator's "resend the ones in doubt" for a run: their outbox rows go back to
    pending (`bot.sending.outbox.resend_in_doubt`) and the deliveries are handed over again."""
    keys = Delivery.select(Delivery.outbox_key).where((Delivery.job_key == job_key) & (Delivery.status == "in_doubt"))
    with transaction():
        resent = outbox.resend_in_doubt(Outbox.key.in_(keys))
        Delivery.update(status="claimed", reason="", updated_at=clock.now()).where(
            (Delivery.job_key == job_key) & (Delivery.status == "in_doubt")).execute()
    return resent


def withdraw(job_key: str, reason: str = "cancelled") -> int:
    """Stop what a job has not sent yet: pending deliveries are skipped, and outbox rows not
    yet claimed by a sender are cancelled. Returns how many deliveries were stopped."""
    now = clock.now()
    with transaction():
        claimed = Delivery.select(Delivery.outbox_key).where(
            (Delivery.job_key == job_key) & (Delivery.status == "claimed")
        )
        Outbox.update(status="cancelled", last_error=reason).where(
            Outbox.status.in_(("pending", "held")) & Outbox.key.in_(claimed)
        ).execute()
        stopped = Delivery.update(status="skipped", reason=reason, updated_at=now).where(
            (Delivery.job_key == job_key) & (Delivery.status == "pending")
        ).execute()
    sync_outcomes([job_key])
    return stopped
