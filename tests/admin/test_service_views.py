"""Conversations, unanswered questions, campaigns and settings through the panel."""

from __future__ import annotations

from typing import Any

from bot.core import settings
from bot.conversation.dispatcher import Dispatcher
from bot.core.models import Campaign, Conversation, Customer, CustomerGroup, Faq, FaqQuestion, GroupMember, Outbox, UnansweredQuestion
from tests.admin.conftest import Panel
from tests.factories import make_agent, shop_faqs, text


def test_conversation_filters_reassign_and_resolve(admin_panel: Panel, dispatcher: Dispatcher) -> None:
    shop_faqs()
    xiaomei, ali = make_agent("xiaomei"), make_agent("ali")
    dispatcher.handle(text("c1", "转人工"))
    dispatcher.handle(text("c2", "发货要多久"))
    handed = Conversation.get(Conversation.status == "assigned")
    first = handed.agent_id
    other = ali if first == xiaomei.id else xiaomei
    html = admin_panel.get("/admin/conversation/?flt1_0=assigned").get_data(as_text=True)
    listing = admin_panel.get("/admin/conversation/").get_data(as_text=True)
    assert listing.count("/admin/conversation/details/?id=") >= 2
    response = admin_panel.post("/admin/conversation/reassign/", {"id": handed.id, "agent_id": other.id})
    assert response.status_code == 302
    assert Conversation.get_by_id(handed.id).agent_id == other.id
    response = admin_panel.post("/admin/conversation/resolve/", {"id": handed.id})
    fresh = Conversation.get_by_id(handed.id)
    assert fresh.status == "resolved" and fresh.resolved_by == "admin"
    bot_conv = Conversation.get(Conversation.status == "bot")
    admin_panel.post("/admin/conversation/reassign/", {"id": bot_conv.id, "agent_id": xiaomei.id})
    assert Conversation.get_by_id(bot_conv.id).status == "assigned"
    assert html  # the filtered list renders


def test_conversation_status_filter(admin_panel: Panel, dispatcher: Dispatcher) -> None:
    make_agent("xiaomei")
    dispatcher.handle(text("c1", "转人工"))
    dispatcher.handle(text("c2", "随便问问"))
    app = admin_panel.client.application
    view = next(v for v in app.extensions["admin"][0]._views if getattr(v, "endpoint", "") == "conversation")
    index = next(i for i, f in enumerate(view._filters)
                 if str(f.name) == "状态" and f.operation() in ("equals", "等于"))
    assigned = Conversation.get(Conversation.status == "assigned")
    bot = Conversation.get(Conversation.status == "bot")
    html = admin_panel.get(f"/admin/conversation/?flt0_{index}=assigned").get_data(as_text=True)
    assert f"details/?id={assigned.id}&" in html and f"details/?id={bot.id}&" not in html


def test_unanswered_promote_and_add_phrasing(admin_panel: Panel, dispatcher: Dispatcher) -> None:
    faqs = shop_faqs()
    dispatcher.handle(text("c1", "支持货到付款吗"))
    dispatcher.handle(text("c2", "包裹寄到哪儿了呢亲"))
    cod = UnansweredQuestion.get(UnansweredQuestion.text == "支持货到付款吗")
    where = UnansweredQuestion.get(UnansweredQuestion.text == "包裹寄到哪儿了呢亲")
    assert "支持货到付款吗" in admin_panel.get(f"/admin/unanswered/details/?id={cod.id}").get_data(as_text=True)
    response = admin_panel.post("/admin/unanswered/promote/", {"ids": str(cod.id), "answer": "暂不支持货到付款。",
                                                               "category": "购买操作", "phrasing": "支持货到付款吗"})
    assert response.status_code == 302
    new = Faq.get(Faq.answer == "暂不支持货到付款。")
    assert [q.text for q in new.questions] == ["支持货到付款吗"]
    admin_panel.post("/admin/unanswered/add-phrasing/", {"ids": str(where.id), "faq_id": faqs["shipping"].id})
    assert FaqQuestion.select().where((FaqQuestion.faq == faqs["shipping"].id)
                                      & (FaqQuestion.text == "包裹寄到哪儿了呢亲")).exists()
    assert UnansweredQuestion.select().where(UnansweredQuestion.resolved == False).count() == 0  # noqa: E712


