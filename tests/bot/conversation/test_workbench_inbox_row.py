"""An inbox line's unread count and waiting time (bot/conversation/workbench.py `_row`): read
from the customer's latest lines in one query when they reach back far enough, counted in the
database when they do not; both give the same figures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bot.conversation import workbench
from bot.core import clock
from bot.core.models import Conversation, Customer, Message
from bot.crm import conversations
from tests.factories import make_agent


def _conversation_with(lines_before: int, lines_after: int) -> tuple[Conversation, Any]:
    """An assigned conversation: `lines_before` customer lines, the agent's reply, then `lines_after`."""
    agent = make_agent("mei")
    customer = Customer.create(channel="web", external_id="v1", nickname="顾客")
    start = clock.now() - timedelta(hours=1)
    conversation = Conversation.create(customer=customer, channel="web", status="assigned", agent=agent,
                                       opened_at=start, queued_at=start, assigned_at=start)
    at = start
    for n in range(lines_before + lines_after):
        at += timedelta(seconds=1)
        if n == lines_before:
            Conversation.update(last_agent_reply_at=at).where(Conversation.id == conversation.id).execute()
            at += timedelta(seconds=1)
        Message.create(channel="web", external_id=f"m{n}", conversation=conversation, customer=customer,
                       direction="in", author="customer", peer_id="v1", text=f"第{n}句", created_at=at)
    if not lines_after:  # the agent spoke last
        Conversation.update(last_agent_reply_at=at + timedelta(seconds=1)).where(
            Conversation.id == conversation.id).execute()
    first_after = start + timedelta(seconds=lines_before + 2) if lines_after else None
    return Conversation.get_by_id(conversation.id), first_after


@pytest.mark.parametrize("before,after", [(3, 2), (3, 0), (10, workbench.CUSTOMER_LINES_READ + 5),
                                          (0, workbench.CUSTOMER_LINES_READ)])
def test_unread_and_waiting_match_the_database_count(database: Any, before: int, after: int) -> None:
    conversation, first_after = _conversation_with(before, after)
    line = workbench.inbox_row(conversation)
    customer_says = ((Message.conversation == conversation.id) & (Message.direction == "in")
                     & (Message.author == "customer"))
    counted = Message.select().where(customer_says & (Message.created_at > conversation.last_agent_reply_at)).count()
    assert line["unread"] == counted == after
    since = conversations.awaiting_reply_since(conversation)
    assert since == first_after
    assert line["waiting_since"] == (since.isoformat() if since else None)
    assert line["last"] == f"第{before + after - 1}句"
