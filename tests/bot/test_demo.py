"""The demo shop a new operator meets first (`kefu run` seeds it)."""

from __future__ import annotations

from bot import demo, settings
from bot.faq.store import FaqStore
from bot.routing import card_questions


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
