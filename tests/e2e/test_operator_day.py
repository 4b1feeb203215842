"""An operator's day in a real browser (issue 25), against `kefu run` on a fresh demo database:

- a campaign refused for each bad input (a {coupon} with no coupon, a time already past, an
  empty group: the audience is a list, so an unknown group cannot be typed), then sent to the
  right count after its preview and a confirmation naming that count;
- 客服几点上班 answered by its FAQ, 转人工 handed to a person.
"""

from __future__ import annotations

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


def test_an_faq_question_naming_the_service_is_answered_and_a_request_handed_off(
        kefu: dict[str, Any], page: Any) -> None:  # noqa: F811
    """On the chat page a customer sees: 客服几点上班 contains 客服 but is answered by its FAQ;
    the page's own 转人工 button hands the conversation to a person (issue 25)."""
    page.goto(kefu["base"] + "/chat/web")
    page.fill("#text", "客服几点上班")
    page.press("#text", "Enter")
    # the first question of a fresh process builds the FAQ index: a late answer arrives by polling
    page.wait_for_selector("#log >> text=人工客服工作时间", timeout=180_000)
    page.click("button[data-say=转人工]")
    page.wait_for_function(
        """() => {
            const rows = [...document.querySelectorAll('#log .row')];
            const asked = rows.map(r => r.classList.contains('me') && r.textContent.trim() === '转人工');
            const after = rows.slice(asked.lastIndexOf(true) + 1).map(r => r.textContent).join(' ');
            return asked.includes(true) && /转接|排在第|排队|服务时间/.test(after);
        }""", timeout=30_000)
    log = page.inner_text("#log")
    assert log.count("人工客服工作时间") == 1, log  # 转人工 is a request, not an FAQ question
