"""Customers (profile, tags, level, owner, spam flag), groups with members, agents and
coupons edited through the panel."""

from __future__ import annotations

from bot.crm.conversations import upsert_customer
from bot.core.models import Agent, Customer, CustomerGroup, CustomerTag, GroupMember, Tag
from tests.admin.conftest import Panel
from tests.factories import make_agent


def test_edit_customer_profile_tags_level_owner_spam(admin_panel: Panel) -> None:
    agent = make_agent("xiaomei")
    vip = Tag.create(name="高价值")
    customer = upsert_customer("web", "v-1", nickname="小王")
    response = admin_panel.post(f"/admin/customer/edit/?id={customer.id}", {
        "nickname": "小王", "name": "王小明", "phone": "13800000000", "level": "2", "owner_agent": str(agent.id),
        "address": "", "preferences": "喜欢蓝色", "notes": "", "subscribed": "y", "is_spam": "y",
        "tag_links-0-tag": str(vip.id),
    })
    assert response.status_code == 302, response.get_data(as_text=True)[-3000:]
    fresh = Customer.get_by_id(customer.id)
    assert (fresh.name, fresh.level, fresh.owner_agent_id, fresh.is_spam) == ("王小明", 2, agent.id, True)
    assert [link.tag.name for link in CustomerTag.select().where(CustomerTag.customer == customer)] == ["高价值"]
    html = admin_panel.get(f"/admin/customer/details/?id={customer.id}").get_data(as_text=True)
    assert "VIP2" in html and "高价值" in html


def test_group_with_members(admin_panel: Panel) -> None:
    a, b = upsert_customer("web", "a", "甲"), upsert_customer("web", "b", "乙")
    response = admin_panel.post("/admin/group/new/", {"name": "直播粉丝群", "kind": "直播群", "description": ""})
    assert response.status_code == 302
    group = CustomerGroup.get(CustomerGroup.name == "直播粉丝群")
    assert group.kind == "直播群"
    # members are added from the customer list (tests/admin/test_group_members.py), not the group's form
    admin_panel.post("/admin/customer/add-to-group/", {"scope": "selected", "ids": f"{a.id},{b.id}",
                                                       "group_id": str(group.id)})
    assert sorted(m.customer_id for m in GroupMember.select().where(GroupMember.group == group)) == [a.id, b.id]


def test_agent_status_and_capacity(admin_panel: Panel) -> None:
    agent = make_agent("ali", status="offline")
    response = admin_panel.post(f"/admin/agent/edit/?id={agent.id}", {
        "name": "ali", "display_name": "阿力", "channel": "web", "im_user_id": "agent-ali", "status": "online",
        "active": "y", "max_open": "8", "max_private": "200"})
    assert response.status_code == 302
    fresh = Agent.get_by_id(agent.id)
    assert (fresh.status, fresh.max_open, fresh.display_name) == ("online", 8, "阿力")
    html = admin_panel.get("/admin/agent/").get_data(as_text=True)
    assert "在线" in html and "agent-ali" in html


def test_invalid_choice_is_refused(admin_panel: Panel) -> None:
    agent = make_agent("ali", status="offline")
    response = admin_panel.post(f"/admin/agent/edit/?id={agent.id}", {
        "name": "ali", "display_name": "", "channel": "web", "im_user_id": "agent-ali", "status": "hacked",
        "active": "y", "max_open": "5", "max_private": "200"})
    assert response.status_code == 200
    assert Agent.get_by_id(agent.id).status == "offline"


def test_segment_filter_is_edited_as_json(admin_panel: Panel) -> None:
    from bot.core.models import Segment

    response = admin_panel.post("/admin/segment/new/", {"name": "高消费", "filter": '{"min_spend": 1000}'})
    assert response.status_code == 302
    assert Segment.get(Segment.name == "高消费").filter == {"min_spend": 1000}
    response = admin_panel.post("/admin/segment/new/", {"name": "坏的", "filter": "{min_spend"})
    assert response.status_code == 200 and "不是有效的 JSON" in response.get_data(as_text=True)
    assert not Segment.select().where(Segment.name == "坏的").exists()
    segment = Segment.get(Segment.name == "高消费")
    assert "min_spend" in admin_panel.get(f"/admin/segment/edit/?id={segment.id}").get_data(as_text=True)
