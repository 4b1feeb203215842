"""Choosing the agent for a conversation: round-robin among online agents with free capacity.

Why the state lives in the database: several `kefu serve` processes hand off at once.
The choice is the least-loaded free agent, ties broken by who was assigned longest ago, so
after N handoffs to k equal agents their loads differ by at most one.

Why one lock for every change of "who has what": each function here that gives a
conversation to an agent (handoff, queue drain, /next, transfer, SLA reassignment, an agent
going offline) reads the loads and writes the assignment inside one transaction that first
takes a cross-process lock (PostgreSQL `pg_advisory_xact_lock`; SQLite's IMMEDIATE
transaction is already exclusive). Under PostgreSQL's READ COMMITTED every statement after
the lock sees what the previous holder committed, because the lock is released only at its
commit; so no two processes read the same stale load, no capacity is exceeded and no
conversation is given twice. The lock is held until the outermost transaction ends (the
dispatcher's, for a handoff), which serializes assignments only, not message handling.

No deadlocks between the lock and row locks: a transaction holding the lock never waits
for a conversation row another transaction may hold while itself waiting for the lock
(queue heads and rows it moves on someone else's behalf are taken `FOR UPDATE SKIP
LOCKED`, and left for the next pass when busy), and agent commands, which change agent
rows and then assign, take the lock before touching anything (`hold_lock`).
tests/bot/agents/test_concurrent_handoffs.py runs both sides at once from several processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import peewee

from bot.crm import conversations
from bot.core.db import (advisory_xact_lock, execute, fetch_annotated, fetch_one, is_postgres, joined_transaction,
                         transaction)
from bot.core.models import Agent, Conversation

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
LOCK_NAME = "kefu:assignment"


def loads() -> dict[int, int]:
    """Open assigned conversations per agent id."""
    rows = (
        Conversation.select(Conversation.agent, peewee.fn.COUNT(Conversation.id))
        .where((Conversation.status == "assigned") & Conversation.agent.is_null(False))
        .group_by(Conversation.agent)
        .tuples()
    )
    return {agent_id: count for agent_id, count in rows}


def load_of(agent: Agent) -> int:
    return Conversation.select().where((Conversation.agent == agent.id) & (Conversation.status == "assigned")).count()


def free_agents(exclude: tuple[int, ...] = ()) -> list[Agent]:
    """Online, active agents below capacity, best candidate first; each with its
    `open_load`. One statement of fixed SQL: it runs under the assignment lock, where every
    round trip and every query built is every waiting handoff's wait too."""
    where = _ONLINE
    if exclude:
        where += f' AND "id" NOT IN ({", ".join("?" * len(exclude))})'
    online = fetch_annotated(Agent, _OPEN_LOAD, "open_load", where, (True, *exclude))
    free = [a for a in online if a.open_load < a.max_open]
    return sorted(free, key=lambda a: (a.open_load, a.last_assigned_at or _EPOCH, a.id))


_ONLINE = '"active" = ? AND "status" = \'online\''  # one parameter: True
_OPEN_LOAD = ('(SELECT COUNT(*) FROM "conversation" AS "c" WHERE "c"."agent_id" = "agent"."id" '
              'AND "c"."status" = \'assigned\')')


def any_agent_free() -> bool:
    """Some online, active agent is below capacity (what `free_agents` would list, in one
    statement: every handoff while others wait asks it)."""
    return execute(f'SELECT 1 FROM "agent" WHERE {_ONLINE} AND "max_open" > {_OPEN_LOAD} LIMIT 1',
                   (True,)).fetchone() is not None


@dataclass(frozen=True)
class QueueOutlook:
    """What a handoff needs to know before it queues or assigns (`queue_outlook`)."""

    waiting: int  # conversations in the queue (but the one handed off), counted up to QUEUE_COUNTED
    online: bool  # some active agent is online: a queue then means busy, not nobody there
    free: bool  # some active online agent is below capacity


def queue_outlook(conversation: Conversation) -> QueueOutlook:
    """The queue and the agents as a handoff of `conversation` finds them, in one statement:
    with others waiting, or nobody free, it joins the queue at `waiting + 1` without asking
    again (a handoff while 2,000 waited asked five times)."""
    row = execute(
        f'SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM "conversation" WHERE "status" = \'queued\' AND "id" <> ? '
        f'LIMIT {conversations.QUEUE_COUNTED}) AS "waiting"), EXISTS (SELECT 1 FROM "agent" WHERE {_ONLINE}), '
        f'EXISTS (SELECT 1 FROM "agent" WHERE {_ONLINE} AND "max_open" > {_OPEN_LOAD})',
        (conversation.id, True, True)).fetchone()
    return QueueOutlook(int(row[0]), bool(row[1]), bool(row[2]))


