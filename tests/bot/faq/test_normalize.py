from bot.faq.normalize import apply_synonyms, normalize
from bot.faq.store import FaqStore, load_synonyms
from bot.core.models import Synonym
from tests.factories import make_faq


def test_full_width_and_case_fold_to_half_width_lower_case() -> None:
    assert normalize("ＳＫＵ是什么") == "sku是什么"
    assert normalize("ＩＰＨＯＮＥ１５") == "iphone15"


def test_punctuation_and_spaces_are_dropped_at_the_ends_and_collapsed_inside() -> None:
    assert normalize("  发货要多久？？！ ") == "发货要多久"
    assert normalize("「发货」，要多久。。。") == "发货 要多久"
    assert normalize("how... long?") == "how long"


def test_traditional_chinese_becomes_simplified() -> None:
    assert normalize("發貨要多久") == "发货要多久"
    assert normalize("退貨運費誰出") == "退货运费谁出"


def test_synonyms_replace_longest_variant_first() -> None:
    synonyms = {"快递": "物流", "发货": "物流", "快递单": "运单"}
    assert apply_synonyms("快递单号在哪", synonyms) == "运单号在哪"
    assert apply_synonyms("什么时候发货", synonyms) == "什么时候物流"
    assert apply_synonyms("不相干", synonyms) == "不相干"


def test_shop_synonyms_come_from_the_database_normalized(database) -> None:
    Synonym.create(canonical="物流", variants="快遞，发货 速递")
    assert load_synonyms() == {"快递": "物流", "发货": "物流", "速递": "物流"}


def test_a_synonym_lets_a_query_match_a_phrasing_it_shares_no_word_with(database) -> None:
    faq = make_faq("一般3天送达。", ["物流几天到"])
    store = FaqStore(check_seconds=0, embedder=None)
    before = store.match("快递几天到")
    Synonym.create(canonical="物流", variants="快递 速递")
    after = store.match("快递几天到")
    assert after.best is not None and after.best.faq_id == faq.id
    assert after.stage == "exact" and after.score == 1.0
    assert before.stage != "exact" and before.score < after.score
