"""The learning loop end to end, through the dispatcher: a question the bot cannot answer is
listed, an operator promotes it to an FAQ in one step, and the next customer gets the answer."""

from bot.dispatcher import Dispatcher
from bot.faq import learning
from bot.models import Faq, Message, UnansweredQuestion
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
