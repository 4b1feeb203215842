"""The dispatcher: one inbound message in, stored exactly once, decided, replies out.

Why this shape (see docs/architecture.md, "Data flow"):
- Dedup and decision share one transaction: the inbound row (UNIQUE(channel, external_id))
  is inserted as soon as its customer and conversation are known, before the decision; a
  concurrent retry of the same message blocks on that key until the first delivery commits,
  then rolls back what it did and replays the reply the first one produced. A crash
  mid-decision rolls the insert back, so the platform's retry processes it afresh.
- Replies to the sender may go back inline (a passive reply in the HTTP body) when ready
  before the adapter's deadline; the `ReplySlot` hands them over atomically. Late replies,
  and everything for other people (agents, relayed customers), go through the outbox.
- Each outbound message is stored with a deterministic key (`re:<inbound id>:<n>`) in its
  final state (`inline`, or `queued` with its outbox row) by the same transaction, so the
  first delivery and a retry can never both deliver it. (`pending`, the state of versions
  that decided after the commit, is still replayed and recovered.)

This module is synchronous: the webhook server runs it in a thread pool, a batch of
concurrent messages at a time in one transaction (`decide` each, adapters/group_commit.py).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Sequence

from bot.agents import identities, last_seen
from bot.crm import conversations
from bot.sending import outbox
from bot.core import cache_version, clock
from bot.core.config import Config
from bot.crm import channel_codes, wecom_contacts, wecom_groups
from bot.core.db import database, execute, fetch_one, insert_row, insert_rows, new_row, transaction
from bot.core.events import Card, Inbound, Reply
from bot.faq.store import FaqStore
from bot.core.models import Agent, Conversation, Customer, Message
from bot.sending.outgoing import Outgoing
from bot.conversation import faq_hits, held_rows
from bot.conversation.relay import Relay
from bot.conversation.routing import ACK_NOTICE, Router, Turn
from bot.ops import metrics
from bot.core.logs import REQUEST_ID
from bot.core.runtime import LogFields

log = logging.getLogger("kefu.dispatcher")

SATISFACTION_WINDOW = timedelta(hours=24)
RATING_AFTER_QUESTION_WINDOW = timedelta(hours=1)  # a 1-5 after a question in between (issue 22)
# the server on PostgreSQL: how stale the settings and agents caches may get (a check is a
# round trip there, and a batch one message): a new agent's first 0.2 s are a customer's
CACHE_CHECK_SECONDS = 0.2


RATINGS = frozenset("12345")  # a text that may rate a conversation or answer a revisit (_satisfaction)


@dataclass(frozen=True)
class Known:
    """A sender's rows read before their message is decided (`Dispatcher.known_senders`)."""

    customer: Customer
    conversation: Conversation | None  # their open conversation, touched; None: not read
    stored: Message | None = None  # their message's inbound row, written with the others'
    answered_before: "AnsweredBefore | None" = None  # whether they were ever sent anything, asked when needed


class AnsweredBefore:
    """Which of a batch's customers were ever sent a message (the welcome goes before the
    first thing the bot says to anyone): asked for all of them in one statement when the
    first one needs it (a question the bot cannot answer), never when none does."""

    def __init__(self, customer_ids: list[int]) -> None:
        self._customer_ids = customer_ids
        self._answered: set[int] | None = None

    def __call__(self, customer_id: int) -> bool:
        if self._answered is None:
            self._answered = conversations.answered_before(self._customer_ids)
        return customer_id in self._answered


