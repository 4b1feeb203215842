"""FAQs that contradict each other are named with both answers (issue 25: 可以发顺丰吗 补10元
beside 能发顺丰吗 补6元 went unnoticed)."""

import json
from pathlib import Path

from click.testing import CliRunner

from bot.core import db
from bot.cli import main
from bot.faq import conflicts
from bot.faq.store import FaqStore
from tests.factories import make_faq, shop_faqs


def test_a_phrasing_another_faq_answers_is_named_with_both_answers(database, fake_embedder) -> None:
    faqs = shop_faqs()
    sf = make_faq("顺丰需补6元。", ["能发顺丰吗", "顺丰能发吗"], "物流问题")
    store = FaqStore(check_seconds=0, embedder=fake_embedder)
    found = conflicts.for_phrasings(store, ["可以发顺丰吗", "能发顺丰吗", "有赠品吗"], 0.5, None, "补10元")
    assert [(c.phrasing, c.other_id, c.other_answer) for c in found] == [
        ("可以发顺丰吗", sf.id, "顺丰需补6元。"), ("能发顺丰吗", sf.id, "顺丰需补6元。")]
    assert found[1].score == 1.0 and found[0].answer == "补10元"
    # an FAQ's own phrasings never conflict with itself
    assert sf.id not in {c.other_id for c in conflicts.for_phrasings(store, ["能发顺丰吗", "顺丰能发吗"], 0.5, sf.id)}
    # the same question saved as a second FAQ: each names the other
    twin = make_faq("顺丰补10元。", ["可以发顺丰吗"], "物流问题")
    assert [(c.faq_id, c.other_id) for c in conflicts.for_faqs(store, [twin.id], 0.5)] == [(twin.id, sf.id)]
    assert twin.id in {c.other_id for c in conflicts.for_faqs(store, [sf.id], 0.5)}
    assert faqs["returns"].id not in {c.other_id for c in conflicts.for_faqs(store, [sf.id], 0.5)}


def test_exclusion_scores_as_if_the_faq_were_not_stored(database) -> None:
    make_faq("顺丰需补6元。", ["能发顺丰吗"])
    make_faq("48小时内发货。", ["几天发货"])
    alone = FaqStore(check_seconds=0, embedder=None).match("可以发顺丰吗").best.score
    mine = make_faq("补10元", ["可以发顺丰吗"])
    both = FaqStore(check_seconds=0, embedder=None)
    assert both.match("可以发顺丰吗").best.faq_id == mine.id  # its own exact phrasing wins
    left_out = both.match("可以发顺丰吗", exclude=mine.id)
    assert left_out.best.faq_id != mine.id
    assert left_out.best.score == alone
    assert all(c.faq_id != mine.id for c in left_out.candidates)


def test_cli_import_warns_about_a_conflicting_faq_and_imports_it(tmp_path: Path, database_url: str,
                                                                  database) -> None:
    shop_faqs()
    make_faq("可以开电子发票。", ["能开发票吗", "发票怎么开"], "售后问题")
    make_faq("顺丰需补6元。", ["能发顺丰吗"], "物流问题")
    src = tmp_path / "faq.jsonl"
    src.write_text(json.dumps({"id": "sf10", "questions": ["能发顺丰吗", "退货运费谁出"], "answer": "顺丰补10元"},
                              ensure_ascii=False) + "\n", encoding="utf-8")
    env = {"KEFU_DATABASE_URL": database_url, "KEFU_DATA_DIR": str(tmp_path / "data"), "KEFU_LOG_FORMAT": "text"}
    result = CliRunner().invoke(main, ["faq", "import", str(src)], env=env, catch_exceptions=False)
    db.database.obj.close() if not db.database.obj.is_closed() else None
    assert result.exit_code == 0 and "1 created" in result.output
    assert "warning: 「能发顺丰吗」" in result.output and "顺丰需补6元。" in result.output
    assert "顺丰补10元" in result.output and "退货运费谁出" not in result.output
