"""Four weeks of a living demo shop: customers, conversations, ratings, orders, group members.

Why: issue 25 found the demo dashboard's trend 29 days of zeros; a new operator could not see
what the figures mean. `kefu run` on a fresh database and `kefu init --demo` seed this after
the demo FAQs and agents (`bot.demo.seed(config, history=True)`): customers asking the demo
FAQs at the hours a shop is busy, most answered by the bot, some handed to 小美 or 阿力 who
answer in seconds to minutes and resolve, ratings on a share of them, orders in several
states, two groups with members (老客福利群, 直播间粉丝群).

Deterministic (a seeded RNG; times step back from "now" by whole days so the figures look
alike on any day) and idempotent: everything is written in one transaction keyed by the first
demo customer, so running it twice, or after a crash mid-way, doubles nothing. Every
conversation is closed, so the queue and 待回复 start at 0, and no unanswered questions are
invented (the learning loop's page stays the operator's own).
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from bot.core import clock, settings
from bot.core.db import transaction
from bot.core.models import (Agent, AssignmentLog, Conversation, Customer, CustomerGroup, Faq, FaqQuestion, GroupMember,
                        Message, Order)

DAYS = 28
CUSTOMERS = 60
MARKER = "demo-c00"  # the first demo customer's external id: present means seeded
SEED = 2026
NAMES = ("小林", "阿杰", "王女士", "陈先生", "Lily", "晓雯", "大鹏", "李阿姨", "张同学", "Coco", "周周", "老赵")
QUESTIONS = ("发货要多久", "怎么退换货", "尺码怎么选", "有什么优惠券", "有尺码表吗", "你好", "好的谢谢", "你是机器人吗")
HOUR_WEIGHTS = {9: 3, 10: 6, 11: 7, 12: 4, 13: 4, 14: 6, 15: 6, 16: 5, 17: 4, 19: 5, 20: 8, 21: 9, 22: 6, 8: 1, 23: 2}
AGENT_REPLIES = ("您好，我来帮您看一下～", "亲，已经帮您查到了，今天下午发出哦", "好的，这边给您登记退换货")


def seed_history(now: datetime | None = None) -> dict[str, int]:
    """Seed the history once; returns counts of what was created (all 0 when already there)."""
    now = now or clock.now()
    created = {"customers": 0, "conversations": 0, "messages": 0, "orders": 0, "members": 0}
    agents = list(Agent.select().where(Agent.active == True).order_by(Agent.id))  # noqa: E712
    with transaction():
        if Customer.select().where((Customer.channel == "web") & (Customer.external_id == MARKER)).exists():
            return created
        rng = random.Random(SEED)
        customers = _customers(rng, now)
        created["customers"] = len(customers)
        answers = _faq_answers()
        messages: list[dict[str, Any]] = []
        stints: list[dict[str, Any]] = []
        zone = settings.shop_zone()
        today = now.astimezone(zone).replace(minute=0, second=0, microsecond=0)
        for day in range(DAYS, 0, -1):
            weekend = (today - timedelta(days=day)).weekday() >= 5
            for _ in range(rng.randint(8, 18) + (4 if weekend else 0)):
                hour = rng.choices(list(HOUR_WEIGHTS), weights=list(HOUR_WEIGHTS.values()))[0]
                opened = (today - timedelta(days=day)).replace(hour=hour) + timedelta(minutes=rng.randint(0, 59))
                customer = rng.choice(customers)
                fields, said, stint = _conversation(rng, customer, opened, agents, answers)
                conversation = Conversation.create(customer=customer, channel="web", opened_at=opened, **fields)
                messages += [{**m, "conversation": conversation.id, "external_id": f"demo:{conversation.id}:{k}"}
                             for k, m in enumerate(said)]
                if stint:
                    stints.append({**stint, "conversation": conversation.id})
                created["conversations"] += 1
        for start in range(0, len(messages), 500):
            Message.insert_many(messages[start:start + 500]).execute()
        created["messages"] = len(messages)
        for start in range(0, len(stints), 500):
            AssignmentLog.insert_many(stints[start:start + 500]).execute()
        created["orders"] = _orders(rng, customers, now)
        created["members"] = _members(rng, customers, now)
    return created


def _customers(rng: random.Random, now: datetime) -> list[Customer]:
    out = []
    for n in range(CUSTOMERS):
        first = now - timedelta(days=rng.randint(DAYS, DAYS + 120))
        out.append(Customer.create(
            channel="web", external_id=f"demo-c{n:02d}", nickname=f"{rng.choice(NAMES)}{n:02d}", source="web",
            level=rng.choice((0, 0, 0, 1, 1, 2, 3)), first_contact_at=first, last_contact_at=first))
    return out


def _faq_answers() -> dict[str, tuple[int, str]]:
    """The demo FAQ each demo question reaches, with its answer (none when the operator's
    FAQs do not have the phrasing: then the bot's answer is recorded without an FAQ)."""
    found: dict[str, tuple[int, str]] = {}
    for question, faq_id, answer in (FaqQuestion.select(FaqQuestion.text, Faq.id, Faq.answer).join(Faq)
                                     .where(FaqQuestion.text.in_(QUESTIONS)).tuples()):
        found[question] = (faq_id, answer)
    return found


def _conversation(rng: random.Random, customer: Customer, opened: datetime, agents: list[Agent],
                  answers: dict[str, tuple[int, str]]) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any] | None]:
    """One closed conversation: its fields, its messages, and its agent's stint if handed off."""
    fields: dict[str, Any] = {"status": "resolved"}
    said: list[dict[str, Any]] = []
    at = opened
    for _ in range(rng.randint(1, 3)):
        question = rng.choice(QUESTIONS)
        faq_id, answer = answers.get(question, (None, "亲，小蜜帮您记下了，稍后为您回复～"))
        said.append(_message(customer, at, "in", "customer", question))
        said.append(_message(customer, at + timedelta(seconds=1), "out", "bot", answer, faq=faq_id,
                             score=0.92 if faq_id else None))
        at += timedelta(minutes=rng.randint(1, 4))
    if not agents or rng.random() >= 0.3:
        fields.update(resolved_by="idle", resolved_at=at + timedelta(minutes=30), last_message_at=at)
        return fields, said, None
    agent = rng.choice(agents)
    queued = at
    assigned = queued + timedelta(seconds=rng.choice((0, 0, 0, 20, 45, 90)))
    first = assigned + timedelta(seconds=rng.randint(15, 240))
    done = first + timedelta(minutes=rng.randint(3, 15))
    said.append(_message(customer, queued, "in", "customer", "转人工"))
    said.append(_message(customer, first, "out", "agent", rng.choice(AGENT_REPLIES), agent=agent.id))
    fields.update(queued_at=queued, assigned_at=assigned, first_response_at=first, last_agent_reply_at=first,
                  agent=agent.id, handoff_reason="requested", resolved_by="agent", resolved_at=done,
                  last_message_at=first)
    if rng.random() < 0.6:
        fields["satisfaction"] = rng.choice((5, 5, 5, 4, 4, 3))
    stint = {"agent": agent.id, "customer": customer.id, "assigned_at": assigned, "first_reply_at": first,
             "ended_at": done, "end_reason": "resolved"}
    return fields, said, stint


