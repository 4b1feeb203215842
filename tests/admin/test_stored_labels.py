"""Stored keys (statuses, reasons, directions, roles) are shown and filtered by their labels,
in Chinese and with `?lang=en` in English, and the stored values stay as they were."""

from __future__ import annotations

import html as htmllib
import json
import re
from typing import Any

from bot.conversation.dispatcher import Dispatcher
from bot.core.models import AdminUser, Campaign, Conversation, Customer, Delivery, Message, Order, Outbox
from tests.admin.conftest import Panel
from tests.factories import make_agent, text

_CELL = re.compile(r"<td[^>]*>(.*?)</td>", re.S)
_FILTERS = re.compile(r'<div id="filter-groups-data" class="d-none">(.*?)</div>', re.S)


def cells(page: str) -> set[str]:
    """The text of every table cell of a list or details page, tags dropped."""
    return {htmllib.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in _CELL.findall(page)}


def filter_options(page: str, column: str) -> dict[str, str]:
    """The choices the "equals" filter of `column` (its shown label) offers: {stored key: label}."""
    found = _FILTERS.search(page)
    assert found, "no filters on the page"
    groups = json.loads(htmllib.unescape(found.group(1)))
    items = groups[column]
    equals = next(i for i in items if i["operation"] in ("equals", "等于"))
    assert equals["options"], f"{column}: a free-text filter, not a choice"
    return {key: label for key, label in equals["options"]}


def _customer(external_id: str = "c1") -> Customer:
    return Customer.create(channel="web", external_id=external_id, nickname="小王")


def test_delivery_status_and_reason_are_labels(admin_panel: Panel) -> None:
    campaign = Campaign.create(name="上新", target_kind="all", content={"text": "hi"})
    for n, (status, reason) in enumerate([("skipped", "outside the 48-hour window and no template"),
                                          ("failed", "outbox: window_closed"), ("claimed", ""), ("pending", "")]):
        Delivery.create(job_key="campaign:1:run", customer=_customer(f"c{n}"), campaign=campaign, status=status,
                        reason=reason)
    page = admin_panel.get("/admin/delivery/").get_data(as_text=True)
    shown = cells(page)
    assert {"跳过", "失败", "已排队发送", "待发送", "超出48小时客服窗口，且没有模板消息", "超出48小时客服窗口"} <= shown
    assert not {"skipped", "failed", "claimed", "pending", "outbox: window_closed"} & shown
    assert filter_options(page, "结果")["skipped"] == "跳过"
    english = cells(admin_panel.get("/admin/delivery/?lang=en").get_data(as_text=True))
    assert {"Skipped", "Queued to send", "Outside the 48-hour service window"} <= english
    assert Delivery.get(Delivery.status == "failed").reason == "outbox: window_closed"  # stored values unchanged


def test_outbox_status_labels_and_a_choice_filter(admin_panel: Panel) -> None:
    for key, status in (("k1", "window_closed"), ("k2", "limit_reached"), ("k3", "failed")):
        Outbox.create(key=key, channel="mp", recipient=f"u-{key}", content={"text": "hi"}, status=status)
    page = admin_panel.get("/admin/outbox/").get_data(as_text=True)
    shown = cells(page)
    assert {"超出48小时客服窗口", "超出回复条数限制", "失败"} <= shown
    assert not {"window_closed", "limit_reached", "failed"} & shown
    options = filter_options(page, "状态")
    assert options == {"failed": "失败", "window_closed": "超出48小时客服窗口", "limit_reached": "超出回复条数限制"}
    index = next(i["index"] for i in json.loads(htmllib.unescape(_FILTERS.search(page).group(1)))["状态"]  # type: ignore[union-attr]
                 if i["operation"] == "等于")
    filtered = admin_panel.get(f"/admin/outbox/?flt0_{index}=limit_reached").get_data(as_text=True)
    assert "u-k2" in filtered and "u-k1" not in filtered
    english = admin_panel.get("/admin/outbox/?lang=en").get_data(as_text=True)
    assert {"Outside the 48-hour service window", "Reply limit reached"} <= cells(english)
    assert "The platform&#39;s reply limit for this exchange was reached" in english  # the reason column too
    assert Outbox.get(Outbox.key == "k1").status == "window_closed"


def test_order_status_is_a_label_in_the_list_and_on_the_customer(admin_panel: Panel) -> None:
    customer = _customer()
    Order.create(shop_order_id="T1001", customer=customer, status="shipped", amount=99)
    Order.create(shop_order_id="T1002", customer=customer, status="created", amount=10)
    page = admin_panel.get("/admin/order/").get_data(as_text=True)
    assert {"已发货", "已下单"} <= cells(page) and not {"shipped", "created"} & cells(page)
    assert filter_options(page, "状态")["refunded"] == "已退款"
    detail = admin_panel.get(f"/admin/customer/details/?id={customer.id}").get_data(as_text=True)
    assert "T1001 · 已发货" in detail and "· shipped ·" not in detail
    assert "placed" in cells(admin_panel.get("/admin/order/?lang=en").get_data(as_text=True))