def test_unanswered_groups_page_teaches_a_group_at_once(admin_panel: Panel, dispatcher: Dispatcher) -> None:
    shop_faqs()
    for i, words in enumerate(("支持货到付款吗", "支持货到付款吗？", "可以货到付款吗")):
        dispatcher.handle(text(f"c{i}", words))
    html = admin_panel.get("/admin/unanswered/groups/").get_data(as_text=True)
    assert "支持货到付款吗" in html
    ids = ",".join(str(q.id) for q in UnansweredQuestion.select())
    admin_panel.post("/admin/unanswered/promote/", {"ids": ids, "answer": "暂不支持货到付款。", "category": "购买操作"})
    faq = Faq.get(Faq.answer == "暂不支持货到付款。")
    assert faq.questions.count() >= 2
    assert not UnansweredQuestion.select().where(UnansweredQuestion.resolved == False).exists()  # noqa: E712
    assert "没有未解决的问题" in admin_panel.get("/admin/unanswered/groups/").get_data(as_text=True)


def test_campaign_create_schedule_pause_cancel(admin_panel: Panel, dispatcher: Dispatcher) -> None:
    make_agent("xiaomei")
    group = CustomerGroup.create(name="直播粉丝群", kind="直播群")
    GroupMember.create(group=group, customer=Customer.create(channel="web", external_id="fan1"))
    # the audience is picked from the list (issue 25): a group by its id
    response = admin_panel.post("/admin/campaign/new/", {"name": "双十二预热", "audience": f"group:{group.id}",
                                                         "text": "亲爱的{nickname}，双十二来啦！"})
    assert response.status_code == 302
    campaign = Campaign.get(Campaign.name == "双十二预热")
    assert campaign.status == "draft" and campaign.content["text"].startswith("亲爱的")
    html = admin_panel.get(f"/admin/campaign/details/?id={campaign.id}").get_data(as_text=True)
    assert 'id="do-schedule"' in html and 'name="do-pause"' not in html
    admin_panel.post("/admin/campaign/test-send/", {"id": campaign.id})
    assert Outbox.select().where(Outbox.key.startswith(f"campaign-test:{campaign.id}:")).count() == 1
    admin_panel.post("/admin/campaign/change/", {"id": campaign.id, "change": "schedule", "confirm_count": 1,
                                                 "confirmed": "yes"})
    assert Campaign.get_by_id(campaign.id).status == "scheduled"
    response = admin_panel.post("/admin/campaign/change/", {"id": campaign.id, "change": "resume"},
                                follow_redirects=True)
    assert Campaign.get_by_id(campaign.id).status == "scheduled"  # refused: not paused
    admin_panel.post("/admin/campaign/change/", {"id": campaign.id, "change": "cancel"})
    assert Campaign.get_by_id(campaign.id).status == "cancelled"
    assert response.status_code == 200


def _settings_form(panel: Panel, **override: Any) -> dict[str, Any]:
    """The settings form as the page shows it, with these tests' values and `override`."""
    from tests.admin.test_settings_forms import page_form

    form: dict[str, Any] = page_form(panel)
    form.pop("bh_always_open", None)  # these tests keep hours, not "always open"
    form |= {
        "reception_mode": "mixed", "faq_threshold": "0.6", "handoff_after_unanswered": "3",
        "agent_sla_seconds": "120", "idle_resolve_minutes": "45", "card_questions": "发货要多久\n怎么退货",
        "handoff_keywords": "转人工\n人工客服", "bh_timezone": "Asia/Shanghai", "bh_mon_start": "09:00",
        "bh_mon_end": "18:00", "bh_holidays": "2026-12-25",
    }
    for key in ("welcome_message", "abstain_message", "handoff_message", "queue_message", "offline_message",
                "resolved_message"):
        form[key] = settings.DEFAULTS[key]
    form["welcome_message"] = "欢迎来到小店！"
    form.update(override)
    return form


def test_settings_saved_and_seen_by_the_bot(admin_panel: Panel) -> None:
    response = admin_panel.post("/admin/settings/", _settings_form(admin_panel))
    assert response.status_code == 302
    settings.clear_cache()
    assert settings.get("reception_mode") == "mixed"
    assert settings.get("welcome_message") == "欢迎来到小店！"
    assert settings.get("card_questions") == ["发货要多久", "怎么退货"]
    assert settings.get("faq_threshold") == 0.6 and settings.get("agent_sla_seconds") == 120
    hours = settings.get("business_hours")
    assert hours["weekly"]["mon"] == ["09:00", "18:00"] and hours["always_open"] is False
    assert hours["holidays"] == ["2026-12-25"]


