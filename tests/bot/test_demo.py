"""The demo shop a new operator meets first (`kefu run` seeds it)."""

from __future__ import annotations

from bot import demo
from bot.core import settings
from bot.faq.store import FaqStore
from bot.conversation.routing import card_questions


def test_every_default_welcome_card_is_answered_by_a_demo_faq(config, database) -> None:
    """A card click sends the card's text: it must be a phrasing of an FAQ, or the first
    thing a new customer taps gets "抱歉，这个问题我还不太确定"."""
    demo.seed(config)
    store = FaqStore()
    store.refresh(True)
    cards = card_questions()
    assert cards == list(settings.DEFAULTS["card_questions"])
    for card in cards:
        match = store.match(card)
        assert match.stage == "exact" and match.score == 1.0, (card, match.stage, match.score)


def test_the_demo_shops_hours_agree_with_its_faqs(config, database) -> None:
    """The demo FAQs promise 每天9:00-23:00; the default hours closed at 22:00 (weekends 18:00),
    so the offline message contradicted them (issue 25). An operator's own hours are kept."""
    demo.seed(config)
    weekly = settings.get("business_hours")["weekly"]
    assert all(weekly[day] == ["09:00", "23:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun"))
    store = FaqStore()
    store.refresh(True)
    answer = store.answer_for(int(store.match("客服几点上班").best.faq_id)).answer
    assert "9:00-23:00" in answer
    own = {**settings.get("business_hours"), "weekly": {"mon": ["08:00", "20:00"]}}
    settings.put("business_hours", own)
    demo.seed(config)
    assert settings.get("business_hours")["weekly"] == {"mon": ["08:00", "20:00"]}