class ReplySlot:
    """Hands the sender's replies to a waiting HTTP request, unless it has given up."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = "open"  # open | taken | abandoned

    def take(self) -> bool:
        """The dispatcher claims inline delivery; False when the request already gave up."""
        with self._lock:
            if self._state == "open":
                self._state = "taken"
            return self._state == "taken"

    def abandon(self) -> bool:
        """The request gives up waiting; False when the replies were already taken inline."""
        with self._lock:
            if self._state == "open":
                self._state = "abandoned"
            return self._state == "abandoned"


@dataclass
class Result:
    """What `handle` did: the replies to return inline and a summary for the log line."""

    replies: list[Reply] = field(default_factory=list)
    action: str = ""
    duplicate: bool = False
    conversation_id: int | None = None
    stage: str | None = None  # how the bot answered (bot.ops.metrics.reply_stage)


class Dispatcher:
    def __init__(self, config: Config, store: FaqStore | None = None, cache_check_seconds: float = 0.0) -> None:
        """`cache_check_seconds`: read the version row of the settings and agents caches at
        most this often (0: before every batch; see `refresh`)."""
        self.config = config
        self.store = store or FaqStore()
        self.router = Router(self.store, config.faq.threshold, config.faq.suggestions)
        self.relay = Relay()
        self.cache_check_seconds = cache_check_seconds

    # -- the one entry point ------------------------------------------------------------

    def handle(self, inbound: Inbound, slot: ReplySlot | None = None) -> Result:
        """One message in its own transaction (the group commit, adapters/group_commit.py,
        decides many in one)."""
        self.refresh()
        return self.decide(inbound, slot)

    def refresh(self) -> None:
        """Bring the per-process caches up to date; outside the write transaction: a rebuild
        after an FAQ edit may embed new phrasings (~20 ms each), and nobody else should wait
        for the write lock meanwhile. The version row of settings and agents is read here,
        once per batch, or at most every `cache_check_seconds` (the server on PostgreSQL,
        where a read is a round trip: `CACHE_CHECK_SECONDS`)."""
        self.store.refresh()
        cache_version.check(self.cache_check_seconds)

    def decide(self, inbound: Inbound, slot: ReplySlot | None = None, known: Known | None = None) -> Result:
        """One message: in a transaction of its own, or inside the caller's (a batch, which
        found the stored messages before: `stored_keys`). In a batch there is no savepoint
        per message: a duplicate found only when written raises `Unisolated` and any failure
        propagates; the caller must roll its whole transaction back. In a batch the replies
        are final only when the caller commits: nobody may be answered before that.
        `known`: the sender's customer row (and open conversation), upserted and touched by the
        caller already (`known_senders`)."""
        started = time.perf_counter()
        result = Result()
        alone = not database.in_transaction()
        if alone:
            faq_hits.reset()  # nothing counted outside a transaction is this message's
        hits = faq_hits.since()
        scope = transaction() if alone else contextlib.nullcontext()
        try:
            with scope:
                inline_rows = self._decide(inbound, result, slot, known)
                if alone:  # in a batch, the batch writes them before its commit
                    faq_hits.write()
        except _Duplicate:  # everything this delivery wrote is rolled back
            faq_hits.forget(hits)
            if not alone:
                raise Unisolated(f"{inbound.msg_id}: stored by another delivery meanwhile") from None
            return self.duplicate(inbound, started)
        except BaseException:
            faq_hits.forget(hits)
            raise
        def answer() -> None:  # the rows' ids are in the replies: in a batch, once it wrote them
            result.replies = [_reply_of(r) for r in inline_rows]

        held_rows.when_written(answer)
        self._log(inbound, result, started, len(inline_rows))
        metrics.observe_message(inbound.channel, inbound.kind, result.duplicate, result.stage,
                                time.perf_counter() - started)
        return result

    def duplicate(self, inbound: Inbound, started: float | None = None) -> Result:
        """A message an earlier delivery stored: the replies it produced (`_replay`), not decided again."""
        started = time.perf_counter() if started is None else started
        result = Result(action="duplicate", duplicate=True, replies=self._replay(inbound))
        self._log(inbound, result, started)
        metrics.observe_message(inbound.channel, inbound.kind, True, None, time.perf_counter() - started)
        return result

    @staticmethod
    def stored_keys(inbounds: Sequence[Inbound]) -> set[tuple[str, str]]:
        """The (channel, key) of these messages already stored: one read per channel. Inside a
        SQLite write transaction (which holds the database's write lock) nobody can store one
        of them meanwhile, so a message not found here is new to the database; on PostgreSQL
        another process may store one after this look (its `decide` then raises `Unisolated`)."""
        wanted: dict[str, list[str]] = {}
        for inbound in inbounds:
            channel, key = inbound.stored_key
            wanted.setdefault(channel, []).append(key)
        found: set[tuple[str, str]] = set()
        for channel, keys in wanted.items():
            unique = list(dict.fromkeys(keys))
            marks = ", ".join("?" * len(unique))
            rows = execute(f'SELECT "external_id" FROM "message" WHERE "channel" = ? AND "external_id" IN ({marks})',
                           (channel, *unique)).fetchall()
            found.update((channel, row[0]) for row in rows)
        return found

    def repeat(self, inbound: Inbound, first: Result) -> Result:
        """A copy of a message decided earlier in the same transaction (WeChat's retry landing
        in the same batch): the first delivery's inline replies, which is what `_replay`
        would read back (its inline rows to the same sender), without deciding it again and
        rolling that back. The caller keys copies by channel, MsgId and sender."""
        started = time.perf_counter()
        result = Result(replies=list(first.replies), action="duplicate", duplicate=True)
        self._log(inbound, result, started)
        metrics.observe_message(inbound.channel, inbound.kind, True, None, time.perf_counter() - started)
        return result

    @staticmethod
    def known_senders(inbounds: Sequence[Inbound]) -> dict[tuple[str, str], Known]:
        """What `_decide` would upsert and touch one message at a time, for several at once:
        the customer rows of these messages' senders (`conversations.upsert_customers`) and
        their open conversations, touched (`conversations.touch_open`) or opened in one insert
        (`conversations.open_new`), but not for a digit 1-5, which may rate a closed
        conversation or answer a revisit (its decision knows); and the inbound rows of the
        messages to an open conversation, in one insert (`Unisolated` when one of them turns
        out stored already, or a conversation opened meanwhile: the caller redoes its batch).
        Not for a WeCom change event or an agent's message, which are not a customer's. The
        caller passes each message its sender's `Known`."""
        people = {(i.channel, i.user_id): i for i in inbounds
                  if not (wecom_contacts.is_change(i) or wecom_groups.is_change(i)
                          or identities.is_agent(i.channel, i.user_id))}
        if not people:
            return {}
        customers = conversations.upsert_customers([(i.channel, i.user_id, i.nickname) for i in people.values()])
        talking = [key for key, i in people.items() if not (i.kind == "text" and i.text.strip() in RATINGS)]
        open_now = conversations.touch_open([customers[key].id for key in talking])
        # the others open one, as their message would (`_decide`): all in one insert
        opened = conversations.open_new([customers[key] for key in talking if customers[key].id not in open_now])
        if opened is None:
            raise Unisolated("a conversation of the batch was opened by another delivery meanwhile")
        open_now.update(opened)
        # a message to an open conversation is stored with it whatever is decided (a rating,
        # the one case stored otherwise, has no conversation here): all such rows in one insert
        rows = {key: _inbound_row(people[key], customer=customer.id, conversation=open_now[customer.id].id)
                for key, customer in customers.items() if customer.id in open_now}
        if rows and not insert_rows(list(rows.values()), ignore_conflict=True):
            raise Unisolated("a message of the batch was stored by another delivery meanwhile")
        answered = AnsweredBefore([customers[key].id for key in rows])  # asked once, should one of them need it
        return {key: Known(customer, open_now.get(customer.id), rows.get(key), answered if key in rows else None)
                for key, customer in customers.items()}

    # -- deciding -------------------------------------------------------------------------

    def _decide(self, inbound: Inbound, result: Result, slot: ReplySlot | None,
                known: Known | None = None) -> list[Message]:
        """Store the inbound message with whom it belongs to, decide, store the replies;
        the inline ones are returned. Raises `_Duplicate` when the message was stored before."""
        if wecom_contacts.is_change(inbound):  # WeCom customer contact: the CRM follows, nobody is answered
            stored = self._store_inbound(inbound, author="system")  # the event's key: a retry stops here
            customer, outgoing = wecom_contacts.changed(inbound)
            if customer is not None:
                Message.update(customer=customer.id).where(Message.id == stored.id).execute()
            result.action = "contact_change"
            return self._persist(inbound, stored, outgoing, slot)
        if wecom_groups.is_change(inbound):  # WeCom customer group: kefu's group follows, nobody is answered
            stored = self._store_inbound(inbound, author="system")  # the event's key: a retry stops here
            wecom_groups.changed(inbound)
            result.action = "group_change"
            return self._persist(inbound, stored, [], slot)
        agent = (fetch_one(Agent, '"channel" = ? AND "im_user_id" = ?', (inbound.channel, inbound.user_id))
                 if identities.is_agent(inbound.channel, inbound.user_id) else None)  # no query for a customer
        if agent is not None and agent.active:
            stored = self._store_inbound(inbound, author="agent", agent=agent.id)
            result.action = "agent"
            replies = self.relay.handle(agent, inbound)  # takes the assignment lock first
            last_seen.seen(agent.id)  # the agent row only under that lock: stamped before it, it deadlocked
            return self._persist(inbound, stored, replies, slot)
        customer = (known.customer if known is not None
                    else conversations.upsert_customer(inbound.channel, inbound.user_id, inbound.nickname))
        rating = self._satisfaction(inbound, customer)
        if rating is None and inbound.kind == "text":
            rating = self._revisit_answer(inbound, customer)
        if rating is not None:
            stored = self._store_inbound(inbound, customer=customer.id)
            result.action = "rating"
            return self._persist(inbound, stored, rating, slot)
        conversation = known.conversation if known is not None else None
        if conversation is None:
            conversation, _ = conversations.open_conversation(customer)  # touched, or new
        # before routing: the agent's handoff briefing lists this message with the conversation
        stored = (known.stored if known is not None and known.stored is not None
                  else self._store_inbound(inbound, customer=customer.id, conversation=conversation.id))
        result.conversation_id = conversation.id
        text = self._card_answer(conversation, inbound.text) if inbound.kind == "text" else inbound.text
        outgoing = channel_codes.scanned(inbound, customer, conversation)  # a 渠道活码's scene, else None
        if outgoing is None:
            answered = known.answered_before if known is not None else None
            outgoing = self.router.route(Turn(inbound, customer, conversation, stored, text,
                                              functools.partial(answered, customer.id) if answered else None))
        result.action = _action(conversation, outgoing)
        result.stage = metrics.reply_stage(result.action, [o.reply.meta for o in outgoing if o.author == "bot"])
        return self._persist(inbound, stored, outgoing, slot)

    @staticmethod
    def _store_inbound(inbound: Inbound, author: str = "customer", **links: int) -> Message:
        """The inbound row, state "done" at once: it commits with its decision or not at all.

        UNIQUE(channel, external_id) is the dedup key. It is written after the customer and
        the conversation are known (one insert, no update of the row's indexes); a retry
        that gets here finds the key taken, or waits on it until the first delivery
        commits, and raises `_Duplicate`, which rolls back what it did before."""
        stored = _inbound_row(inbound, author, **links)
        if insert_row(stored, ignore_conflict=True) is None:
            raise _Duplicate
        return stored

    def _satisfaction(self, inbound: Inbound, customer) -> list[Outgoing] | None:  # type: ignore[no-untyped-def]
        """A 1-5 right after a human conversation ended is its rating, not a new question."""
        text = inbound.text.strip()
        if inbound.kind != "text" or text not in ("1", "2", "3", "4", "5"):
            return None
        window = SATISFACTION_WINDOW
        current = Conversation.get_or_none(Conversation.open_key == customer.id)
        if current is not None:
            # they asked the bot something first: still the rating, within a shorter window,
            # unless a person has their new conversation or the digit picks one of the bot's cards
            if current.status != "bot" or len(conversations.last_bot_cards(current)) >= int(text):
                return None
            window = RATING_AFTER_QUESTION_WINDOW
        last = (
            Conversation.select()
            .where((Conversation.customer == customer) & (Conversation.status == "resolved")
                   & (Conversation.resolved_by == "agent") & Conversation.satisfaction.is_null()
                   & (Conversation.resolved_at >= clock.now() - window))
            .order_by(Conversation.resolved_at.desc())
            .first()
        )
        if last is None:
            return None
        Conversation.update(satisfaction=int(text)).where(Conversation.id == last.id).execute()
        return [Outgoing(inbound.channel, inbound.user_id, Reply(text="感谢您的评价，祝您生活愉快！"), "bot", last, customer)]

    @staticmethod
    def _revisit_answer(inbound: Inbound, customer) -> list[Outgoing] | None:  # type: ignore[no-untyped-def]
        """A 1-5 after a revisit question (回访, jobs/revisits.py) scores the order."""
        from bot.conversation import revisits

        text = revisits.reply_to(customer, inbound.text)
        if text is None:
            return None
        conversation = Conversation.get_or_none(Conversation.open_key == customer.id)
        return [Outgoing(inbound.channel, inbound.user_id, Reply(text=text), "bot", conversation, customer)]

    @staticmethod
    def _card_answer(conversation: Conversation, text: str) -> str:
        stripped = text.strip()
        if stripped.isdigit() and len(stripped) <= 2:
            cards = conversations.last_bot_cards(conversation)
            index = int(stripped) - 1
            if 0 <= index < len(cards):
                return cards[index]["title"]
        return text

    # -- storing and delivering ------------------------------------------------------------

    def _persist(self, inbound: Inbound, stored: Message, outgoing: list[Outgoing],
                 slot: ReplySlot | None) -> list[Message]:
        """Store every outbound message in its final state, in the decision's transaction:
        the sender's replies `inline` when the waiting request takes them (it answers with
        them once this commits), everything else `queued` with its outbox row. Returns the
        inline rows. A crash before the commit stores none of it and the platform's retry
        decides afresh; a retry meanwhile waits on the inbound key, then replays."""
        to_sender = [o.channel == inbound.channel and o.to_user == inbound.user_id for o in outgoing]
        inline = any(to_sender) and (slot is None or slot.take())
        inline_rows: list[Message] = []
        held = held_rows.holding()  # in a batch: written together before its commit (held_rows)
        request_id = REQUEST_ID.get() if held else None
        for n, (out, mine) in enumerate(zip(outgoing, to_sender)):
            row = new_row(
                Message, channel=out.channel, external_id=f"re:{stored.id}:{n}", conversation=_id(out.conversation),
                customer=_id(out.customer), agent=_id(out.agent), direction="out", author=out.author,
                peer_id=out.to_user, kind=out.reply.kind, text=out.reply.text,
                payload={**out.reply.as_content(), **dict(out.reply.meta)}, in_reply_to=stored.id,
                faq=_id(out.faq), score=out.score, state="inline" if mine and inline else "queued",
                created_at=clock.now(),
            )
            if row.state == "inline":
                inline_rows.append(row)
            if held:
                held_rows.reply(row, request_id)
                continue
            insert_row(row)
            if row.state != "inline":
                outbox.enqueue(f"msg:{row.id}", out.channel, out.to_user, row.payload, message=row)
        return inline_rows

    def _replay(self, inbound: Inbound) -> list[Reply]:
        """A retried message: the replies the first delivery produced, if they were not
        already handed to the outbox."""
        channel, key = inbound.stored_key
        first = Message.get_or_none((Message.channel == channel) & (Message.external_id == key))
        if first is None:
            return []
        rows = list(
            Message.select()
            .where((Message.in_reply_to == first) & (Message.channel == inbound.channel)
                   & (Message.peer_id == inbound.user_id) & Message.state.in_(("pending", "inline")))
            .order_by(Message.id)
        )
        pending = [r.id for r in rows if r.state == "pending"]
        if pending:
            Message.update(state="inline").where(Message.id.in_(pending) & (Message.state == "pending")).execute()
        return [_reply_of(r) for r in rows]

    def _log(self, inbound: Inbound, result: Result, started: float, replies: int | None = None) -> None:
        if not log.isEnabledFor(logging.INFO):
            return
        log.info("%s", LogFields(
            event="message", channel=inbound.channel, user=inbound.user_id[-8:], msg_id=inbound.msg_id,
            kind=inbound.kind, action=result.action, conversation=result.conversation_id,
            replies=len(result.replies) if replies is None else replies, ms=round((time.perf_counter() - started) * 1000, 2),
        ))


class _Duplicate(Exception):
    """The inbound message was stored by an earlier delivery: roll this one back, replay."""


class Unisolated(Exception):
    """A message decided in a batch (`Dispatcher.decide` inside the caller's transaction) turned
    out stored by another delivery after its writes began: the caller's transaction must be
    rolled back and its messages decided again, each alone."""


def recover_pending(older_than_seconds: float = 60.0) -> int:
    """Queue replies left `pending` by a process that died between deciding and delivering."""
    cutoff = clock.now() - timedelta(seconds=older_than_seconds)
    count = 0
    with transaction():
        for row in Message.select().where((Message.direction == "out") & (Message.state == "pending")
                                          & (Message.created_at < cutoff)):
            outbox.enqueue(f"msg:{row.id}", row.channel, row.peer_id, row.payload or {"kind": "text", "text": row.text},
                           message=row)
            count += 1
    return count


def _id(value: object) -> int | None:
    """A foreign key's value from a model instance or an id."""
    return value if value is None or isinstance(value, int) else value.id  # type: ignore[attr-defined]


def _inbound_row(inbound: Inbound, author: str = "customer", **links: int) -> Message:
    """The unsaved inbound row of a message, state "done": it commits with its decision."""
    return new_row(
        Message, channel=inbound.channel, external_id=inbound.stored_key[1], direction="in", author=author,
        peer_id=inbound.user_id, kind=inbound.kind, text=inbound.text[:20000], payload=_payload(inbound),
        state="done", created_at=clock.now(), **links,
    )


def _payload(inbound: Inbound) -> dict[str, object] | None:
    payload: dict[str, object] = {}
    if inbound.media:
        payload["media"] = dict(inbound.media)
    if inbound.event:
        payload["event"], payload["event_key"] = inbound.event, inbound.event_key
    return payload or None


def _reply_of(row: Message) -> Reply:
    payload = row.payload or {}
    cards = tuple(Card(c.get("title", ""), c.get("payload", "")) for c in payload.get("cards") or ())
    meta = {k: v for k, v in payload.items() if k not in ("kind", "text", "cards")}
    meta["message_id"] = row.id
    return Reply(text=row.text, kind=row.kind, cards=cards, meta=meta)


def _action(conversation: Conversation, outgoing: list[Outgoing]) -> str:
    if conversation.status == "assigned" and any(o.author == "system" for o in outgoing):
        # the bot's 已收到 beside a relayed message is not a handoff notice
        told = any(o.author == "bot" and o.reply.meta.get("notice") != ACK_NOTICE for o in outgoing)
        return "handoff" if told else "relay"
    if conversation.status == "queued":
        return "queued"
    if any(o.faq for o in outgoing):
        return "faq"
    return "bot"
