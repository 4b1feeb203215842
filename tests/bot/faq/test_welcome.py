import pytest

from bot.core import settings
from bot.conversation.dispatcher import Dispatcher
from bot.core.events import Inbound
from bot.faq.store import FaqStore
from tests.factories import RETURNS, SIZES, shop_faqs, text

CARDS = ["发货要多久", "怎么退货", "尺码怎么选"]


@pytest.fixture
def bot(config, database) -> Dispatcher:
    shop_faqs()
    settings.put("card_questions", CARDS)
    return Dispatcher(config, FaqStore(check_seconds=0, embedder=None))


def subscribe(user: str) -> Inbound:
    return Inbound(channel="web", user_id=user, msg_id=f"sub-{user}", kind="event", event="subscribe")


def test_subscribe_gets_the_welcome_with_the_operators_card_questions(bot) -> None:
    reply = bot.handle(subscribe("u1")).replies[0]
    assert reply.text == settings.get("welcome_message")
    assert [c.title for c in reply.cards] == CARDS
    assert reply.rendered_text().endswith("1. 发货要多久\n2. 怎么退货\n3. 尺码怎么选")


def test_a_card_number_after_the_welcome_asks_that_question(bot) -> None:
    bot.handle(subscribe("u1"))
    assert [r.text for r in bot.handle(text("u1", "2")).replies] == [RETURNS]


def test_a_number_before_the_bot_said_anything_picks_a_welcome_card(bot) -> None:
    # the web chat shows the welcome card from GET /welcome, which stores no message
    assert [r.text for r in bot.handle(text("u1", "3")).replies] == [SIZES]


def test_at_most_nine_cards_so_each_has_one_digit(bot) -> None:
    settings.put("card_questions", [f"问题{n}" for n in range(12)] + [""])
    assert len(bot.handle(subscribe("u1")).replies[0].cards) == 9


def test_a_new_customers_first_unanswerable_message_starts_with_the_welcome(bot) -> None:
    first = bot.handle(text("u1", "你们老板是谁呀")).replies[0]
    assert first.text.startswith(settings.get("welcome_message")) and first.meta.get("abstained")
    assert first.cards  # suggestions, or the card questions when nothing is close
    later = bot.handle(text("u1", "今天天气怎么样")).replies[0]
    assert not later.text.startswith(settings.get("welcome_message"))


def test_a_client_that_showed_the_welcome_is_not_welcomed_again(bot) -> None:
    """The web chat shows the welcome card before the first message and says so."""
    inbound = Inbound(channel="web", user_id="u2", msg_id="m1", text="你们老板是谁呀", raw={"welcomed": True})
    first = bot.handle(inbound).replies[0]
    assert first.meta.get("abstained") and not first.text.startswith(settings.get("welcome_message"))
