"""A customer's data on request: export it as JSON, or erase it (被遗忘权).

Why erase this way: the shop must forget the person but keep its numbers honest. So the
customer row stays (blanked, its IM id replaced by a one-way hash) and so do its
conversations and messages (text replaced, peer ids hashed, payloads dropped), with their
times, directions, authors, FAQ hits and ratings: message counts, response times and FAQ
KPIs still add up. The hash uses a random salt that is thrown away, so nobody can map it
back to the IM id; within one erasure it is the same for every row, so "messages of one
(anonymous) customer" still group together. Orders keep amounts and status for the
books, without phone or platform id. Tags, groups and the owner go; queued sends to the
person are cancelled.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from bot.core import clock
from bot.crm.orders import normalize_phone
from bot.core.db import transaction
from bot.core.models import Conversation, Customer, CustomerGroup, CustomerTag, GroupMember, IssuedCoupon, Message, Order, Outbox, Tag, UnansweredQuestion

ERASED_TEXT = "[已删除]"
PROFILE_FIELDS = ("nickname", "name", "phone", "birthday", "address", "preferences", "notes")


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def export(customer: Customer | int) -> dict[str, Any]:
    """Everything kefu holds about a customer, as JSON-ready data."""
    row = Customer.get_by_id(customer if isinstance(customer, int) else customer.id)
    profile = {f: _plain(getattr(row, f)) for f in (
        "id", "channel", "external_id", "source", *PROFILE_FIELDS, "level", "total_spend", "order_count",
        "subscribed", "first_contact_at", "last_contact_at", "erased_at")}
    profile["owner_agent"] = str(row.owner_agent) if row.owner_agent_id else None
    tags = [t.name for t in Tag.select().join(CustomerTag).where(CustomerTag.customer == row.id).order_by(Tag.name)]
    groups = [g.name for g in CustomerGroup.select().join(GroupMember).where(GroupMember.customer == row.id)
              .order_by(CustomerGroup.name)]
    orders = [{
        "shop_order_id": o.shop_order_id, "status": o.status, "amount": _plain(o.amount), "items": o.items,
        "created_at": _plain(o.created_at), "paid_at": _plain(o.paid_at), "shipped_at": _plain(o.shipped_at),
        "delivered_at": _plain(o.delivered_at), "refunded_at": _plain(o.refunded_at),
    } for o in Order.select().where(Order.customer == row.id).order_by(Order.created_at, Order.id)]
    coupons = [{"coupon": c.coupon.name, "code": c.code, "issued_at": _plain(c.issued_at),
                "expires_at": _plain(c.expires_at), "used_at": _plain(c.used_at)}
               for c in IssuedCoupon.select().where(IssuedCoupon.customer == row.id).order_by(IssuedCoupon.id)]
    messages = [{
        "at": _plain(m.created_at), "direction": m.direction, "author": m.author, "kind": m.kind, "text": m.text,
        "conversation": m.conversation_id,
    } for m in _messages_of(row).order_by(Message.created_at, Message.id)]
    conversations = [{"id": c.id, "opened_at": _plain(c.opened_at), "resolved_at": _plain(c.resolved_at),
                      "satisfaction": c.satisfaction}
                     for c in Conversation.select().where(Conversation.customer == row.id).order_by(Conversation.id)]
    return {"exported_at": clock.now().isoformat(), "customer": profile, "tags": tags, "groups": groups,
            "orders": orders, "coupons": coupons, "conversations": conversations, "messages": messages}


def _messages_of(customer: Customer) -> Any:
    theirs = Conversation.select(Conversation.id).where(Conversation.customer == customer.id)
    in_conversations = Message.conversation.in_(theirs)
    return Message.select().where((Message.customer == customer.id) | in_conversations)


def erase(customer: Customer | int) -> dict[str, int]:
    """Forget the person, keep the numbers. Safe to run twice. Returns what was touched."""
    with transaction():
        row = Customer.get_by_id(customer if isinstance(customer, int) else customer.id)
        salt = secrets.token_hex(16)

        def hashed(value: str) -> str:
            return "x_" + hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()[:30]

        original = row.external_id
        anonymous = original if row.erased_at is not None else hashed(original)
        message_ids = [m.id for m in _messages_of(row).select(Message.id)]
        for start in range(0, len(message_ids), 500):
            chunk = message_ids[start:start + 500]
            Message.update(text=ERASED_TEXT, payload=None).where(Message.id.in_(chunk) & (Message.text != "")).execute()
            Message.update(payload=None).where(Message.id.in_(chunk)).execute()
            Message.update(peer_id=anonymous).where(Message.id.in_(chunk) & (Message.peer_id == original)).execute()
        questions = UnansweredQuestion.update(text=ERASED_TEXT, normalized="").where(
            UnansweredQuestion.customer == row.id).execute()
        cancelled = Outbox.update(status="failed", last_error="customer erased", recipient=anonymous, content={}).where(
            (Outbox.channel == row.channel) & (Outbox.recipient == original)
            & Outbox.status.in_(("pending", "sending"))).execute()
        Outbox.update(recipient=anonymous, content={}).where(
            (Outbox.channel == row.channel) & (Outbox.recipient == original)).execute()
        theirs = (Order.customer == row.id) | ((Order.channel == row.channel) & (Order.platform_user_id == original))
        if row.phone:
            theirs |= Order.phone == normalize_phone(row.phone)
        orders = Order.update(phone="", platform_user_id=anonymous, customer=row.id).where(theirs).execute()
        tags = CustomerTag.delete().where(CustomerTag.customer == row.id).execute()
        groups = GroupMember.delete().where(GroupMember.customer == row.id).execute()
        Customer.update(
            external_id=anonymous, nickname="", name="", phone="", birthday=None, address="", preferences="",
            notes="", owner_agent=None, claimed_at=None, subscribed=False, erased_at=row.erased_at or clock.now(),
        ).where(Customer.id == row.id).execute()
    return {"messages": len(message_ids), "unanswered_questions": questions, "sends_cancelled": cancelled,
            "orders": orders, "tags": tags, "groups": groups}
