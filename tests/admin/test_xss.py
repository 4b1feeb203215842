"""Customer-written text never runs in an operator's browser: a `<script>` or an
`<img onerror>` sent as a message or a nickname shows as text in every list, detail view
and the conversation thread."""

from __future__ import annotations

from typing import Any

import pytest

from bot.crm.conversations import upsert_customer
from bot.conversation.dispatcher import Dispatcher
from bot.core.models import Conversation, Customer, Message, UnansweredQuestion
from tests.admin.conftest import Panel
from tests.factories import make_agent, text

PAYLOADS = ("<script>alert('xss')</script>", "<img src=x onerror=alert(1)>")


@pytest.fixture
def hostile(dispatcher: Dispatcher) -> Customer:
    make_agent("xiaomei")
    customer = upsert_customer("web", "evil-1", nickname=PAYLOADS[1])
    for payload in PAYLOADS:
        dispatcher.handle(text("evil-1", payload))
    dispatcher.handle(text("evil-1", "转人工"))
    return Customer.get_by_id(customer.id)


def assert_inert(html: str) -> None:
    for payload in PAYLOADS:
        assert payload not in html
    assert "&lt;script&gt;" in html or "&lt;img" in html  # the text is there, escaped


def test_customer_payloads_render_as_text(admin_panel: Panel, hostile: Customer) -> None:
    conversation = Conversation.get(Conversation.customer == hostile)
    message = Message.get((Message.text == PAYLOADS[0]) & (Message.direction == "in"))
    question = UnansweredQuestion.get(UnansweredQuestion.text == PAYLOADS[0])
    pages = [
        "/admin/message/", f"/admin/message/details/?id={message.id}", "/admin/message/?search=script",
        "/admin/conversation/", f"/admin/conversation/details/?id={conversation.id}",
        "/admin/customer/", f"/admin/customer/details/?id={hostile.id}", f"/admin/customer/edit/?id={hostile.id}",
        "/admin/unanswered/", f"/admin/unanswered/details/?id={question.id}",
    ]
    for url in pages:
        response = admin_panel.get(url)
        assert response.status_code == 200, url
        assert_inert(response.get_data(as_text=True))


def test_thread_shows_the_payload_escaped(admin_panel: Panel, hostile: Customer) -> None:
    conversation = Conversation.get(Conversation.customer == hostile)
    html = admin_panel.get(f"/admin/conversation/details/?id={conversation.id}").get_data(as_text=True)
    thread = html[html.index('id="thread"'):]
    assert "&lt;script&gt;alert(&#39;xss&#39;)&lt;/script&gt;" in thread
    assert "&lt;img src=x onerror=alert(1)&gt;" in thread


def test_try_it_box_escapes_the_question(admin_panel: Panel, hostile: Any) -> None:
    html = admin_panel.get("/admin/faq-tools/", query_string={"q": PAYLOADS[0]}).get_data(as_text=True)
    assert_inert(html)
