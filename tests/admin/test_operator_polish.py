"""What a new operator walking through the Chinese panel should see: messages in their
language, human labels instead of stored keys, readable scores, every time in the shop's
time zone, `?lang=zh`, no menu for logged-out visitors, filter choices that follow new rows."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

import pytest
from flask import Flask

from bot.conversation.dispatcher import Dispatcher
from bot.core.models import Campaign, Conversation, Coupon, UnansweredQuestion
from tests.admin.conftest import PASSWORD, Panel, csrf_token, login
from tests.factories import make_agent, text

TINY_SCORE = 1.1195497668238105e-05


def _post_password(panel: Panel, new: str, lang: str = "") -> str:
    page = panel.get(f"/admin/password/{lang}").get_data(as_text=True)
    response = panel.client.post("/admin/password/", data={"csrf_token": csrf_token(page), "current_password": PASSWORD,
                                                           "new_password": new, "confirm": new})
    return str(response.get_data(as_text=True))


def test_password_policy_errors_in_the_operators_language(admin_panel: Panel) -> None:
    html = _post_password(admin_panel, "short")
    assert "密码至少 8 位" in html and "password must be" not in html
    assert "新密码不能与旧密码相同" in _post_password(admin_panel, PASSWORD)
    english = _post_password(admin_panel, "short", "?lang=en")
    assert "Password must be at least 8 characters" in english and "密码至少" not in english


def test_panel_user_form_password_error_in_both_languages(admin_panel: Panel) -> None:
    form = {"username": "newop", "role": "operator", "active": "y", "password": "short"}
    zh = admin_panel.post("/admin/adminuser/new/", form, follow_redirects=True).get_data(as_text=True)
    assert "密码至少 8 位" in zh
    admin_panel.get("/admin/?lang=en")
    english = admin_panel.post("/admin/adminuser/new/", form, follow_redirects=True).get_data(as_text=True)
    assert "Password must be at least 8 characters" in english


def test_csv_header_error_in_the_operators_language(admin_panel: Panel) -> None:
    def upload() -> str:
        body = "\ufeffid,foo,bar\n1,x,y\n".encode("utf-8")
        response = admin_panel.post("/admin/faq-tools/import", {"file": (io.BytesIO(body), "faq.csv")},
                                    content_type="multipart/form-data", follow_redirects=True)
        return str(response.get_data(as_text=True))

    zh = upload()
    assert "faq.csv 第 1 行" in zh and "表头必须包含答案（answer）和问法（questions）两列" in zh
    assert "the header must name" not in zh
    admin_panel.get("/admin/?lang=en")
    english = upload()
    assert "faq.csv, line 1: The header must name the answer and questions columns" in english


def test_stored_keys_are_shown_as_labels_and_scores_rounded(admin_panel: Panel, dispatcher: Dispatcher) -> None:
    make_agent("xiaomei")
    dispatcher.handle(text("c1", "转人工"))
    assert Conversation.get(Conversation.handoff_reason == "requested")
    question = UnansweredQuestion.create(text="你们老板是谁", normalized="你们老板是谁", reason="abstained",
                                         best_score=TINY_SCORE)
    Coupon.create(name="新人券", kind="amount", value=10)
    unanswered = admin_panel.get("/admin/unanswered/").get_data(as_text=True)
    assert "未命中" in unanswered and ">abstained<" not in unanswered.replace(" ", "").replace("\n", "")
    assert "e-05" not in unanswered and "0.00" in unanswered
    detail = admin_panel.get(f"/admin/unanswered/details/?id={question.id}").get_data(as_text=True)
    assert "未命中" in detail and "e-05" not in detail and "0.0000" in detail
    conversations = admin_panel.get("/admin/conversation/").get_data(as_text=True)
    assert "顾客要求转人工" in conversations and ">requested<" not in conversations.replace(" ", "").replace("\n", "")
    coupons = admin_panel.get("/admin/coupon/").get_data(as_text=True)
    assert "满减（元）" in coupons and ">amount<" not in coupons.replace(" ", "").replace("\n", "")
    assert "No confident match" in admin_panel.get("/admin/unanswered/?lang=en").get_data(as_text=True)
    assert "Customer asked for a human" in admin_panel.get("/admin/conversation/").get_data(as_text=True)
    assert "Amount off" in admin_panel.get("/admin/coupon/").get_data(as_text=True)
    assert UnansweredQuestion.get_by_id(question.id).reason == "abstained"  # stored values unchanged


def test_campaign_send_time_is_shown_and_entered_in_shop_time(admin_panel: Panel) -> None:
    campaign = Campaign.create(name="双十二预热", target_kind="all", target_value="", content={"text": "来啦"},
                               run_at=datetime(2026, 12, 11, 16, 0, tzinfo=timezone.utc))
    listing = admin_panel.get("/admin/campaign/").get_data(as_text=True)
    assert "2026-12-12 00:00:00" in listing and "UTC" not in listing
    form = admin_panel.get(f"/admin/campaign/edit/?id={campaign.id}").get_data(as_text=True)
    assert 'value="2026-12-12 00:00:00"' in form and "UTC" not in form
    response = admin_panel.post(f"/admin/campaign/edit/?id={campaign.id}",
                                {"name": "双十二预热", "target_kind": "all", "target_value": "", "text": "来啦",
                                 "run_at": "2026-12-12 09:30:00", "cron": ""})
    assert response.status_code == 302
    assert Campaign.get_by_id(campaign.id).run_at == datetime(2026, 12, 12, 1, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("asked", ["zh", "zh_CN", "zh-CN", "zh_Hans_CN"])
def test_every_usual_spelling_of_chinese_switches_back(admin_panel: Panel, asked: str) -> None:
    assert "Dashboard" in admin_panel.get("/admin/?lang=en").get_data(as_text=True)
    assert "数据看板" in admin_panel.get(f"/admin/?lang={asked}").get_data(as_text=True)
    assert "数据看板" in admin_panel.get("/admin/").get_data(as_text=True)  # the choice sticks


def test_logged_out_visitors_see_no_menu_entries(app: Flask, admin_user: Any) -> None:
    client = app.test_client()
    page = client.get("/admin/login/").get_data(as_text=True)
    assert "低评分 FAQ" not in page and "/admin/faq/low-rated/" not in page and "知识库" not in page
    login(client, "boss")
    assert "/admin/faq/low-rated/" in client.get("/admin/").get_data(as_text=True)


def test_agent_filter_offers_an_agent_added_while_the_panel_runs(admin_panel: Panel) -> None:
    admin_panel.get("/admin/conversation/")
    admin_panel.get("/admin/customer/")
    make_agent("late-joiner")
    assert "late-joiner" in admin_panel.get("/admin/conversation/").get_data(as_text=True)
    assert "late-joiner" in admin_panel.get("/admin/customer/").get_data(as_text=True)


def test_a_coupon_issued_by_hand_gets_a_code_and_an_expiry_when_left_empty(admin_panel: Panel) -> None:
    from bot.core.models import Customer, IssuedCoupon

    coupon = Coupon.create(name="新人券", kind="amount", value=10, valid_days=7)
    customer = Customer.create(channel="web", external_id="v_1")
    response = admin_panel.post("/admin/issuedcoupon/new/", {"coupon": str(coupon.id), "customer": str(customer.id),
                                                              "code": "", "expires_at": "", "used_at": ""})
    assert response.status_code == 302, response.get_data(as_text=True)[-500:]
    issued = IssuedCoupon.get()
    assert issued.code.startswith("M") and len(issued.code) == 11
    assert (issued.expires_at - issued.issued_at).days == 7


def test_a_campaign_can_carry_a_coupon_and_keeps_its_kind_when_edited(admin_panel: Panel) -> None:
    """The README's coupon_id had no place in the panel ({coupon} came out empty), and saving
    any campaign there turned it into a text one."""
    coupon = Coupon.create(name="双十二满200减30", kind="amount", value=30)
    Coupon.create(name="停用的券", kind="amount", value=5, active=False)
    form = admin_panel.get("/admin/campaign/new/").get_data(as_text=True)
    assert "双十二满200减30" in form and "停用的券" not in form
    response = admin_panel.post("/admin/campaign/new/", {"name": "双十二", "target_kind": "all", "target_value": "",
                                                         "text": "送您 {coupon}", "coupon": str(coupon.id)})
    assert response.status_code == 302
    campaign = Campaign.get(Campaign.name == "双十二")
    assert campaign.content == {"text": "送您 {coupon}", "coupon_id": coupon.id}
    edit = admin_panel.get(f"/admin/campaign/edit/?id={campaign.id}").get_data(as_text=True)
    assert f'<option selected value="{coupon.id}">' in edit or f'value="{coupon.id}" selected' in edit
    # an image campaign's content as bot.campaigns.content.as_message reads it (a media_id of its own;
    # {"image": {...}} had nothing to send, which the composer now refuses)
    Campaign.update(content_kind="image", content={"media_id": "m1", "coupon_id": coupon.id}).where(
        Campaign.id == campaign.id).execute()
    admin_panel.post(f"/admin/campaign/edit/?id={campaign.id}", {"name": "双十二", "target_kind": "all",
                                                                 "target_value": "", "text": "", "coupon": ""})
    edited = Campaign.get_by_id(campaign.id)
    assert edited.content_kind == "image" and edited.content["media_id"] == "m1"
    assert "coupon_id" not in edited.content  # 不发券 removes it


def test_a_segment_that_cannot_be_counted_or_a_duplicate_tag_is_refused_with_the_reason(admin_panel: Panel) -> None:
    from bot.core.models import Segment, Tag

    Tag.create(name="老客户")
    for spec, reason in (('{"foo": 1, "level_min": 2}', "筛选条件有误：foo: unknown filter key"),
                         ('{"tags": ["没有这个标签"]}', "没有这个标签：没有这个标签")):
        page = admin_panel.post("/admin/segment/new/", {"name": "高价值", "filter": spec},
                                follow_redirects=True).get_data(as_text=True)
        assert reason in page
    assert Segment.select().count() == 0
    assert admin_panel.post("/admin/segment/new/", {"name": "老客户群", "filter": '{"tags": ["老客户"]}'}).status_code == 302
    assert Segment.get().filter == {"tags": ["老客户"]}
    page = admin_panel.post("/admin/tag/new/", {"name": "老客户", "color": ""}, follow_redirects=True).get_data(as_text=True)
    assert "标签「老客户」已存在" in page and "UNIQUE" not in page and Tag.select().count() == 1
