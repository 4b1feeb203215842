"""Customers and their conversations: upsert on contact, open/resolve, the queue.

Why a module of its own: the dispatcher, the relay, the admin and the jobs all open,
assign and resolve conversations; the rules (one open conversation per customer, the
timestamps the KPIs need) live here once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Sequence, TypeVar

import peewee

from bot.core import clock
from bot.crm.orders import link_orders_for_many
from bot.core.db import execute, fetch_one, insert_row, insert_rows, new_row, update_all, update_one, upsert_rows
from bot.core.models import Agent, AssignmentLog, Conversation, Customer, Message

RowT = TypeVar("RowT")
OPEN_STATUSES = ("bot", "queued", "assigned")


def upsert_customer(channel: str, external_id: str, nickname: str = "") -> Customer:
    """The CRM record for an IM user, created on first contact (source = channel)."""
    return upsert_customers([(channel, external_id, nickname)])[(channel, external_id)]


def upsert_customers(people: Sequence[tuple[str, str, str]]) -> dict[tuple[str, str], Customer]:
    """`upsert_customer` for several IM users — (channel, user id, nickname), each once — in
    one statement, and one read per channel for the orders that named any of them before they
    wrote (the webhook's batch: two statements a batch instead of two a message). The rows are
    written in key order, so two processes' batches lock the customers they share in the same
    order and do not deadlock on them (PostgreSQL)."""
    people = sorted(people, key=lambda person: person[:2])
    now = clock.now()
    stamp = Customer.last_contact_at.db_value(now)
    # one statement for first contacts and returning customers alike; a concurrent first
    # message waits on the key and then touches the row the other one inserted
    rows = upsert_rows([new_row(Customer, channel=channel, external_id=external_id, nickname=nickname[:128],
                                source=channel, first_contact_at=now, last_contact_at=now, last_inbound_at=now)
                        for channel, external_id, nickname in people],
                       ("channel", "external_id"), '"last_contact_at" = ?, "last_inbound_at" = ?', (stamp, stamp))
    for (_, _, nickname), customer in zip(people, rows):
        if nickname and not customer.nickname:
            Customer.update(nickname=nickname[:128]).where(Customer.id == customer.id).execute()
            customer.nickname = nickname[:128]
            customer._dirty.clear()
    link_orders_for_many(rows)  # orders that named these customers before they wrote (bot/crm)
    return {(channel, external_id): customer for (channel, external_id, _), customer in zip(people, rows)}


def open_conversation(customer: Customer) -> tuple[Conversation, bool]:
    """The customer's open conversation, touched (a message came), or a new one; True when
    it was just opened."""
    now = clock.now()
    existing = update_one(Conversation, '"last_message_at" = ?', (Conversation.last_message_at.db_value(now),),
                          '"open_key" = ?', (customer.id,))
    if existing is not None:
        return existing, False
    conversation = new_row(Conversation, customer=customer, channel=customer.channel, status="bot",
                           open_key=customer.id, opened_at=now, last_message_at=now)
    if insert_row(conversation, ignore_conflict=True):
        return conversation, True
    return _must(fetch_one(Conversation, '"open_key" = ?', (customer.id,))), False  # a concurrent message won


def touch_open(customer_ids: Sequence[int]) -> dict[int, Conversation]:
    """The open conversations of these customers, touched (a message came): one statement;
    a customer without one is not in the answer."""
    if not customer_ids:
        return {}
    now = Conversation.last_message_at.db_value(clock.now())
    rows = update_all(Conversation, '"last_message_at" = ?', (now,),
                      f'"open_key" IN ({", ".join("?" * len(customer_ids))})', tuple(customer_ids))
    return {row.customer_id: row for row in rows}


def answered_before(customer_ids: Sequence[int]) -> set[int]:
    """The ones of these customers who were ever sent a message, in one statement (each an
    index probe that stops at their first message out)."""
    if not customer_ids:
        return set()
    marks = ", ".join("?" * len(customer_ids))
    rows = execute(f'SELECT "id" FROM "customer" WHERE "id" IN ({marks}) AND EXISTS (SELECT 1 FROM "message" '
                   f'WHERE "message"."customer_id" = "customer"."id" AND "message"."direction" = \'out\')',
                   tuple(customer_ids)).fetchall()
    return {row[0] for row in rows}


def open_new(customers: Sequence[Customer]) -> dict[int, Conversation] | None:
    """New open conversations for these customers, who have none (`touch_open` found none),
    in one insert: customer id -> conversation. None when one of them was opened meanwhile
    by another transaction (PostgreSQL; the caller's transaction must then be rolled back,
    as the others are inserted)."""
    if not customers:
        return {}
    now = clock.now()
    rows = [new_row(Conversation, customer=customer, channel=customer.channel, status="bot", open_key=customer.id,
                    opened_at=now, last_message_at=now) for customer in customers]
    if not insert_rows(rows, key=("open_key",), ignore_conflict=True):
        return None
    return {row.customer_id: row for row in rows}


def _must(row: RowT | None) -> RowT:
    """The row a conflicting insert found: it exists unless the database lost it."""
    if row is None:
        raise LookupError("a unique key conflicted with a row that cannot be read back")
    return row


def assign(conversation: Conversation, agent: Agent, previous_ended: str = "transfer",
           handoff_reason: str | None = None) -> None:
    """Give the conversation to `agent` (callers hold the assignment lock, `bot.agents.assignment`).

    A stint of another agent still open in the log ends with `previous_ended`; a
    `handoff_reason` given is written in the same statement.
    """
    now = clock.now()
    if conversation.status == "assigned" or conversation.agent_id is not None:
        _end_stint(conversation, previous_ended, now)
    stamp = Conversation.assigned_at.db_value(now)
    # fixed SQL: a handoff runs this under the assignment lock (bot.agents.assignment)
    execute('UPDATE "conversation" SET "status" = \'assigned\', "agent_id" = ?, "assigned_at" = ?, '
            '"handoff_reason" = COALESCE(?, "handoff_reason") WHERE "id" = ?',
            (agent.id, stamp, handoff_reason, conversation.id))
    if handoff_reason is not None:
        conversation.handoff_reason = handoff_reason
    insert_row(new_row(AssignmentLog, conversation=conversation.id, agent=agent.id, customer=conversation.customer_id,
                       assigned_at=now))
    execute('UPDATE "agent" SET "last_assigned_at" = ?, "current_conversation_id" = COALESCE("current_conversation_id", ?) '
            'WHERE "id" = ?', (stamp, conversation.id, agent.id))
    agent.last_assigned_at = now
    if agent.current_conversation_id is None:
        agent.current_conversation_id = conversation.id
    conversation.status, conversation.agent, conversation.assigned_at = "assigned", agent, now


def enqueue(conversation: Conversation, reason: str, queued_at: datetime | None = None,
            previous_ended: str = "requeue") -> None:
    """Put the conversation in the queue; `queued_at` (default now) orders the queue."""
    now = clock.now()
    when = queued_at or now
    if conversation.assigned_at is not None:  # never given to an agent: no stint to end (`assign` opens them)
        _end_stint(conversation, previous_ended, now)
    if conversation.agent_id:
        execute('UPDATE "agent" SET "current_conversation_id" = NULL WHERE "id" = ? AND "current_conversation_id" = ?',
                (conversation.agent_id, conversation.id))
    execute('UPDATE "conversation" SET "status" = \'queued\', "queued_at" = ?, "agent_id" = NULL, "handoff_reason" = ? '
            'WHERE "id" = ?', (Conversation.queued_at.db_value(when), reason, conversation.id))
    conversation.status, conversation.queued_at, conversation.agent = "queued", when, None


def _end_stint(conversation: Conversation, reason: str, now: datetime) -> None:
    execute('UPDATE "assignment_log" SET "ended_at" = ?, "end_reason" = ? WHERE "conversation_id" = ? '
            'AND "ended_at" IS NULL', (AssignmentLog.ended_at.db_value(now), reason, conversation.id))


def queued() -> list[Conversation]:
    """The queue, longest-waiting first."""
    return list(Conversation.select().where(Conversation.status == "queued")
                .order_by(Conversation.queued_at, Conversation.id))


QUEUE_COUNTED = 100  # a place further back is told as "100+" (`shown_place`): each one counted is a read

# the conversations waiting longer than one queued at ? with id ?, at most QUEUE_COUNTED of
# them (parameters: when, when, id); `"queued_at" <= ?` bounds the read of the queue's index
QUEUE_AHEAD = ('SELECT COUNT(*) FROM (SELECT 1 FROM "conversation" WHERE "status" = \'queued\' AND "queued_at" <= ? '
               f'AND ("queued_at" < ? OR "id" < ?) LIMIT {QUEUE_COUNTED}) AS "ahead"')


def queue_position(conversation: Conversation) -> int:
    """1 for the longest-waiting conversation in the queue; any place after QUEUE_COUNTED is
    QUEUE_COUNTED + 1 (a customer asking again while thousands wait costs the same)."""
    return int(execute(QUEUE_AHEAD, queue_ahead_params(conversation)).fetchone()[0]) + 1


def shown_place(position: int) -> str:
    """A queue position as a customer reads it: "100+" past what is counted."""
    return f"{QUEUE_COUNTED}+" if position > QUEUE_COUNTED else str(position)


def queue_ahead_params(conversation: Conversation) -> tuple[str, str, int]:
    when = Conversation.queued_at.db_value(conversation.queued_at)
    return when, when, conversation.id


def resolve(conversation: Conversation, by: str) -> None:
    now = clock.now()
    _end_stint(conversation, "resolved", now)
    Conversation.update(status="resolved", resolved_at=now, open_key=None, resolved_by=by).where(
        Conversation.id == conversation.id
    ).execute()
    Agent.update(current_conversation_id=None).where(Agent.current_conversation_id == conversation.id).execute()
    conversation.status, conversation.resolved_at, conversation.open_key = "resolved", now, None


def record_agent_reply(conversation: Conversation) -> None:
    """Stamp the agent's reply (and the first response, once) on the conversation and its
    open assignment; fixed SQL, every agent reply comes through here (issue 22)."""
    now = clock.now()
    stamp = Conversation.last_agent_reply_at.db_value(now)
    if conversation.first_response_at is None:
        execute('UPDATE "conversation" SET "last_agent_reply_at" = ?, "first_response_at" = ? WHERE "id" = ?',
                (stamp, stamp, conversation.id))
        conversation.first_response_at = now
    else:
        execute('UPDATE "conversation" SET "last_agent_reply_at" = ? WHERE "id" = ?', (stamp, conversation.id))
    conversation.last_agent_reply_at = now
    execute('UPDATE "assignment_log" SET "first_reply_at" = ? WHERE "conversation_id" = ? AND "ended_at" IS NULL'
            ' AND "first_reply_at" IS NULL', (stamp, conversation.id))


def awaiting_reply_since(conversation: Conversation) -> datetime | None:
    """When the customer started waiting for the current agent, or None when the agent
    spoke last (the ball is in the customer's court).

    Waiting starts at the handoff (the earlier of queueing and assignment) until the agent
    first replies, then at the first customer message after the agent's latest reply.
    """
    if conversation.status != "assigned":
        return None
    replied = conversation.last_agent_reply_at
    if replied is None or (conversation.assigned_at and replied < conversation.assigned_at):
        starts = [t for t in (conversation.queued_at, conversation.assigned_at) if t is not None]
        return min(starts) if starts else conversation.opened_at
    first_after = (
        Message.select(peewee.fn.MIN(Message.created_at))
        .where((Message.conversation == conversation.id) & (Message.direction == "in")
               & (Message.author == "customer") & (Message.created_at > replied))
        .scalar()
    )
    if first_after is None:
        return None
    return Message.created_at.python_value(first_after)


def previous_agent_id(customer: Customer) -> int | None:
    """The customer's agent: the private-pool owner (私海), else whoever served them last."""
    if customer.owner_agent_id:
        return int(customer.owner_agent_id)
    last = execute('SELECT "agent_id" FROM "assignment_log" WHERE "customer_id" = ? '
                   'ORDER BY "assigned_at" DESC, "id" DESC LIMIT 1', (customer.id,)).fetchone()
    return int(last[0]) if last else None


def open_for_agent(agent: Agent) -> list[Conversation]:
    return list(
        Conversation.select()
        .where((Conversation.agent == agent) & (Conversation.status == "assigned"))
        .order_by(Conversation.assigned_at)
    )


def last_bot_cards(conversation: Conversation) -> list[dict[str, str]]:
    """The cards of the bot's last message in this conversation (for numbered answers)."""
    last = (
        Message.select(Message.payload)
        .where((Message.conversation == conversation) & (Message.direction == "out") & (Message.author == "bot"))
        .order_by(Message.id.desc())
        .first()
    )
    if last is None or not last.payload:
        return []
    return list(last.payload.get("cards") or [])