def _message(customer: Customer, at: datetime, direction: str, author: str, text: str,
             faq: int | None = None, score: float | None = None, agent: int | None = None) -> dict[str, Any]:
    return {"channel": "web", "customer": customer.id, "direction": direction, "author": author,
            "peer_id": customer.external_id, "text": text, "state": "done" if direction == "in" else "sent",
            "created_at": at, "faq": faq, "score": score, "agent": agent}


def _orders(rng: random.Random, customers: list[Customer], now: datetime) -> int:
    made = 0
    for n, customer in enumerate(customers):
        spend = Decimal("0")
        count = rng.choice((0, 1, 1, 2, 3))
        for k in range(count):
            created = now - timedelta(days=rng.randint(1, DAYS), hours=rng.randint(0, 23))
            amount = Decimal(rng.choice((59, 89, 129, 199, 268, 399)))
            status = rng.choice(("delivered", "delivered", "shipped", "paid"))
            Order.create(shop_order_id=f"DEMO{n:02d}{k}", customer=customer, channel="web",
                         platform_user_id=customer.external_id, status=status, amount=amount,
                         items=[{"name": rng.choice(("纯棉T恤", "休闲裤", "保温杯", "帆布包")), "qty": 1}],
                         created_at=created, paid_at=created + timedelta(minutes=5),
                         shipped_at=created + timedelta(days=1) if status != "paid" else None,
                         delivered_at=created + timedelta(days=3) if status == "delivered" else None)
            spend += amount
            made += 1
        if spend:
            Customer.update(total_spend=spend, order_count=count).where(
                Customer.id == customer.id).execute()
    return made


def _members(rng: random.Random, customers: list[Customer], now: datetime) -> int:
    made = 0
    # groups of their own: 新品尝鲜群 stays the operator's empty one to try a first campaign on
    for name, share in (("老客福利群", 0.4), ("直播间粉丝群", 0.25)):
        group, _ = CustomerGroup.get_or_create(name=name, defaults={"kind": "普通群", "description": "演示用群组"})
        for customer in customers:
            if rng.random() < share:
                GroupMember.create(group=group, customer=customer,
                                   joined_at=now - timedelta(days=rng.randint(1, DAYS)))
                made += 1
    return made
