"""营销 › 客户群群发, 入群欢迎语 and 联系我活码 in Chromium (issue 18), the panel on a port of its
own and the WeCom stand-in behind it: an operator sees each group's result and asks WeCom
now (one owner sent, one never did); writes a group welcome (a refusal said on the form,
nothing stored), changes and deletes it; creates a contact-way code for two employees."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from adapters.sandbox import wecom_groupmsg as stand_msg
from adapters.sandbox import wecom_groups as stand_groups
from bot.campaigns import group_messages
from bot.core.models import Campaign, ChannelCode, CustomerGroup, WecomGroupChat, WecomGroupSend, WecomGroupWelcome
from tests.adapters.wechat_kit import wecom_channel
from tests.bot.ops.conftest import sandbox_url
from tests.e2e.conftest import OPERATOR_PASSWORD, panel_serving
from tests.e2e.test_browser import browser, page  # noqa: F401  (fixtures)

__all__ = ["sandbox_url"]
PASSWORD = OPERATOR_PASSWORD


@pytest.fixture
def panel_url(config, database, sandbox_url) -> Iterator[str]:  # type: ignore[no-untyped-def]
    with panel_serving(config, wecom_channel(sandbox_url[1])) as url:
        yield url


def sign_in(page: Any, panel_url: str) -> None:
    page.goto(panel_url + "/admin/")
    page.fill("#username", "ops")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")


def test_an_operator_sees_each_groups_result_and_asks_wecom_now(panel_url: str, sandbox_url, page: Any) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sandbox = sandbox_url[0]
    campaign = Campaign.create(name="周末直播", target_kind=group_messages.TARGET, content={"text": "今晚8点"},
                               status="done", run_key="campaign:1:2026-12-07T10:00+0800")
    for chat_id, name, owner in (("wr-1", "直播群", "alice"), ("wr-2", "新品群", "carol")):
        stand_groups.seed_chat(sandbox, chat_id, name, owner, ["wm-1"])
        group = CustomerGroup.create(name=name)
        WecomGroupChat.create(channel="corp", chat_id=chat_id, group=group.id, name=name, owner=owner, members={})
        task = stand_msg._add(sandbox, {"chat_type": "group", "sender": owner, "chat_id_list": [chat_id],
                                        "text": {"content": "今晚8点"}}, {})
        WecomGroupSend.create(job_key=campaign.run_key, campaign=campaign.id, channel="corp", chat_id=chat_id,
                              owner=owner, status="waiting", msgid=task["msgid"])
    stand_msg.confirm(sandbox, stand_msg.messages_from(sandbox, "alice")[0])  # carol never sends hers
    sign_in(page, panel_url)
    page.goto(panel_url + "/admin/campaign/")
    page.click(f"a[href='/admin/group-sends/?campaign={campaign.id}']")
    assert page.inner_text("tr[data-chat=wr-1] .status") == "等待群主确认"
    page.click("#track-now button[type=submit]")
    page.wait_for_selector("text=已查询企业微信")
    assert page.inner_text("tr[data-chat=wr-1] .status") == "已发送"
    assert page.inner_text("tr[data-chat=wr-2] .status") == "等待群主确认"
    assert "已发送 1 · 等待群主确认 1 · 失败 0" in page.inner_text("#group-counts")


def test_an_operator_writes_changes_and_deletes_a_group_welcome(panel_url: str, sandbox_url, page: Any) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sandbox = sandbox_url[0]
    sign_in(page, panel_url)
    page.goto(panel_url + "/admin/group-welcome/")
    sandbox.inject(40058, "group_welcome_template/add")
    page.fill("#name", "新人欢迎")
    page.fill("#text", "欢迎进群！每晚8点有福利")
    page.click("#welcome-form button[type=submit]")
    assert "40058" in page.inner_text("#welcome-error") and WecomGroupWelcome.select().count() == 0
    page.click("#welcome-form button[type=submit]")  # the form kept what was typed
    page.wait_for_selector("text=已保存入群欢迎语：新人欢迎")
    row = WecomGroupWelcome.get()
    assert page.inner_text(f"tr[data-id='{row.id}'] .template-id") == row.template_id != ""
    page.click(f"tr[data-id='{row.id}'] a")
    page.fill("#text", "改过的欢迎语")
    page.click("#welcome-form button[type=submit]")
    page.wait_for_selector("text=已保存入群欢迎语")
    assert stand_msg.state(sandbox)["templates"][row.template_id]["text"] == {"content": "改过的欢迎语"}
    page.click(f"tr[data-id='{row.id}'] button[type=submit]")
    page.wait_for_selector("text=已删除入群欢迎语：新人欢迎")
    assert WecomGroupWelcome.select().count() == 0 and stand_msg.state(sandbox)["templates"] == {}


def test_an_operator_creates_a_contact_way_code(panel_url: str, sandbox_url, page: Any) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    sign_in(page, panel_url)
    page.goto(panel_url + "/admin/contact-ways/")
    page.fill("#name", "门店导购")
    page.fill("#users", "alice, bob")
    page.fill("#tags", "门店")
    page.click("#new-contact-way button[type=submit]")
    page.wait_for_selector("text=已创建联系我活码：门店导购")
    code = ChannelCode.get()
    assert code.channel == "corp" and "门店导购" in page.inner_text(f"tr[data-state='{code.scene}']")
    assert next(iter(sandbox_url[0].wecom_contacts["ways"].values()))["user"] == ["alice", "bob"]
