"""The conversation's thread in the panel shows each message once (issue 25): the copies the
system relays to the agent and the agent's handoff brief are not shown as more messages."""

from __future__ import annotations

import re

from bot.conversation.dispatcher import Dispatcher
from bot.core import settings
from bot.core.models import Conversation, Message
from tests.admin.conftest import Panel
from tests.factories import make_agent, text


def thread_of(page: str) -> str:
    return page.split('id="thread"', 1)[1]


def test_each_customer_message_once(admin_panel: Panel, dispatcher: Dispatcher) -> None:
    settings.put("business_hours", {**settings.get("business_hours"), "always_open": True})
    make_agent("mei", "agent-mei")
    for words in ("转人工", "我的快递到哪了"):
        dispatcher.handle(text("c1", words))
    dispatcher.handle(text("agent-mei", "马上帮您查"))
    dispatcher.handle(text("c1", "好的谢谢"))
    conversation = Conversation.get()
    # stored: the relayed copy is there (the agent got it)
    assert Message.select().where(Message.text.contains("我的快递到哪了")).count() == 2  # in, and the relayed copy
    page = thread_of(admin_panel.get(f"/admin/conversation/details/?id={conversation.id}").get_data(as_text=True))
    for words in ("转人工", "我的快递到哪了", "马上帮您查", "好的谢谢"):
        assert page.count(words) == 1, words
    assert "【#" not in page and "新的人工会话" not in page
    authors = re.findall(r'data-author="(\w+)"', page)
    assert authors == ["customer", "bot", "customer", "bot", "agent", "customer"]  # 转人工, 已为您转接, …, 已收到 ack
