"""Handoff keywords do not steal FAQ questions (issue 25): 客服几点上班 contains 客服 and is
short, so it went to a person although an FAQ answers it; an explicit request still does."""

from __future__ import annotations

import pytest

from bot.conversation.dispatcher import Dispatcher
from bot.core.models import Conversation, FaqQuestion
from bot.faq.handoff_intent import explicit_request, keyword_overlaps
from bot.core.settings import DEFAULTS
from tests.factories import make_agent, make_faq, text

HOURS = "人工客服工作时间为每天9:00-23:00"
KEYWORDS = DEFAULTS["handoff_keywords"]


def _faqs() -> None:
    make_faq(HOURS, ["客服几点上班", "人工客服什么时候在", "晚上有客服吗"])
    make_faq("一般48小时内发货", ["发货要多久", "什么时候发货"])


def test_a_question_an_faq_answers_is_answered_though_it_names_a_keyword(dispatcher: Dispatcher) -> None:
    _faqs()
    make_agent("xiaomei")
    result = dispatcher.handle(text("u1", "客服几点上班"))
    assert result.replies[0].text == HOURS
    assert Conversation.get().status != "assigned"
    again = dispatcher.handle(text("u2", "人工客服什么时候在"))
    assert again.replies[0].text == HOURS


@pytest.mark.parametrize("ask", ["转人工", "人工客服", "找人工", "客服", "我要转人工", "人工客服呢"])
def test_an_explicit_request_is_handed_off_even_when_an_faq_matches(dispatcher: Dispatcher, ask: str) -> None:
    _faqs()
    make_faq("请稍候，正在为您转接", [ask])  # an FAQ worded exactly like the request does not hold it
    make_agent("xiaomei")
    result = dispatcher.handle(text("u1", ask))
    assert "xiaomei" in result.replies[0].text
    assert Conversation.get().status == "assigned"


def test_a_keyword_question_no_faq_answers_still_goes_to_a_person(dispatcher: Dispatcher) -> None:
    _faqs()
    make_agent("xiaomei")
    dispatcher.handle(text("u1", "客服在吗"))
    assert Conversation.get().status == "assigned"


def test_explicit_requests() -> None:
    assert explicit_request("转人工", KEYWORDS) and explicit_request("帮我找人工吧", KEYWORDS)
    assert not explicit_request("客服几点上班", KEYWORDS)
    assert not explicit_request("人工客服什么时候在", KEYWORDS)


def test_the_overlap_between_keywords_and_phrasings_is_listed(database) -> None:  # type: ignore[no-untyped-def]
    _faqs()
    overlaps = keyword_overlaps(KEYWORDS)
    assert ("人工", "客服几点上班") not in overlaps
    assert {question for _, question in overlaps} == {"客服几点上班", "人工客服什么时候在", "晚上有客服吗"}
    assert FaqQuestion.select().count() == 5
