"""The knowledge base in the panel: FAQs with phrasings inline, bulk enable/disable,
search by phrasing, the "try it" box, import and export."""

from __future__ import annotations

import io
import json

from admin.faq_csv import parse_csv, to_csv
from bot.faq.io import export_records
from bot.faq.store import FaqStore
from bot.core.models import Faq, FaqQuestion
from tests.admin.conftest import Panel
from tests.factories import SHIPPING, make_faq, shop_faqs


def test_create_faq_with_two_phrasings_is_answered(admin_panel: Panel, store: FaqStore) -> None:
    response = admin_panel.post("/admin/faq/new/", {
        "category": "物流问题", "answer": "顺丰包邮，一般两天到。", "enabled": "y",
        "phrasings": "用什么快递\n\n发什么快递\n用什么快递",
    })
    assert response.status_code == 302
    faq = Faq.get(Faq.answer == "顺丰包邮，一般两天到。")
    assert sorted(q.text for q in faq.questions) == ["发什么快递", "用什么快递"]
    assert store.match("你们发什么快递").best.faq_id == faq.id


def test_bulk_disable_and_enable(admin_panel: Panel) -> None:
    faqs = shop_faqs()
    ids = [str(faqs["shipping"].id), str(faqs["returns"].id)]
    response = admin_panel.post("/admin/faq/action/", {"action": "disable", "rowid": ids})
    assert response.status_code == 302
    assert [f.enabled for f in Faq.select().order_by(Faq.id)] == [False, False, True]
    admin_panel.post("/admin/faq/action/", {"action": "enable", "rowid": ids[:1]})
    assert Faq.get_by_id(faqs["shipping"].id).enabled and not Faq.get_by_id(faqs["returns"].id).enabled


def test_filter_by_phrasing_and_search_answer(admin_panel: Panel) -> None:
    shop_faqs()
    view = admin_panel.client.application.extensions["admin"][0]._views
    faq_view = next(v for v in view if getattr(v, "endpoint", "") == "faq")
    index = next(i for i, f in enumerate(faq_view._filters) if str(f.name) == "问法")
    html = admin_panel.get(f"/admin/faq/?flt0_{index}=穿多大").get_data(as_text=True)
    assert "尺码表" in html and "48小时" not in html
    html = admin_panel.get("/admin/faq/?search=无理由").get_data(as_text=True)
    assert "7天无理由" in html and "尺码表" not in html


def test_try_it_shows_answer_and_scores(admin_panel: Panel) -> None:
    shop_faqs()
    html = admin_panel.get("/admin/faq-tools/?q=发货要多久呀").get_data(as_text=True)
    assert SHIPPING in html and "机器人会回答" in html
    assert "得分" in html
    html = admin_panel.get("/admin/faq-tools/?q=量子力学的基本原理").get_data(as_text=True)
    assert "没有把握" in html


def test_categories_are_counted(admin_panel: Panel) -> None:
    shop_faqs()
    html = admin_panel.get("/admin/faq-tools/").get_data(as_text=True)
    table = html[html.index('id="categories"'):]
    assert "物流问题</a></td><td>1</td>" in table


def test_export_csv_has_bom_and_round_trips() -> None:
    records = [{"id": "a1", "questions": ["发货要多久", "几天发货"], "answer": "48小时内发货，\"现货\"优先。",
                "category": "物流问题"}]
    data = to_csv(records)
    assert data.startswith("\ufeff".encode("utf-8"))
    parsed = parse_csv(data)
    assert parsed[0].id == "a1" and parsed[0].questions == ("发货要多久", "几天发货")
    assert parsed[0].answer == records[0]["answer"]


def test_export_and_import_through_the_panel(admin_panel: Panel) -> None:
    for i, (questions, answer) in enumerate(((["发货要多久"], "48小时内发货"), (["怎么退货"], "7天无理由退货"),
                                             (["尺码怎么选"], "参考尺码表"))):
        admin_panel.post("/admin/faq/new/", {"category": "更多问题", "answer": answer, "enabled": "y",
                                             "phrasings": questions[0]})
    csv_body = admin_panel.get("/admin/faq-tools/export.csv").data
    jsonl_body = admin_panel.get("/admin/faq-tools/export.jsonl").get_data(as_text=True)
    assert len(jsonl_body.splitlines()) == 3 and json.loads(jsonl_body.splitlines()[0])["questions"]
    edited = csv_body.decode("utf-8-sig").replace("48小时内发货", "24小时内发货").encode("utf-8-sig")
    response = admin_panel.post("/admin/faq-tools/import", {"file": (io.BytesIO(edited), "faq.csv")},
                                content_type="multipart/form-data", follow_redirects=True)
    assert "更新 1 条，未变 2 条" in response.get_data(as_text=True)  # only the edited FAQ is written
    assert Faq.select().where(Faq.answer.contains("24小时内发货")).count() == 1
    new = json.dumps({"id": "coupon", "questions": ["有优惠券吗"], "answer": "新人满100减10。"}, ensure_ascii=False)
    response = admin_panel.post("/admin/faq-tools/import", {"file": (io.BytesIO(new.encode()), "more.jsonl")},
                                content_type="multipart/form-data", follow_redirects=True)
    assert "新增 1 条" in response.get_data(as_text=True)
    assert len(export_records()) == 4


