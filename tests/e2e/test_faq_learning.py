"""The learning loop end to end, through the dispatcher: a question the bot cannot answer is
listed, an operator acts on it in one step (in code, and through the admin panel's real views:
login, CSRF, forms, on SQLite and, with KEFU_TEST_DATABASE_URL, PostgreSQL), and the next
customer gets the answer."""

import re

from bot.conversation.dispatcher import Dispatcher
from bot.faq import learning
from bot.core.models import Faq, Message, UnansweredQuestion
from tests.admin.conftest import Panel, admin_panel, admin_user, app  # noqa: F401  (fixtures)
from tests.factories import shop_faqs, text

ANSWER = "支持支付宝、微信支付和花呗分期。"


def test_an_unanswered_question_becomes_an_faq_that_answers_the_next_customer(dispatcher: Dispatcher) -> None:
    shop_faqs()
    first = dispatcher.handle(text("alice", "可以用支付宝付款吗"))
    assert first.replies[0].meta.get("abstained")
    assert UnansweredQuestion.select().where(UnansweredQuestion.resolved == False).count() == 1  # noqa: E712

    groups = learning.unanswered_groups()
    assert len(groups) == 1 and groups[0].text == "可以用支付宝付款吗"
    faq = learning.promote_to_new_faq(groups[0], ANSWER, "购买操作")

    second = dispatcher.handle(text("bob", "可以用支付宝付款吗？"))
    assert [r.text for r in second.replies] == [ANSWER]
    reply = Message.get(Message.id == second.replies[0].meta["message_id"])
    assert reply.faq_id == faq.id and reply.score >= dispatcher.router.threshold
    assert Faq.get_by_id(faq.id).hits == 1
    assert learning.unanswered_groups() == []


# the unanswered groups page: each group's title, count and the ids its one-step forms post

_GROUP = re.compile(r'<h5>(?P<text>[^<]*) <span class="badge[^"]*">(?P<count>\d+)</span>.*?'
                    r'add-phrasing/".*?name="ids" value="(?P<ids>[^"]*)".*?name="faq_id"', re.S)


def test_an_operator_teaches_the_bot_a_group_from_the_panel_and_the_next_customer_is_answered(
        admin_panel: Panel, dispatcher: Dispatcher) -> None:
    faqs = shop_faqs()
    for n, question in enumerate(("顺丰包邮吗", "顺丰包邮吗亲", "顺丰包邮吗？？", "你们老板是谁")):
        assert dispatcher.handle(text(f"c{n}", question)).replies[0].meta.get("abstained")

    page = admin_panel.get("/admin/unanswered/groups/").get_data(as_text=True)
    groups = {m["text"]: m for m in _GROUP.finditer(page)}
    shipping = groups["顺丰包邮吗？？"]  # the newest of the three leads their group
    assert shipping["count"] == "3" and len(shipping["ids"].split(",")) == 3
    response = admin_panel.post("/admin/unanswered/add-phrasing/", {"ids": shipping["ids"],
                                                                    "faq_id": faqs["shipping"].id})
    assert response.status_code == 302

    boss = UnansweredQuestion.get(UnansweredQuestion.text == "你们老板是谁")
    admin_panel.post("/admin/unanswered/action/", {"action": "dismiss", "rowid": str(boss.id)})
    assert "没有未解决的问题" in admin_panel.get("/admin/unanswered/groups/").get_data(as_text=True)

    reply = dispatcher.handle(text("next", "顺丰包邮吗？")).replies[0]
    assert reply.text == Faq.get_by_id(faqs["shipping"].id).answer and reply.meta["faq_id"] == faqs["shipping"].id
    assert dispatcher.handle(text("boss", "你们老板是谁")).replies[0].meta.get("abstained")  # dismissed, not taught
