"""An operator's day in a real browser (issue 25), against `kefu run` on a fresh demo database:

- a campaign refused for each bad input (a {coupon} with no coupon, a time already past, an
  empty group: the audience is a list, so an unknown group cannot be typed), then sent to the
  right count after its preview and a confirmation naming that count;
- 客服几点上班 answered by its FAQ, 转人工 handed to a person.
"""

from __future__ import annotations

import time
from typing import Any

from adapters.web_client import WebChatClient
from tests.e2e.test_browser import browser, kefu, login_first_time, page, say  # noqa: F401  (fixtures)

SUBMIT = "input[type=submit][value]:not([name])"


def _group_of(database_url: str, name: str, user_ids: list[str]) -> int:
    from bot.core import db
    from bot.core.db import transaction
    from bot.core.models import Customer, CustomerGroup, GroupMember

    database = db.connect(database_url)
    with transaction():
        group = CustomerGroup.create(name=name, kind="直播群")
        for user_id in user_ids:
            GroupMember.create(group=group, customer=Customer.get(Customer.external_id == user_id))
    database.close()
    return group.id


def test_a_campaign_is_refused_for_each_bad_input_then_sent_after_confirmation(kefu: dict[str, Any], page: Any) -> None:  # noqa: F811
    admin = kefu["admin"]
    people = []
    for _ in range(2):
        customer = WebChatClient(kefu["base"])
        customer.start()
        say(customer, "发货要多久")
        people.append(customer.user_id)
    group_id = _group_of(kefu["db"], "直播群A", people)
    login_first_time(page, admin)

    page.goto(admin + "/admin/campaign/new/")
    options = page.inner_text("#audience")
    assert "直播群A · 直播群（2 人）" in options and "新品尝鲜群 · 普通群（0 人）" in options
    page.fill("#name", "双十二预热")
    page.select_option("#audience", value=f"group:{group_id}")
    page.wait_for_selector("#audience-count:has-text('现在 2 人')")
    page.fill("#text", "{nickname}您好，送您一张券 {coupon}")
    page.fill("#run_at", "2020-01-01 10:00:00")
    page.click(SUBMIT)
    body = page.inner_text("body")
    assert "没有选择要发的券" in body and "已经过去" in body
    assert "/admin/campaign/new/" in page.url  # nothing saved

    page.select_option("#coupon", label="新人满100减10")
    page.fill("#run_at", "")
    page.select_option("#audience", label="新品尝鲜群 · 普通群（0 人）")
    page.click(SUBMIT)
    page.wait_for_selector("text=这个活动还不能发送")  # saved as a draft, with the warning
    page.goto(admin + "/admin/campaign/")
    page.click("a[title='查看记录'], a[title='View Record']")
    page.click("#do-schedule")
    assert "0 人" in page.inner_text("#campaign-problems")
    assert page.query_selector("button[name=do-confirm]") is None

    page.click("text=去修改")
    page.select_option("#audience", value=f"group:{group_id}")
    page.click(SUBMIT)
    page.goto(admin + "/admin/campaign/")
    page.click("a[title='查看记录'], a[title='View Record']")
    page.click("#do-schedule")
    assert "送您一张券 K" in page.inner_text("#preview-text")
    assert "{coupon}" in page.inner_text("#preview-values")
    page.check("input[name=confirmed]")
    page.click("button[name=do-confirm]")
    page.wait_for_selector("text=已安排发送给 2 位顾客")
    assert "已排期" in page.inner_text("body")


def test_an_faq_question_naming_the_service_is_answered_and_a_request_handed_off(kefu: dict[str, Any]) -> None:  # noqa: F811
    customer = WebChatClient(kefu["base"])
    customer.start()
    replies = customer.send("客服几点上班").get("replies") or []
    for _ in range(180):  # the first question of a fresh process builds the FAQ index: a late reply is polled
        if replies:
            break
        time.sleep(0.5)
        replies = customer.poll()
    assert "人工客服工作时间" in replies[0]["text"]
    handed = customer.send("转人工").get("replies") or []
    assert handed and "人工客服工作时间" not in handed[0]["text"]
    assert "转接" in handed[0]["text"] or "排在第" in handed[0]["text"] or "服务时间" in handed[0]["text"]
