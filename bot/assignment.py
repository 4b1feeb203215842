"""Choosing the agent for a handoff: round-robin among online agents with free capacity.

Why the state lives in the database: several `kefu serve` processes hand off at once.
The choice is the least-loaded free agent, ties broken by who was assigned longest ago, so
after N handoffs to k equal agents their loads differ by at most one. The pick and the
assignment happen in one transaction holding a cross-process lock (PostgreSQL advisory
lock; SQLite's IMMEDIATE transaction is already exclusive), so no two processes pick the
same slot and no capacity is exceeded.
"""

from __future__ import annotations

from datetime import datetime, timezone

import peewee

from bot import conversations
from bot.db import advisory_xact_lock, transaction
from bot.models import Agent, Conversation

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


def free_agents(exclude: tuple[int, ...] = ()) -> list[Agent]:
    """Online, active agents below capacity, best candidate first."""
    current = loads()
    query = Agent.select().where((Agent.active == True) & (Agent.status == "online"))  # noqa: E712
    if exclude:
        query = query.where(Agent.id.not_in(exclude))
    free = [a for a in query if current.get(a.id, 0) < a.max_open]
    return sorted(free, key=lambda a: (current.get(a.id, 0), a.last_assigned_at or _EPOCH, a.id))


def any_agent_free() -> bool:
    return bool(free_agents())


def assign_next_agent(conversation: Conversation, prefer: Agent | None = None, exclude: tuple[int, ...] = ()) -> Agent | None:
    """Give the conversation to an agent, or return None when nobody is free.

    `prefer` (the customer's owner, 私海) wins when online and free.
    """
    with transaction():
        advisory_xact_lock(LOCK_NAME)
        fresh = Conversation.get_by_id(conversation.id)
        if fresh.status == "assigned" and fresh.agent_id:
            return Agent.get_by_id(fresh.agent_id)
        candidates = free_agents(exclude)
        if not candidates:
            return None
        chosen = candidates[0]
        if prefer is not None:
            chosen = next((a for a in candidates if a.id == prefer.id), chosen)
        conversations.assign(conversation, chosen)
        return chosen


def drain_queue(limit: int = 50) -> list[tuple[Conversation, Agent]]:
    """Assign queued conversations, longest-waiting first, while agents are free."""
    done: list[tuple[Conversation, Agent]] = []
    for _ in range(limit):
        with transaction():
            advisory_xact_lock(LOCK_NAME)
            waiting = (
                Conversation.select()
                .where(Conversation.status == "queued")
                .order_by(Conversation.queued_at, Conversation.id)
                .first()
            )
            if waiting is None:
                break
            candidates = free_agents()
            if not candidates:
                break
            conversations.assign(waiting, candidates[0])
            done.append((waiting, candidates[0]))
    return done
