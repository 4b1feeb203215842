from bot.faq import io as faq_io
from bot.faq.store import INLINE_EMBEDDINGS, FaqStore, touch
from bot.core.models import Faq, FaqEmbedding, FaqQuestion
from tests.factories import make_faq, shop_faqs


def test_an_imported_faq_is_answered_by_a_running_store_after_its_next_check(database, fake_embedder) -> None:
    shop_faqs()
    running = FaqStore(check_seconds=3600, embedder=fake_embedder)
    assert running.match("会员积分怎么用").best.question != "会员积分怎么用"
    faq_io.apply(faq_io.parse_jsonl(['{"id": "points", "questions": ["会员积分怎么用"], "answer": "积分可抵现。"}']))
    assert running.match("会员积分怎么用").best.question != "会员积分怎么用"  # not checked yet
    running._checked_at -= 3600  # the check interval has passed
    match = running.match("会员积分怎么用")
    assert match.stage == "exact" and running.answer_for(int(match.best.faq_id)).answer == "积分可抵现。"


def test_edits_in_one_process_reach_another_without_a_restart(database, fake_embedder) -> None:
    faqs = shop_faqs()
    panel, bot = FaqStore(check_seconds=0, embedder=fake_embedder), FaqStore(check_seconds=0, embedder=fake_embedder)
    assert bot.match("发货要多久").best.faq_id == faqs["shipping"].id
    Faq.update(answer="当天发货。").where(Faq.id == faqs["shipping"].id).execute()
    touch(faqs["shipping"].id)
    FaqQuestion.create(faq=faqs["shipping"], text="今天能寄出吗")
    match = bot.match("今天能寄出吗")
    assert match.stage == "exact" and bot.answer_for(match.best.faq_id).answer == "当天发货。"
    Faq.update(enabled=False).where(Faq.id == faqs["shipping"].id).execute()
    touch(faqs["shipping"].id)
    assert all(c.faq_id != faqs["shipping"].id for c in bot.match("发货要多久").candidates)
    assert panel.match("发货要多久").best.faq_id != faqs["shipping"].id


def test_phrasing_vectors_are_cached_in_the_database_for_every_process(database, fake_embedder) -> None:
    shop_faqs()
    FaqStore(check_seconds=0, embedder=fake_embedder).refresh()
    assert len(fake_embedder.calls) == 9 and FaqEmbedding.select().count() == 9
    fake_embedder.calls.clear()
    second = FaqStore(check_seconds=0, embedder=fake_embedder)
    second.refresh()
    assert fake_embedder.calls == [] and second.semantic
    make_faq("可以开发票。", ["能开发票吗"])
    second.refresh()
    assert fake_embedder.calls == ["能开发票吗"]


def test_many_new_phrasings_are_embedded_in_the_background_while_lexical_answers(database, fake_embedder) -> None:
    for n in range(INLINE_EMBEDDINGS + 1):
        make_faq(f"答案{n}", [f"问题编号{n}号"])
    store = FaqStore(check_seconds=0, embedder=fake_embedder)
    first = store.match("问题编号7号")
    assert first.best is not None and store.answer_for(first.best.faq_id).answer == "答案7"
    store.wait_warm(timeout=30)
    assert FaqEmbedding.select().count() == INLINE_EMBEDDINGS + 1
    store.match("问题编号8号")
    assert store.semantic


def test_without_the_model_the_store_is_lexical(database) -> None:
    faqs = shop_faqs()
    store = FaqStore(check_seconds=0, embedder=None)
    match = store.match("退货流程")
    assert not store.semantic and match.best.faq_id == faqs["returns"].id and match.stage == "lexical"


def test_an_import_writes_only_what_changed(database) -> None:
    """Re-importing the same file writes nothing (no index rebuild anywhere); an edited FAQ
    keeps the rows of the phrasings the file still lists; a reordered one is rewritten."""
    from bot.faq import io
    from bot.faq.io import FaqRecord
    from bot.core.models import Faq, FaqQuestion

    first = [FaqRecord("f1", ("发货要多久", "几天发货"), "48小时内", "物流问题"),
             FaqRecord("f2", ("怎么退货",), "7天无理由", "售后问题")]
    assert io.apply(first) == io.ImportReport(2, 0, 0)
    stamp = Faq.get(Faq.external_id == "f1").updated_at
    ids = {q.text: q.id for q in FaqQuestion.select()}
    assert io.apply(first) == io.ImportReport(0, 0, 2)
    assert Faq.get(Faq.external_id == "f1").updated_at == stamp and {q.text: q.id for q in FaqQuestion.select()} == ids
    edited = [FaqRecord("f1", ("发货要多久", "什么时候发货"), "48小时内发货", "物流问题"), first[1]]
    assert io.apply(edited) == io.ImportReport(0, 1, 1)
    rows = list(FaqQuestion.select().where(FaqQuestion.faq == Faq.get(Faq.external_id == "f1")).order_by(FaqQuestion.id))
    assert [q.text for q in rows] == ["发货要多久", "什么时候发货"] and rows[0].id == ids["发货要多久"]
    reordered = [FaqRecord("f1", ("什么时候发货", "发货要多久"), "48小时内发货", "物流问题")]
    assert io.apply(reordered) == io.ImportReport(0, 1, 0)
    rows = FaqQuestion.select().where(FaqQuestion.faq == Faq.get(Faq.external_id == "f1")).order_by(FaqQuestion.id)
    assert [q.text for q in rows] == ["什么时候发货", "发货要多久"]