def test_bad_import_names_the_line_and_imports_nothing(admin_panel: Panel) -> None:
    make_faq("原答案", ["原问法"])
    body = '{"id": "x", "questions": ["好问题"], "answer": "好答案"}\n{"id": "y", "questions": []}\n'
    response = admin_panel.post("/admin/faq-tools/import", {"file": (io.BytesIO(body.encode()), "bad.jsonl")},
                                content_type="multipart/form-data", follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "bad.jsonl 第 2 行" in html and "未导入任何内容" in html
    assert Faq.select().count() == 1 and FaqQuestion.select().count() == 1


def test_low_rated_faqs_surface_worst_first(admin_panel) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import make_faq

    good = make_faq("好答案", ["好问题"])
    bad = make_faq("坏答案", ["没用的问题"])
    Faq.update(likes=9, dislikes=1).where(Faq.id == good.id).execute()
    Faq.update(likes=1, dislikes=5).where(Faq.id == bad.id).execute()
    html = admin_panel.get("/admin/faq/low-rated/").get_data(as_text=True)
    assert "没用的问题" in html and "83%" in html
    assert "好问题" not in html  # 10% dislikes is not low-rated
    assert "/admin/faq/low-rated/" in admin_panel.get("/admin/").get_data(as_text=True)


def test_phrasings_one_per_line_edit_keeps_rows_and_refuses_none(admin_panel: Panel) -> None:
    faq = make_faq("48小时内发货", ["发货要多久", "几天发货"], "物流问题")
    kept = FaqQuestion.get(FaqQuestion.text == "发货要多久").id
    html = admin_panel.get(f"/admin/faq/edit/?id={faq.id}").get_data(as_text=True)
    assert "发货要多久\n几天发货</textarea>" in html.replace("\r\n", "\n")
    admin_panel.post(f"/admin/faq/edit/?id={faq.id}", {"category": "物流问题", "answer": "48小时内发货",
                                                        "enabled": "y", "phrasings": "发货要多久\r\n今天能寄吗"})
    rows = {q.text: q.id for q in FaqQuestion.select().where(FaqQuestion.faq == faq.id)}
    assert set(rows) == {"发货要多久", "今天能寄吗"} and rows["发货要多久"] == kept
    response = admin_panel.post(f"/admin/faq/edit/?id={faq.id}", {"category": "物流问题", "answer": "x",
                                                                   "enabled": "y", "phrasings": " \n "})
    assert response.status_code == 200 and "至少填写一个问法" in response.get_data(as_text=True)
    assert Faq.get_by_id(faq.id).answer == "48小时内发货"


def test_saving_a_phrasing_another_faq_answers_warns_with_both_answers(admin_panel: Panel) -> None:
    shop_faqs()
    old = make_faq("顺丰需补6元。", ["能发顺丰吗", "顺丰能发吗"], "物流问题")
    response = admin_panel.post("/admin/faq/new/", {"category": "物流问题", "answer": "顺丰补10元。", "enabled": "y",
                                                    "phrasings": "能发顺丰吗"}, follow_redirects=True)
    html = response.get_data(as_text=True)
    assert f"FAQ #{old.id} 的问法「能发顺丰吗」" in html and "顺丰需补6元。" in html and "本条答案：顺丰补10元。" in html
    assert Faq.select().where(Faq.answer == "顺丰补10元。").exists()  # warned, not refused
    response = admin_panel.post("/admin/faq/new/", {"category": "物流问题", "answer": "可以开电子发票。", "enabled": "y",
                                                    "phrasings": "能开发票吗"}, follow_redirects=True)
    assert "相近" not in response.get_data(as_text=True)
    html = admin_panel.get("/admin/faq-tools/?q=能发顺丰吗").get_data(as_text=True)
    assert 'id="try-conflict"' in html and "顺丰补10元。" in html and "顺丰需补6元。" in html


def test_import_warns_about_conflicting_phrasings(admin_panel: Panel) -> None:
    shop_faqs()
    make_faq("顺丰需补6元。", ["能发顺丰吗"], "物流问题")
    body = json.dumps({"id": "sf", "questions": ["能发顺丰吗"], "answer": "顺丰补10元。"}, ensure_ascii=False)
    response = admin_panel.post("/admin/faq-tools/import", {"file": (io.BytesIO(body.encode()), "sf.jsonl")},
                                content_type="multipart/form-data", follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "新增 1 条" in html and "的问法「能发顺丰吗」相近" in html and "顺丰需补6元。" in html


def test_categories_are_managed_in_the_panel(admin_panel: Panel) -> None:
    from bot.core.models import FaqCategory

    faq = make_faq("满300减50", ["双11有什么活动"], "活动优惠")
    assert admin_panel.post("/admin/faqcategory/new/", {"name": "双11活动", "position": "0"}).status_code == 302
    html = admin_panel.get("/admin/faq/new/").get_data(as_text=True)
    assert '<option value="双11活动">' in html
    cat = FaqCategory.get(FaqCategory.name == "双11活动")
    admin_panel.post(f"/admin/faq/edit/?id={faq.id}", {"category": "双11活动", "answer": "满300减50",
                                                        "enabled": "y", "phrasings": "双11有什么活动"})
    assert Faq.get_by_id(faq.id).category == "双11活动"
    admin_panel.post(f"/admin/faqcategory/edit/?id={cat.id}", {"name": "双十一", "position": "0"})
    assert Faq.get_by_id(faq.id).category == "双十一"  # the FAQs follow a rename
    response = admin_panel.post("/admin/faqcategory/delete/", {"id": str(cat.id)}, follow_redirects=True)
    assert "还有 1 条 FAQ" in response.get_data(as_text=True) and FaqCategory.get_or_none(FaqCategory.id == cat.id)
    response = admin_panel.post("/admin/faqcategory/new/", {"name": "双十一", "position": "1"}, follow_redirects=True)
    assert "已有同名分类" in response.get_data(as_text=True)
    assert FaqCategory.select().where(FaqCategory.name == "双十一").count() == 1