def queue_place(conversation: Conversation) -> tuple[int, bool]:
    """`conversations.queue_position` of a queued conversation, and whether some active agent
    is online (free or not: a queue then means busy, not nobody there), in one statement: a
    waiting customer who asks for a person again is told both."""
    row = execute(f'SELECT ({conversations.QUEUE_AHEAD}), EXISTS (SELECT 1 FROM "agent" WHERE {_ONLINE})',
                  (*conversations.queue_ahead_params(conversation), True)).fetchone()
    return int(row[0]) + 1, bool(row[1])


def assign_next_agent(conversation: Conversation, prefer: Agent | None = None, exclude: tuple[int, ...] = (),
                      prefer_id: int | None = None, previous_ended: str = "transfer",
                      handoff_reason: str | None = None) -> Agent | None:
    """Give the conversation to an agent, or return None when nobody is free.

    `prefer` / `prefer_id` (the customer's previous agent or private-pool owner) wins when
    online and free. Agents in `exclude` are never chosen; a conversation already held by
    an agent not excluded stays with them (a concurrent handoff of the same conversation).
    `handoff_reason`, when given, is written with the assignment (not in a statement of its own
    under the lock). Inside the caller's transaction without a savepoint (`joined_transaction`):
    the lock is held to the caller's commit, so what runs after it here is kept to the least.
    """
    wanted = prefer.id if prefer is not None else prefer_id
    with joined_transaction():
        advisory_xact_lock(LOCK_NAME)
        fresh = fetch_one(Conversation, '"id" = ?', (conversation.id,))
        if fresh is None or fresh.status == "resolved":
            return None
        if fresh.status == "assigned" and fresh.agent_id and fresh.agent_id not in exclude:
            return Agent.get_by_id(fresh.agent_id)
        candidates = free_agents(exclude)
        if not candidates:
            return None
        chosen = next((a for a in candidates if a.id == wanted), candidates[0])
        conversations.assign(fresh, chosen, previous_ended=previous_ended, handoff_reason=handoff_reason)
        _copy(fresh, conversation)
        return chosen


def take_next(agent: Agent) -> Conversation | None | str:
    """The agent takes the longest-waiting queued conversation (/next).

    Returns the conversation, None when the queue is empty, or "full" at capacity.
    """
    with transaction():
        advisory_xact_lock(LOCK_NAME)
        waiting = _head_of_queue()
        if waiting is None:
            return None
        fresh_agent = Agent.get_by_id(agent.id)
        if load_of(fresh_agent) >= fresh_agent.max_open:
            return "full"
        conversations.assign(waiting, fresh_agent)
        Agent.update(current_conversation_id=waiting.id).where(Agent.id == agent.id).execute()
        return waiting


def claim_queued(conversation: Conversation, agent: Agent) -> str:
    """The agent takes this queued conversation (the workbench's 接入): "ok", "full", or
    "gone" when it is no longer queued (another agent, or the queue, was faster)."""
    with transaction():
        advisory_xact_lock(LOCK_NAME)
        fresh = _lock_row(conversation.id)
        if fresh is None or fresh.status != "queued":
            return "gone"
        fresh_agent = Agent.get_by_id(agent.id)
        if load_of(fresh_agent) >= fresh_agent.max_open:
            return "full"
        conversations.assign(fresh, fresh_agent)
        _copy(fresh, conversation)
        return "ok"


def transfer(conversation: Conversation, target: Agent) -> str:
    """Hand an assigned conversation to another agent (转接).

    Returns "ok", or why not: "same", "inactive", "offline", "full", "gone".
    """
    with transaction():
        advisory_xact_lock(LOCK_NAME)
        fresh = Conversation.get_by_id(conversation.id)
        target = Agent.get_by_id(target.id)
        if fresh.status != "assigned":
            return "gone"
        if fresh.agent_id == target.id:
            return "same"
        if not target.active:
            return "inactive"
        if target.status == "offline":
            return "offline"
        if load_of(target) >= target.max_open:
            return "full"
        old = fresh.agent_id
        conversations.assign(fresh, target, previous_ended="transfer")
        Agent.update(current_conversation_id=None).where(
            (Agent.id == old) & (Agent.current_conversation_id == fresh.id)
        ).execute()
        _copy(fresh, conversation)
        return "ok"


def drain_queue(limit: int = 50,
                on_assign: Callable[[Conversation, Agent], None] | None = None) -> list[tuple[Conversation, Agent]]:
    """Assign queued conversations, longest-waiting first, while agents are free.

    `on_assign` runs inside each assignment's transaction (to store its messages with it).
    """
    done: list[tuple[Conversation, Agent]] = []
    for _ in range(limit):
        with transaction():
            advisory_xact_lock(LOCK_NAME)
            waiting = _head_of_queue()
            if waiting is None:
                break
            candidates = free_agents()
            if not candidates:
                break
            conversations.assign(waiting, candidates[0])
            if on_assign is not None:
                on_assign(waiting, candidates[0])
            done.append((waiting, candidates[0]))
    return done


