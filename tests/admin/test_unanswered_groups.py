"""The grouped unanswered page is safe in one click (issue 25): the nearest FAQ is pre-selected
only when the matcher's own score reached its answering threshold, a new FAQ's category is
the operator's pick (never a silent 聊天互动), and a group can be dismissed where it is shown."""

from __future__ import annotations

import re

from bot.conversation.dispatcher import Dispatcher
from bot.core.models import Faq, UnansweredQuestion
from tests.admin.conftest import Panel
from tests.factories import shop_faqs, text


def selected_faq(html: str) -> list[str]:
    select = re.search(r'<select[^>]*name="faq_id".*?</select>', html, re.S)
    assert select
    return re.findall(r'<option value="(\d+)" selected', select.group(0))


def test_a_doubtful_hint_is_not_pre_selected(admin_panel: Panel, dispatcher: Dispatcher) -> None:
    faqs = shop_faqs()
    question = UnansweredQuestion.create(text="是不是正品", best_faq=faqs["shipping"].id, best_score=0.2)
    html = admin_panel.get("/admin/unanswered/groups/").get_data(as_text=True)
    assert "是不是正品" in html and selected_faq(html) == []  # the old page selected the nearest FAQ
    assert re.search(r'<select[^>]*name="category" required>\s*<option value="">', html)
    question.best_score = 0.99
    question.save()
    html = admin_panel.get("/admin/unanswered/groups/").get_data(as_text=True)
    assert selected_faq(html) == [str(faqs["shipping"].id)]


def test_a_new_faq_needs_a_category_and_a_group_can_be_dismissed(admin_panel: Panel, dispatcher: Dispatcher) -> None:
    dispatcher.handle(text("c1", "你们老板是谁"))
    ids = ",".join(str(q.id) for q in UnansweredQuestion.select())
    page = admin_panel.post("/admin/unanswered/promote/", {"ids": ids, "answer": "不方便透露", "category": ""},
                            follow_redirects=True).get_data(as_text=True)
    assert "请选择分类" in page and not Faq.select().where(Faq.answer == "不方便透露").exists()
    page = admin_panel.post("/admin/unanswered/dismiss/", {"ids": ids}, follow_redirects=True).get_data(as_text=True)
    assert "没有未解决的问题" in page
    assert not UnansweredQuestion.select().where(UnansweredQuestion.resolved == False).exists()  # noqa: E712


def test_the_single_question_page_pre_selects_only_a_confident_hint(admin_panel: Panel, dispatcher: Dispatcher) -> None:
    faqs = shop_faqs()
    question = UnansweredQuestion.create(text="纸质收据有吗", best_faq=faqs["returns"].id, best_score=0.2)
    html = admin_panel.get(f"/admin/unanswered/details/?id={question.id}").get_data(as_text=True)
    assert "纸质收据有吗" in html and selected_faq(html) == []  # the old page selected the nearest FAQ
    assert "机器人没有把握" in html
    assert re.search(r'<select[^>]*name="category" required>\s*<option value="">', html)
    assert "<option selected>" not in html  # no category chosen for the operator either
    question.best_score = 0.99
    question.save()
    html = admin_panel.get(f"/admin/unanswered/details/?id={question.id}").get_data(as_text=True)
    assert selected_faq(html) == [str(faqs["returns"].id)] and "<option selected>售后问题</option>" in html