def test_message_direction_and_author_are_labels(admin_panel: Panel, dispatcher: Dispatcher) -> None:
    dispatcher.handle(text("c1", "你好"))
    assert Message.select().where(Message.direction == "out").exists()
    page = admin_panel.get("/admin/message/").get_data(as_text=True)
    shown = cells(page)
    assert {"收到", "发出", "顾客", "机器人"} <= shown and not {"in", "out", "customer", "bot"} & shown
    assert filter_options(page, "发送方")["agent"] == "客服" and filter_options(page, "方向")["in"] == "收到"
    assert {"Incoming", "Outgoing", "Customer", "Bot"} <= cells(admin_panel.get("/admin/message/?lang=en")
                                                              .get_data(as_text=True))


def test_reason_and_status_filters_offer_labels_and_filter_by_key(admin_panel: Panel,
                                                                  dispatcher: Dispatcher) -> None:
    make_agent("xiaomei")
    dispatcher.handle(text("c1", "转人工"))
    dispatcher.handle(text("c2", "随便问问"))
    page = admin_panel.get("/admin/conversation/").get_data(as_text=True)
    reasons = filter_options(page, "转人工原因")
    assert reasons["requested"] == "顾客要求转人工" and reasons["agent_offline"] == "原客服已下线"
    assert filter_options(page, "状态")["queued"] == "排队中"
    groups = json.loads(htmllib.unescape(_FILTERS.search(page).group(1)))  # type: ignore[union-attr]
    index = next(i["index"] for i in groups["转人工原因"] if i["operation"] == "等于")
    handed = Conversation.get(Conversation.handoff_reason == "requested")
    other = Conversation.get(Conversation.handoff_reason == "")
    filtered = admin_panel.get(f"/admin/conversation/?flt0_{index}=requested").get_data(as_text=True)
    assert f"details/?id={handed.id}&" in filtered and f"details/?id={other.id}&" not in filtered
    unanswered = admin_panel.get("/admin/unanswered/").get_data(as_text=True)
    assert filter_options(unanswered, "原因") == {"abstained": "未命中", "handoff": "回答后顾客转人工",
                                                  "disliked": "顾客点踩"}
    english = admin_panel.get("/admin/conversation/?lang=en").get_data(as_text=True)
    assert filter_options(english, "Handoff reason")["requested"] == "Customer asked for a human"


def test_panel_user_roles_are_labels_in_the_list_and_the_form(admin_panel: Panel, admin_user: Any) -> None:
    AdminUser.create(username="ops", password_hash="x", role="operator")
    shown = cells(admin_panel.get("/admin/adminuser/").get_data(as_text=True))
    assert {"管理员", "运营"} <= shown and not {"admin", "operator"} & shown
    assert '<option value="operator">运营</option>' in admin_panel.get("/admin/adminuser/new/").get_data(as_text=True)
    assert {"Admin", "Operator"} <= cells(admin_panel.get("/admin/adminuser/?lang=en").get_data(as_text=True))
    form = admin_panel.get("/admin/adminuser/new/").get_data(as_text=True)
    assert '<option value="operator">Operator</option>' in form
    assert AdminUser.get(AdminUser.username == "ops").role == "operator"


def test_campaign_audience_is_a_label_and_status_a_choice_filter(admin_panel: Panel) -> None:
    Campaign.create(name="双十一", target_kind="all", content={"text": "来啦"})
    page = admin_panel.get("/admin/campaign/").get_data(as_text=True)
    assert "全部顾客" in cells(page) and "all" not in cells(page) and "草稿" in cells(page)
    assert filter_options(page, "状态")["paused"] == "已暂停"
    assert filter_options(page, "发送对象")["segment"] == "人群"
    assert "All customers" in cells(admin_panel.get("/admin/campaign/?lang=en").get_data(as_text=True))


def test_transfer_choice_shows_each_agents_presence_as_a_label(admin_panel: Panel, dispatcher: Dispatcher) -> None:
    make_agent("xiaomei")
    make_agent("ali", status="away")
    dispatcher.handle(text("c1", "转人工"))
    conversation = Conversation.get(Conversation.status == "assigned")
    detail = admin_panel.get(f"/admin/conversation/details/?id={conversation.id}").get_data(as_text=True)
    assert "ali（离开）" in detail and "（away）" not in detail and "（online）" not in detail
