"""The admin panel's security in a real browser (headless Chromium through Playwright),
against a `kefu run` subprocess on a fresh database (issue 23):

- the two stored XSS reported: an agent named `<img onerror=…>` in the 已转给 … line after a
  transfer, and an FAQ file whose duplicate id (and file name) is markup in the import error;
  both show as text and run nothing;
- the Content-Security-Policy refuses inline script even where markup did slip into a page;
- the panel's own clicks still work under it (bulk actions, delete with its confirm), with no
  refusal reported in the console.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import pytest

from adapters.web_client import WebChatClient
from tests.e2e.test_browser import browser, kefu, login_first_time, say  # noqa: F401  (fixtures)

AGENT_NAME = '<img src=x onerror="window.__xss=1">'
DUPLICATE_ID = "<svg onload=window.__xss=2>"
FILE_NAME = "<img src=x onerror=window.__xss=3>.jsonl"


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:  # noqa: F811
    """A page that records dialogs (answered from `page.answers`, dismissed when none is
    left) and the policy's refusals, instead of failing on them."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="zh-CN")
    page = context.new_page()
    page.set_default_timeout(15000)
    page.dialogs, page.answers, page.refused = [], [], []

    def answer(dialog: Any) -> None:
        page.dialogs.append(dialog.message)
        dialog.accept() if page.answers and page.answers.pop(0) else dialog.dismiss()

    page.on("dialog", answer)
    page.on("console", lambda m: page.refused.append(m.text) if "Content Security Policy" in m.text else None)
    yield page
    context.close()


def with_database(url: str) -> Any:
    from bot.core import db

    return db.connect(url)


def ran_nothing(page: Any) -> bool:
    return page.evaluate("window.__xss") is None and page.dialogs == []


def test_an_agent_named_with_markup_shows_as_text_after_a_transfer(kefu: dict[str, Any], page: Any) -> None:  # noqa: F811
    customer = WebChatClient(kefu["base"])
    customer.start()
    say(customer, "你好")
    database = with_database(kefu["db"])
    from bot.core.models import Agent

    evil = Agent.create(name="evil", display_name=AGENT_NAME, channel="web", im_user_id="agent-evil", max_open=5,
                        status="online")
    database.close()
    login_first_time(page, kefu["admin"])
    page.goto(kefu["admin"] + "/admin/conversation/")
    page.click("a[href*='/admin/conversation/details/']")
    page.select_option("#agent_id", str(evil.id))
    page.click("form[action*='reassign'] button[type=submit]")
    flash = page.wait_for_selector(".alert-success")
    assert ran_nothing(page)
    assert AGENT_NAME in flash.inner_text()  # the name, as the operator typed it
    assert page.locator(".alert img").count() == 0
    assert page.refused == []  # escaped: nothing for the policy to refuse


def test_an_faq_file_with_markup_in_its_id_and_name_shows_as_text(kefu: dict[str, Any], page: Any) -> None:  # noqa: F811
    line = json.dumps({"id": DUPLICATE_ID, "questions": ["发货要多久"], "answer": "两天", "category": "物流问题"})
    login_first_time(page, kefu["admin"])
    page.goto(kefu["admin"] + "/admin/faq-tools/")
    page.set_input_files("input[type=file][name=file]", files=[
        {"name": FILE_NAME, "mimeType": "application/x-ndjson", "buffer": f"{line}\n{line}\n".encode()}])
    page.click("form[action*='import'] button[type=submit]")
    flash = page.wait_for_selector(".alert-danger").inner_text()
    assert ran_nothing(page)
    assert DUPLICATE_ID in flash and FILE_NAME in flash
    assert page.locator(".alert svg, .alert img").count() == 0
    assert page.refused == []


def test_the_policy_refuses_inline_script_that_slipped_into_a_page(kefu: dict[str, Any], page: Any) -> None:  # noqa: F811
    """Markup that escaped escaping still cannot run: no 'unsafe-inline' for scripts."""
    login_first_time(page, kefu["admin"])
    page.goto(kefu["admin"] + "/admin/faq/")
    page.evaluate("""() => {
        const box = document.createElement("div");
        box.innerHTML = '<img src="/kefu-static/none.png" onerror="window.__xss = 4">';
        document.body.appendChild(box);
        const script = document.createElement("script");
        script.textContent = "window.__xss = 5";
        document.body.appendChild(script);
    }""")
    page.wait_for_timeout(500)
    assert page.evaluate("window.__xss") is None
    assert page.refused, "the browser should report the refused inline script"


def test_the_panels_own_clicks_work_under_the_policy(kefu: dict[str, Any], page: Any) -> None:  # noqa: F811
    database = with_database(kefu["db"])
    from bot.core.models import Faq
    from tests.factories import make_faq

    keep = make_faq("顺丰包邮", ["用什么快递"])
    gone = make_faq("七天无理由", ["能退货吗"])
    database.close()
    login_first_time(page, kefu["admin"])

    page.goto(kefu["admin"] + "/admin/faq/")
    page.check(f"input.action-checkbox[value='{keep.id}']")
    page.click("li:has([data-kefu-action=disable]) > a.dropdown-toggle")
    page.answers.append(True)
    page.click("[data-kefu-action=disable]")  # confirms "停用所选 FAQ？", then posts the action form
    page.wait_for_selector(".alert-success")
    database = with_database(kefu["db"])
    assert not Faq.get_by_id(keep.id).enabled and Faq.get_by_id(gone.id).enabled
    database.close()

    delete = f"tr:has(input.action-checkbox[value='{gone.id}']) button[data-kefu-confirm]"
    page.answers.append(False)  # the operator changes their mind: nothing is deleted
    page.click(delete)
    page.wait_for_timeout(500)
    assert len(page.dialogs) == 2
    page.answers.append(True)
    page.click(delete)
    page.wait_for_selector(".alert-success")
    database = with_database(kefu["db"])
    assert Faq.get_or_none(Faq.id == gone.id) is None and Faq.get_or_none(Faq.id == keep.id) is not None
    database.close()
    assert page.refused == []
