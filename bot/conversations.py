"""Customers and their conversations: upsert on contact, open/resolve, the queue.

Why a module of its own: the dispatcher, the relay, the admin and the jobs all open,
assign and resolve conversations; the rules (one open conversation per customer, the
timestamps the KPIs need) live here once.
"""

from __future__ import annotations

import peewee

from bot import clock
from bot.db import insert_new
from bot.models import Agent, Conversation, Customer, Message

OPEN_STATUSES = ("bot", "queued", "assigned")


def upsert_customer(channel: str, external_id: str, nickname: str = "") -> Customer:
    """The CRM record for an IM user, created on first contact (source = channel)."""
    now = clock.now()
    Customer.insert(
        channel=channel, external_id=external_id, nickname=nickname[:128], source=channel,
        first_contact_at=now, last_contact_at=now,
    ).on_conflict_ignore().execute()
    customer = Customer.get((Customer.channel == channel) & (Customer.external_id == external_id))
    updates: dict[peewee.Field, object] = {Customer.last_contact_at: now, Customer.last_inbound_at: now}
    if nickname and not customer.nickname:
        updates[Customer.nickname] = nickname[:128]
    Customer.update(updates).where(Customer.id == customer.id).execute()
    customer.last_contact_at = customer.last_inbound_at = now
    return customer


def open_conversation(customer: Customer) -> tuple[Conversation, bool]:
    """The customer's open conversation, or a new one; True when it was just opened."""
    now = clock.now()
    inserted = insert_new(Conversation.insert(
        customer=customer, channel=customer.channel, status="bot", open_key=customer.id,
        opened_at=now, last_message_at=now,
    ).on_conflict_ignore())
    conversation = Conversation.get(Conversation.open_key == customer.id)
    return conversation, inserted is not None


def touch(conversation: Conversation) -> None:
    now = clock.now()
    Conversation.update(last_message_at=now).where(Conversation.id == conversation.id).execute()
    conversation.last_message_at = now


def assign(conversation: Conversation, agent: Agent) -> None:
    now = clock.now()
    Conversation.update(status="assigned", agent=agent, assigned_at=now).where(
        Conversation.id == conversation.id
    ).execute()
    Agent.update(last_assigned_at=now).where(Agent.id == agent.id).execute()
    if agent.current_conversation_id is None:
        Agent.update(current_conversation_id=conversation.id).where(Agent.id == agent.id).execute()
        agent.current_conversation_id = conversation.id
    conversation.status, conversation.agent, conversation.assigned_at = "assigned", agent, now


def enqueue(conversation: Conversation, reason: str) -> None:
    now = clock.now()
    Conversation.update(status="queued", queued_at=now, agent=None, handoff_reason=reason).where(
        Conversation.id == conversation.id
    ).execute()
    conversation.status, conversation.queued_at, conversation.agent = "queued", now, None


def queue_position(conversation: Conversation) -> int:
    """1 for the longest-waiting conversation in the queue."""
    ahead = (
        Conversation.select()
        .where(
            (Conversation.status == "queued")
            & (
                (Conversation.queued_at < conversation.queued_at)
                | ((Conversation.queued_at == conversation.queued_at) & (Conversation.id < conversation.id))
            )
        )
        .count()
    )
    return ahead + 1


def resolve(conversation: Conversation, by: str) -> None:
    now = clock.now()
    Conversation.update(status="resolved", resolved_at=now, open_key=None, resolved_by=by).where(
        Conversation.id == conversation.id
    ).execute()
    Agent.update(current_conversation_id=None).where(Agent.current_conversation_id == conversation.id).execute()
    conversation.status, conversation.resolved_at, conversation.open_key = "resolved", now, None


def record_agent_reply(conversation: Conversation) -> None:
    now = clock.now()
    updates: dict[peewee.Field, object] = {Conversation.last_agent_reply_at: now}
    if conversation.first_response_at is None:
        updates[Conversation.first_response_at] = now
    Conversation.update(updates).where(Conversation.id == conversation.id).execute()


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
