"""Turning an unanswered question into knowledge: promote it to a new FAQ, or add it as a
phrasing of an existing one.

Why here and thin: the FAQ work owns the learning loop (`bot.faq.learning`); until its
functions exist, these do the two edits the panel needs, in one transaction, and mark the
question (and its identical siblings) resolved so it leaves the list.
"""

from __future__ import annotations

from bot import clock
from bot.db import transaction
from bot.faq.store import touch
from bot.models import Faq, FaqQuestion, UnansweredQuestion


class LearningError(ValueError):
    pass


def _resolve_same(question: UnansweredQuestion) -> int:
    same = (UnansweredQuestion.id == question.id)
    if question.normalized:
        same |= (UnansweredQuestion.normalized == question.normalized)
    return UnansweredQuestion.update(resolved=True).where(same & (UnansweredQuestion.resolved == False)).execute()  # noqa: E712


def promote(question_id: int, answer: str, category: str, phrasing: str = "") -> Faq:
    """A new FAQ answering the question (its text, or `phrasing`, is the first phrasing)."""
    question = UnansweredQuestion.get_or_none(UnansweredQuestion.id == question_id)
    if question is None:
        raise LearningError("问题不存在")
    text = (phrasing or question.text).strip()[:512]
    if not text or not answer.strip():
        raise LearningError("问法和答案都不能为空")
    with transaction():
        now = clock.now()
        faq = Faq.create(answer=answer.strip(), category=category or "更多问题", created_at=now, updated_at=now)
        FaqQuestion.create(faq=faq, text=text)
        _resolve_same(question)
    return faq


def add_phrasing(question_id: int, faq_id: int, phrasing: str = "") -> FaqQuestion:
    """The question becomes one more phrasing of an existing FAQ."""
    question = UnansweredQuestion.get_or_none(UnansweredQuestion.id == question_id)
    faq = Faq.get_or_none(Faq.id == faq_id)
    if question is None or faq is None:
        raise LearningError("问题或 FAQ 不存在")
    text = (phrasing or question.text).strip()[:512]
    if not text:
        raise LearningError("问法不能为空")
    with transaction():
        existing = FaqQuestion.get_or_none((FaqQuestion.faq == faq) & (FaqQuestion.text == text))
        row = existing or FaqQuestion.create(faq=faq, text=text)
        _resolve_same(question)
    touch(faq.id)
    return row


def dismiss(question_ids: list[int]) -> int:
    return UnansweredQuestion.update(resolved=True).where(UnansweredQuestion.id.in_(question_ids)).execute()
