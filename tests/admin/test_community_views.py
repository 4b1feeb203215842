"""营销 › 客户群群发, 入群欢迎语 and 联系我活码 in the panel, through the stand-in: login and
CSRF; each group's result with the "ask WeCom now" button; welcome templates added, changed
and deleted on the platform first (a refusal shown, nothing stored); a contact-way code
created for employees; the campaign picker offers the WeCom groups; hostile names escaped."""

from __future__ import annotations

import dataclasses
import pytest
from flask import Flask

from adapters.sandbox import wecom_groupmsg as stand_msg
from adapters.sandbox import wecom_groups as stand_groups
from admin.app import create_app
from bot.campaigns import group_messages, runs
from bot.core.models import Campaign, ChannelCode, CustomerGroup, WecomGroupChat, WecomGroupSend, WecomGroupWelcome
from tests.adapters.wechat_kit import wecom_channel
from tests.admin.conftest import Panel
from tests.bot.ops.conftest import sandbox_url

__all__ = ["sandbox_url"]

SENDS, WELCOME, WAYS = "/admin/group-sends/", "/admin/group-welcome/", "/admin/contact-ways/"
HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def app(config, database, sandbox_url) -> Flask:  # type: ignore[no-untyped-def]
    config = dataclasses.replace(config, channels=(*config.channels, wecom_channel(sandbox_url[1])))
    return create_app(config, testing=True)


@pytest.fixture
def panel(operator_panel: Panel) -> Panel:  # an operator runs marketing (conftest's, on this app)
    return operator_panel


def chat(chat_id: str, name: str, owner: str) -> WecomGroupChat:
    group = CustomerGroup.create(name=name, kind="普通群")
    return WecomGroupChat.create(channel="corp", chat_id=chat_id, group=group.id, name=name, owner=owner, members={})


def test_the_pages_need_a_login_and_a_csrf_token(app: Flask, panel: Panel) -> None:
    for url in (SENDS, WELCOME, WAYS):
        anonymous = app.test_client().get(url)
        assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    assert panel.client.post(WELCOME, data={"name": "x", "channel": "corp", "text": "hi"}).status_code == 400
    assert panel.client.post(f"{SENDS}track").status_code == 400
    assert WecomGroupWelcome.select().count() == 0


def test_each_groups_result_and_asking_wecom_now(panel: Panel, sandbox_url) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_url[0]
    stand_groups.seed_chat(sandbox, "wr-1", "直播群", "alice", ["wm-1"])
    stand_groups.seed_chat(sandbox, "wr-2", HOSTILE, "alice", ["wm-2"])
    chat("wr-1", "直播群", "alice")
    chat("wr-2", HOSTILE, "alice")
    campaign = Campaign.create(name="周末直播", target_kind=group_messages.TARGET, content={"text": "今晚8点"},
                               status="done", run_key="campaign:1:2026-12-07T10:00+0800")
    task = stand_msg._add(sandbox, {"chat_type": "group", "sender": "alice", "chat_id_list": ["wr-1", "wr-2"],
                                    "text": {"content": "今晚8点"}}, {})
    for chat_id in ("wr-1", "wr-2"):
        WecomGroupSend.create(job_key=campaign.run_key, campaign=campaign.id, channel="corp", chat_id=chat_id,
                              owner="alice", status="waiting", msgid=task["msgid"])
    page = panel.get(f"{SENDS}?campaign={campaign.id}").get_data(as_text=True)
    assert page.count("等待群主确认") >= 3 and HOSTILE not in page and "&lt;script&gt;" in page
    listed = panel.get("/admin/campaign/").get_data(as_text=True)
    assert f"/admin/group-sends/?campaign={campaign.id}" in listed and "0/2 个群已发送 · 等待群主确认 2" in listed

    stand_msg.confirm(sandbox, task["msgid"])
    resp = panel.post(f"{SENDS}track", {"campaign": str(campaign.id)})
    assert resp.status_code == 302
    page = panel.get(resp.headers["Location"]).get_data(as_text=True)
    assert "已查询企业微信：2 个群新发送，0 个群失败" in page
    assert {r.status for r in WecomGroupSend.select()} == {"sent"}
    sandbox.inject(40058, "get_groupmsg_task")
    WecomGroupSend.update(status="waiting").execute()
    refused = panel.get(panel.post(f"{SENDS}track", {"campaign": str(campaign.id)}).headers["Location"])
    assert "无法查询企业微信" in refused.get_data(as_text=True) and "40058" in refused.get_data(as_text=True)


def test_the_campaign_picker_offers_the_wecom_groups(panel: Panel) -> None:
    assert "wecom_group:" not in panel.get("/admin/campaign/new/").get_data(as_text=True)  # no WeCom groups yet
    live = chat("wr-1", "直播群", "alice")
    page = panel.get("/admin/campaign/new/").get_data(as_text=True)
    assert f'value="wecom_group:{live.group_id}"' in page and 'value="wecom_group:"' in page
    assert "企业微信客户群（群发到群，由群主确认）" in page