def release_awaiting(agent: Agent) -> list[Conversation]:
    """An agent goes offline: the conversations waiting for their reply go back to the queue.

    Precisely: every conversation assigned to the agent for which
    `conversations.awaiting_reply_since` is set (the agent has not replied since the
    handoff, or the customer wrote after the agent's last reply) is queued again with
    `queued_at` = the moment the customer started waiting, so it is served in order of
    real waiting time. Conversations where the agent spoke last stay with the agent; if
    such a customer writes while the agent is still offline, routing hands it over then
    (`reassign_from_unavailable`).
    """
    released: list[Conversation] = []
    with transaction():
        advisory_xact_lock(LOCK_NAME)
        for listed in conversations.open_for_agent(agent):
            conversation = _lock_row(listed.id)
            if conversation is None or conversation.status != "assigned" or conversation.agent_id != agent.id:
                continue
            since = conversations.awaiting_reply_since(conversation)
            if since is None:
                continue
            conversations.enqueue(conversation, "agent_offline", queued_at=since, previous_ended="offline")
            released.append(conversation)
    return released


def reassign_from_unavailable(conversation: Conversation) -> Agent | None:
    """The customer writes in a conversation whose agent is offline or deactivated: give it
    to another free agent, or queue it (returns None). Waiting starts now. Either way the
    handoff reason is "agent_offline", as for the conversations the agent's going offline
    moved (`release_awaiting`): the new agent's brief says so alike."""
    old = conversation.agent_id
    agent = assign_next_agent(conversation, exclude=(old,) if old else (), previous_ended="offline")
    if agent is not None:
        Conversation.update(handoff_reason="agent_offline").where(Conversation.id == conversation.id).execute()
        conversation.handoff_reason = "agent_offline"
    else:
        with transaction():
            advisory_xact_lock(LOCK_NAME)
            fresh = Conversation.get_by_id(conversation.id)
            if fresh.status == "assigned" and fresh.agent_id == old:
                conversations.enqueue(fresh, "agent_offline", previous_ended="offline")
            _copy(fresh, conversation)
    return agent


def reassign_overdue(conversation: Conversation, assigned_at: datetime) -> tuple[Agent, Agent] | None:
    """SLA: move a conversation whose agent has not replied to the next free agent.

    Only when the conversation is still with the same agent since `assigned_at` (a
    concurrent reply, resolve or transfer wins). Returns (old agent, new agent), or None
    when nothing changed (nobody else is free: it stays where it is and is retried).
    """
    with transaction():
        advisory_xact_lock(LOCK_NAME)
        fresh = _lock_row(conversation.id)
        if fresh is None or fresh.status != "assigned" or fresh.agent_id is None or fresh.assigned_at != assigned_at:
            return None
        if conversations.awaiting_reply_since(fresh) is None:
            return None
        old = Agent.get_by_id(fresh.agent_id)
        candidates = free_agents(exclude=(old.id,))
        if not candidates:
            return None
        new = candidates[0]
        conversations.assign(fresh, new, previous_ended="sla")
        Agent.update(current_conversation_id=None).where(
            (Agent.id == old.id) & (Agent.current_conversation_id == fresh.id)
        ).execute()
        _copy(fresh, conversation)
        return old, new


def hold_lock() -> None:
    """Take the assignment lock for the rest of the caller's transaction.

    Why: a transaction that first changes an agent's row (resolve clears the current
    conversation, a status change) and then assigns (draining the queue) would wait for the
    lock while holding that row, and an assignment in flight holding the lock may need the
    same row: a deadlock. Agent commands therefore take the lock before touching anything.
    """
    advisory_xact_lock(LOCK_NAME)


def set_status(agent: Agent, status: str) -> None:
    """Change an agent's status under the assignment lock (an assignment in flight
    updates the agent's row while holding the lock; taking the lock first keeps the two
    from waiting on each other)."""
    with transaction():
        advisory_xact_lock(LOCK_NAME)
        Agent.update(status=status).where(Agent.id == agent.id).execute()
    agent.status = status


def _head_of_queue() -> Conversation | None:
    """The longest-waiting queued conversation; on PostgreSQL one whose row another
    transaction holds (its customer is writing right now) is skipped rather than waited
    for, because that transaction may itself be waiting for the assignment lock."""
    query = (
        Conversation.select()
        .where(Conversation.status == "queued")
        .order_by(Conversation.queued_at, Conversation.id)
        .limit(1)
    )
    if is_postgres():
        query = query.for_update("FOR UPDATE SKIP LOCKED")
    return query.first()


def _lock_row(conversation_id: int) -> Conversation | None:
    """The conversation row, locked; None on PostgreSQL when another transaction holds it
    (see `_head_of_queue`): the caller leaves it for the next pass."""
    query = Conversation.select().where(Conversation.id == conversation_id)
    if is_postgres():
        query = query.for_update("FOR UPDATE SKIP LOCKED")
    return query.first()


def _copy(source: Conversation, target: Conversation) -> None:
    """Keep the caller's object in step with the row."""
    if source is not target:
        target.status, target.agent_id, target.assigned_at = source.status, source.agent_id, source.assigned_at
        target.queued_at, target.handoff_reason = source.queued_at, source.handoff_reason
