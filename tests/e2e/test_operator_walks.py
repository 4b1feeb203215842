"""The rest of an operator's day in a real browser (issue 25), against `kefu run` on a fresh
demo database (with its four weeks of history):

- an FAQ whose phrasing another FAQ already answers is saved with a warning naming both answers;
- an unanswered group the bot was not sure about starts with nothing pre-selected, and one
  click (新建 FAQ) resolves it; the next customer is answered;
- settings saved through their form, the new values in force;
- the dashboard's shop figures for a chosen range match a seeded, hand-counted history;
- a handed-off customer waiting for the agent is acknowledged once, and shown waiting on the
  conversation list and the dashboard.

(The campaign walk and 客服几点上班 / 转人工 are in test_operator_day.py.)
"""

from __future__ import annotations

import re
import time
from typing import Any, Iterator

import pytest

from adapters.web_client import WebChatClient
from tests.e2e.test_browser import browser, kefu, login_first_time, page, say  # noqa: F401  (fixtures)

SUBMIT = "input[type=submit][value]:not([name])"


@pytest.fixture
def shop_db(kefu: dict[str, Any]) -> Iterator[None]:  # noqa: F811
    """This process bound to the running kefu's database (to seed and to check)."""
    from bot.core import db

    database = db.connect(kefu["db"])
    yield
    database.close()


def always_open() -> None:
    """Business hours open whatever the clock says: a handoff reaches the online demo agent
    (closed, it only queues; the walk must not depend on the time of day)."""
    from bot.core import settings

    settings.put("business_hours", {**settings.get("business_hours"), "always_open": True})


def test_an_faq_that_another_answers_is_saved_with_a_warning(kefu: dict[str, Any], page: Any) -> None:  # noqa: F811
    login_first_time(page, kefu["admin"])
    page.goto(kefu["admin"] + "/admin/faq/new/")
    page.select_option("#category", "物流问题")
    page.fill("#answer", "顺丰需补 10 元运费。")
    page.fill("#phrasings", "发货要多久")  # a demo FAQ's own phrasing
    page.click(SUBMIT)
    warning = page.inner_text(".alert-warning")
    assert "问法「发货要多久」" in warning and "顺丰需补 10 元运费。" in warning and "那条答案" in warning
    page.goto(kefu["admin"] + "/admin/faq/?search=顺丰需补")
    assert "顺丰需补 10 元运费" in page.inner_text("body")  # saved anyway


def test_an_unsure_group_has_nothing_preselected_and_one_click_resolves_it(
        kefu: dict[str, Any], page: Any) -> None:  # noqa: F811
    for n in range(2):
        customer = WebChatClient(kefu["base"])
        customer.start()
        say(customer, "能开纸质收据吗")
    login_first_time(page, kefu["admin"])
    page.goto(kefu["admin"] + "/admin/unanswered/groups/")
    group = page.locator(".unanswered-group", has_text="能开纸质收据吗")
    assert group.locator("select[name=faq_id]").input_value() == ""  # no wrong FAQ one click away
    assert group.locator("select[name=category]").input_value() == ""
    group.locator("select[name=category]").select_option("购买操作")
    group.locator("textarea[name=answer]").fill("可以的，下单时备注“纸质收据”，随货寄出。")
    group.locator("button", has_text="新建 FAQ").click()
    page.wait_for_url("**/admin/**")
    page.goto(kefu["admin"] + "/admin/unanswered/groups/")
    assert page.locator(".unanswered-group", has_text="能开纸质收据吗").count() == 0
    deadline = time.time() + 120  # the bot's process picks the FAQ up within seconds
    while True:
        customer = WebChatClient(kefu["base"])  # a new customer each time (see test_browser)
        customer.start()
        replies = customer.send("能开纸质收据吗").get("replies") or []
        if any("随货寄出" in r["text"] for r in replies):
            break
        assert time.time() < deadline, replies
        time.sleep(2)