def test_a_welcome_template_is_added_changed_and_deleted_on_the_platform_first(
        panel: Panel, sandbox_url) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_url[0]
    form = {"name": "新人欢迎", "channel": "corp", "text": "欢迎进群！每晚8点有福利", "image_url": "",
            "link_title": "新人礼包", "link_url": "https://shop.example/gift", "link_picurl": "", "link_desc": "",
            "notify": "1"}
    resp = panel.post(WELCOME, form)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    row = WecomGroupWelcome.get()
    stored = stand_msg.state(sandbox)["templates"][row.template_id]
    assert stored["text"] == {"content": "欢迎进群！每晚8点有福利"} and stored["link"]["url"] == "https://shop.example/gift"
    assert "已保存入群欢迎语：新人欢迎" in panel.get(resp.headers["Location"]).get_data(as_text=True)

    assert panel.post(WELCOME, {**form, "id": str(row.id), "text": "改过的欢迎语"}).status_code == 302
    assert stand_msg.state(sandbox)["templates"][row.template_id]["text"] == {"content": "改过的欢迎语"}
    assert WecomGroupWelcome.get().text == "改过的欢迎语" and WecomGroupWelcome.select().count() == 1

    sandbox.inject(40058, "group_welcome_template/edit")  # refused: shown, nothing changed here
    page = panel.post(WELCOME, {**form, "id": str(row.id), "text": "不会保存"}).get_data(as_text=True)
    assert "企业微信拒绝了这条欢迎语" in page and "40058" in page and WecomGroupWelcome.get().text == "改过的欢迎语"
    page = panel.post(WELCOME, {**form, "name": "坏的", "link_url": "", "text": ""}).get_data(as_text=True)
    assert "链接需要同时填写标题和网址" in page and WecomGroupWelcome.select().count() == 1

    assert panel.post(f"{WELCOME}delete", {"id": str(row.id)}).status_code == 302
    assert WecomGroupWelcome.select().count() == 0 and stand_msg.state(sandbox)["templates"] == {}


def test_a_hostile_welcome_is_escaped(panel: Panel) -> None:
    WecomGroupWelcome.create(channel="corp", name=HOSTILE, text=HOSTILE, template_id="t1")
    page = panel.get(WELCOME).get_data(as_text=True)
    assert HOSTILE not in page and "&lt;script&gt;" in page


def test_a_contact_way_code_is_created_for_employees(panel: Panel, sandbox_url) -> None:  # type: ignore[no-untyped-def]
    sandbox = sandbox_url[0]
    resp = panel.post(WAYS, {"name": "门店导购", "channel": "corp", "users": "alice，bob", "tags": "门店",
                             "group": "", "welcome": "欢迎光临", "coupon": ""})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    code = ChannelCode.get()
    way = next(iter(sandbox.wecom_contacts["ways"].values()))
    assert way["user"] == ["alice", "bob"] and way["state"] == code.scene and code.channel == "corp"
    page = panel.get(resp.headers["Location"]).get_data(as_text=True)
    assert "已创建联系我活码：门店导购" in page and code.url in page
    refused = panel.post(WAYS, {"name": "没人接待", "channel": "corp", "users": ""}).get_data(as_text=True)
    assert "请填写接待成员" in refused and ChannelCode.select().count() == 1


def test_a_group_campaign_is_saved_from_the_panel_and_personal_placeholders_refused(panel: Panel) -> None:
    live = chat("wr-1", "直播群", "alice")
    form = {"name": "直播预告", "audience": f"wecom_group:{live.group_id}", "text": "{nickname}，今晚8点见",
            "coupon": "", "run_at": "", "repeat": "", "repeat_weekday": "mon", "repeat_day": "1", "repeat_at": "10:00",
            "cron": ""}
    refused = panel.post("/admin/campaign/new/", form)
    assert refused.status_code == 200 and "不能用 {nickname}" in refused.get_data(as_text=True)
    assert Campaign.select().count() == 0
    assert panel.post("/admin/campaign/new/", {**form, "text": "今晚8点见"}).status_code == 302
    saved = Campaign.get()
    assert (saved.target_kind, saved.target_value, runs.problems(saved)) == ("wecom_group", str(live.group_id), [])


def test_the_confirm_page_names_the_groups_that_already_had_todays_message(panel: Panel) -> None:
    chat("wr-1", "直播群", "alice")
    chat("wr-2", "新品群", "carol")
    WecomGroupSend.create(job_key="campaign:9:earlier", channel="corp", chat_id="wr-1", owner="alice", status="sent",
                          daily_key=f"corp:wr-1:{group_messages.shop_day()}")
    campaign = Campaign.create(name="晚场", target_kind=group_messages.TARGET, content={"text": "今晚8点"})
    page = panel.get(f"/admin/campaign/confirm/?id={campaign.id}").get_data(as_text=True)
    assert "今天发送时会跳过：直播群" in page and "新品群" not in page.split('id="group-limit"')[1].split("</div>")[0]
    assert "客服消息（48小时内互动过）" not in page  # no per-customer path for groups


def test_a_group_that_is_not_a_wecom_chat_is_said_never_a_500(panel: Panel) -> None:
    handmade = CustomerGroup.create(name="手工群")
    campaign = Campaign.create(name="错群", target_kind=group_messages.TARGET, target_value=str(handmade.id),
                               content={"text": "hi"})
    page = panel.get(f"/admin/campaign/confirm/?id={campaign.id}")
    assert page.status_code == 200 and "不是企业微信客户群" in page.get_data(as_text=True)
    live = panel.get(f"/admin/campaign/audience/?audience=wecom_group:{handmade.id}")
    assert live.status_code == 400 and "不是企业微信客户群" in live.get_json()["error"]
    assert panel.get(f"/admin/campaign/details/?id={campaign.id}").status_code == 200