def test_bad_setting_names_the_field_and_saves_nothing(admin_panel: Panel) -> None:
    response = admin_panel.post("/admin/settings/", _settings_form(admin_panel, agent_sla_seconds="很快", welcome_message="改了"))
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "客服响应时限" in html
    settings.clear_cache()
    assert settings.get("welcome_message") == settings.DEFAULTS["welcome_message"]
    response = admin_panel.post("/admin/settings/", _settings_form(admin_panel, bh_mon_start="9点"))
    assert "HH:MM" in response.get_data(as_text=True)


def test_times_show_and_filter_in_shop_time(admin_panel: Panel, dispatcher: Dispatcher, fake_clock: Any) -> None:
    from datetime import datetime, timezone

    fake_clock.set(datetime(2026, 11, 24, 2, 30, tzinfo=timezone.utc))  # 10:30 in Shanghai
    dispatcher.handle(text("early", "你好"))
    fake_clock.set(datetime(2026, 11, 24, 8, 0, tzinfo=timezone.utc))  # 16:00 in Shanghai
    dispatcher.handle(text("late", "你好"))
    html = admin_panel.get("/admin/conversation/").get_data(as_text=True)
    assert "2026-11-24 10:30:00" in html and "2026-11-24 16:00:00" in html
    app = admin_panel.client.application
    view = next(v for v in app.extensions["admin"][0]._views if getattr(v, "endpoint", "") == "conversation")
    index = next(i for i, f in enumerate(view._filters) if str(f.name) == "开始" and "Greater" in type(f).__name__)
    html = admin_panel.get(f"/admin/conversation/?flt0_{index}=2026-11-24 12:00:00").get_data(as_text=True)
    assert "16:00:00" in html and "10:30:00" not in html


def test_panel_transfer_and_resolve_tell_people_over_im(admin_panel, dispatcher) -> None:  # type: ignore[no-untyped-def]
    """A reassignment in the panel briefs the new agent and tells the customer; a resolve
    sends the closing rating card and serves the queue."""
    from bot.core.models import Conversation, Outbox
    from tests.factories import make_agent, text

    first, second = make_agent("first", max_open=1), make_agent("second", max_open=1)
    dispatcher.handle(text("cust-a", "转人工"))
    conversation = Conversation.get()
    assert conversation.agent_id == first.id
    response = admin_panel.post("/admin/conversation/reassign/", {"id": conversation.id, "agent_id": second.id})
    assert response.status_code == 302
    assert Conversation.get_by_id(conversation.id).agent_id == second.id
    briefing = Outbox.select().where(Outbox.recipient == second.im_user_id).order_by(Outbox.id.desc()).first()
    assert briefing is not None and "管理员转派给您" in briefing.content["text"]
    dispatcher.handle(text("cust-b", "转人工"))  # first is free again: takes cust-b
    dispatcher.handle(text("cust-c", "转人工"))  # nobody free: queued
    assert Conversation.select().where(Conversation.status == "queued").count() == 1
    admin_panel.post("/admin/conversation/resolve/", {"id": conversation.id})
    closing = Outbox.select().where(Outbox.recipient == "cust-a").order_by(Outbox.id.desc()).first()
    assert "打分" in closing.content["text"]
    served = Conversation.get((Conversation.agent == second) & (Conversation.status == "assigned"))
    assert served.customer.external_id == "cust-c"


def test_setting_an_agent_offline_in_the_panel_returns_waiting_customers(admin_panel, dispatcher) -> None:  # type: ignore[no-untyped-def]
    from bot.core.models import Agent, Conversation
    from tests.factories import make_agent, text

    agent = make_agent("ali")
    dispatcher.handle(text("cust-a", "转人工"))
    assert Conversation.get().status == "assigned"
    response = admin_panel.post(f"/admin/agent/edit/?id={agent.id}", {
        "name": "ali", "display_name": "ali", "channel": "web", "im_user_id": agent.im_user_id, "status": "offline",
        "active": "y", "max_open": "5", "max_private": "200"})
    assert response.status_code == 302
    assert Agent.get_by_id(agent.id).status == "offline"
    assert Conversation.get().status == "queued"