def test_settings_saved_through_their_form(kefu: dict[str, Any], page: Any, shop_db: None) -> None:  # noqa: F811
    from bot.core import settings

    login_first_time(page, kefu["admin"])
    page.goto(kefu["admin"] + "/admin/settings/")
    page.fill("[name=welcome_message]", "您好，这里是小蜜优选～")
    page.fill("[name=agent_sla_seconds]", "240")
    page.fill("[name=extra_agent_idle_minutes]", "15")  # settings without a section of their own
    page.fill("[name=extra_handoff_ack_message]", "收到啦，客服马上就来")
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector(".alert")
    assert page.locator(".alert-danger").count() == 0, page.inner_text("body")[:500]
    settings.clear_cache()
    assert settings.get("welcome_message") == "您好，这里是小蜜优选～"
    assert (settings.get("agent_sla_seconds"), settings.get("agent_idle_minutes")) == (240, 15)
    assert settings.get("handoff_ack_message") == "收到啦，客服马上就来"
    # in force: a new visitor's chat page greets with the new text
    page.goto(kefu["base"] + "/chat/web")
    page.wait_for_selector("text=这里是小蜜优选")


def test_dashboard_figures_match_a_hand_counted_history(kefu: dict[str, Any], page: Any, shop_db: None) -> None:  # noqa: F811
    from bot.core.db import transaction
    from tests.bot.agents.test_kpi_shop import seed_counted_history

    with transaction():
        seed_counted_history(2025)  # a year before the demo's four weeks
    login_first_time(page, kefu["admin"])
    page.goto(kefu["admin"] + "/admin/")
    page.fill("#from", "2025-11-23")
    page.fill("#to", "2025-11-24")
    page.click("#period-form button[type=submit]")
    page.wait_for_url("**from=2025-11-23**")

    def kpi(name: str) -> str:
        return page.inner_text(f"#shop-period [data-kpi={name}]").strip()

    assert (kpi("customers"), kpi("self_service_rate"), kpi("handoff_rate")) == ("3", "50.0%", "66.7%")
    assert (kpi("first_response_median"), kpi("first_response_p90")) == ("1.0 分钟", "1.7 分钟")
    assert (kpi("csat"), kpi("rated")) == ("4.0", "3")
    bars = {int(b.get_attribute("data-hour")): int(b.get_attribute("data-count"))
            for b in page.locator("#hour-chart .bar").all()}
    assert len(bars) == 24 and (bars[10], bars[14], bars[23]) == (4, 1, 1) and sum(bars.values()) == 6
    # the demo's own four weeks fill the default range: a living shop
    page.goto(kefu["admin"] + "/admin/")
    assert int(kpi("customers")) > 0


def test_a_waiting_customer_is_acknowledged_and_shown_waiting(
        kefu: dict[str, Any], page: Any, shop_db: None) -> None:  # noqa: F811
    always_open()
    time.sleep(3.5)  # the running kefu reads settings through a 3 s cache
    customer = WebChatClient(kefu["base"])
    customer.start()
    say(customer, "转人工")  # to the online demo agent, who does not answer
    say(customer, "我的订单还没发货")  # answered by the acknowledgement alone
    say_again = customer.send("在吗")  # once per waiting stretch: no second one
    assert say_again.get("replies") == []
    login_first_time(page, kefu["admin"])
    page.goto(kefu["admin"] + "/admin/conversation/")
    row = page.locator("tr", has_text=customer.user_id[-6:]).first
    assert re.search(r"\d+ 秒|\d+ 分钟", row.inner_text()), row.inner_text()  # the 等待 column
    page.goto(kefu["admin"] + "/admin/")
    assert int(page.inner_text("[data-kpi=waiting]")) >= 1
    from bot.core.models import Message

    acks = Message.select().where((Message.peer_id == customer.user_id) & Message.text.contains("客服马上回复您"))
    assert acks.count() == 1
