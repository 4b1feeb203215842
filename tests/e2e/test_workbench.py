"""The agents' workbench in a real browser (issue 22), against `kefu run` on a fresh demo
database: the demo's two web agents (小美, 阿力) sign in to the workbench in two browser
contexts while two customers write at once, one in the chat page and one through the web API.

- a handoff appears live (no reload) in the inbox of the agent it was assigned to, not the other's;
- a reply typed in the workbench reaches the customer's chat page;
- a reply typed through the IM relay (the agent's own web chat link from `kefu agent list`)
  appears in the workbench thread;
- an FAQ suggestion is sent in one click; transfer with a note, then resolve;
- the customer's reload shows the whole history, their own messages included;
- customer HTML shows as text in the workbench and runs nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import parse_qs, urlsplit

import pytest

from adapters.web_client import WebChatClient
from tests.e2e.test_browser import CHROMIUM_ARGS, browser, kefu  # noqa: F401  (fixtures)

AGENT_PASSWORD = "agent-desk-pass-9"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def _cli(tmp_path: Path, database_url: str, *args: str, stdin: str = "") -> str:
    env = dict(os.environ, KEFU_DATA_DIR=str(tmp_path / "data"), KEFU_DATABASE_URL=database_url, KEFU_LOG_FORMAT="text")
    done = subprocess.run([sys.executable, "-m", "bot.cli", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _assigned(database_url: str, user_id: str) -> tuple[int, str]:
    """The customer's open conversation once a person has it: (id, agent's name)."""
    from bot.core import db
    from bot.core.models import Conversation, Customer

    deadline = time.time() + 30
    while True:
        database = db.connect(database_url)
        try:
            found = (Conversation.select().join(Customer).where((Customer.external_id == user_id)
                                                                & (Conversation.status == "assigned")).first())
            if found is not None:
                return found.id, found.agent.name
        finally:
            database.close()
        assert time.time() < deadline, f"{user_id} was not handed to an agent"
        time.sleep(0.3)


@pytest.fixture
def desks(kefu: dict[str, Any], browser: Any, tmp_path: Path) -> Iterator[dict[str, Any]]:  # noqa: F811
    """Both demo agents signed in to the workbench, each in their own browser context."""
    pages: dict[str, Any] = {}
    contexts = []
    for name in ("xiaomei", "ali"):
        _cli(tmp_path, kefu["db"], "admin-user", "add", f"desk-{name}", "--role", "agent", "--agent", name,
             "--password-stdin", stdin=AGENT_PASSWORD + "\n")
        context = browser.new_context(viewport={"width": 1360, "height": 900}, locale="zh-CN")
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20000)
        page.goto(kefu["admin"] + "/admin/")
        page.fill("#username", f"desk-{name}")
        page.fill("#password", AGENT_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url("**/admin/workbench/")
        page.wait_for_selector("#wb-me:has-text('/5')")
        pages[name] = page
    yield pages
    for context in contexts:
        context.close()


def _relay_identity(tmp_path: Path, database_url: str, base: str, name: str) -> WebChatClient:
    """The agent's own web chat identity, from the chat link `kefu agent list` prints."""
    for line in _cli(tmp_path, database_url, "agent", "list").splitlines():
        row = json.loads(line)
        if row["name"] == name:
            fragment = parse_qs(urlsplit(row["chat_link"]).fragment)
            return WebChatClient(base, user_id=fragment["user_id"][0], token=fragment["token"][0])
    raise AssertionError(f"no agent {name}")


def _open(desk: Any, conversation_id: int) -> None:
    desk.click(f"#wb-mine li[data-id='{conversation_id}']")
    desk.wait_for_selector(f"#wb-mine li.active[data-id='{conversation_id}']")


def test_two_agents_two_customers_at_once(kefu: dict[str, Any], browser: Any, desks: dict[str, Any],  # noqa: F811
                                          tmp_path: Path) -> None:
    base, database_url = kefu["base"], kefu["db"]
    shopper_context = browser.new_context(locale="zh-CN")
    shopper = shopper_context.new_page()
    shopper.set_default_timeout(20000)
    shopper.goto(base + "/chat/web")
    shopper.wait_for_selector("text=欢迎光临")
    shopper.fill("#text", "我要转人工")
    shopper.press("#text", "Enter")
    a_user = shopper.evaluate("JSON.parse(localStorage.getItem('kefu-session-web')).user_id")
    a_id, a_agent = _assigned(database_url, a_user)

    other = WebChatClient(base)
    other.start()
    other.send("转人工")
    b_id, b_agent = _assigned(database_url, other.user_id)
    assert {a_agent, b_agent} == {"xiaomei", "ali"}  # round robin: one each

    # live: each handoff appears in its agent's inbox without a reload, and only there
    for conversation_id, name in ((a_id, a_agent), (b_id, b_agent)):
        desks[name].wait_for_selector(f"#wb-mine li[data-id='{conversation_id}']")
        for other_name, desk in desks.items():
            if other_name != name:
                assert desk.locator(f"#wb-mine li[data-id='{conversation_id}']").count() == 0

    # customer A writes HTML: the workbench shows it as text
    shopper.fill("#text", XSS)
    shopper.press("#text", "Enter")
    desk_a = desks[a_agent]
    _open(desk_a, a_id)
    desk_a.wait_for_selector("#wb-thread .wb-text:has-text('onerror')")
    assert XSS in desk_a.inner_text("#wb-thread")
    assert desk_a.locator("#wb-thread img, #wb-thread script").count() == 0
    assert desk_a.evaluate("window.__xss") is None

    # a reply from the workbench reaches the customer's chat page
    desk_a.fill("#wb-text", "您好，我是工作台的客服，请问有什么可以帮您？")
    desk_a.click("#wb-reply button[type=submit]")
    shopper.wait_for_selector("text=我是工作台的客服")

    # a reply through the IM relay (agent B's own chat link) appears in B's workbench
    desk_b = desks[b_agent]
    _open(desk_b, b_id)
    relay = _relay_identity(tmp_path, database_url, base, b_agent)
    relay.send("这条是从聊天链接回复的")
    desk_b.wait_for_selector("#wb-thread .wb-text:has-text('这条是从聊天链接回复的')")
    deadline = time.time() + 20
    while not any("从聊天链接回复" in m["text"] for m in other.poll()):
        assert time.time() < deadline, "the relayed reply did not reach customer B"
        time.sleep(0.3)

    # customer B asks an FAQ question; agent B sends the matcher's best answer in one click
    other.send("发货要多久")
    desk_b.wait_for_selector("#wb-suggestions .wb-suggestion-send")
    answer = desk_b.get_attribute("#wb-suggestions .wb-suggestion-send", "title")
    assert answer
    desk_b.click("#wb-suggestions .wb-suggestion-send")
    deadline = time.time() + 20
    while not any(m["text"] == answer and m.get("author") == "agent" for m in other.poll()):
        assert time.time() < deadline, "the suggested answer did not reach customer B"
        time.sleep(0.3)

    # transfer A to the other agent with a note: it leaves A's inbox and arrives in B's
    desk_a.select_option("#wb-transfer-to", label=desk_b.inner_text("#wb-me").split(" ")[0] + "（online）")
    desk_a.fill("#wb-transfer-note", "顾客问发票")
    desk_a.click("#wb-transfer")
    desk_b.wait_for_selector(f"#wb-mine li[data-id='{a_id}']")
    desk_a.wait_for_selector(f"#wb-mine li[data-id='{a_id}']", state="detached")
    _open(desk_b, a_id)
    desk_b.wait_for_selector("#wb-brief:has-text('顾客问发票')")
    assert XSS in desk_b.inner_text("#wb-thread") and desk_b.evaluate("window.__xss") is None

    # resolve: the customer is asked for a rating and the conversation leaves the inbox
    desk_b.click("#wb-resolve")
    shopper.wait_for_selector("text=请为本次服务打分")
    desk_b.wait_for_selector(f"#wb-mine li[data-id='{a_id}']", state="detached")

    # the customer reloads: the whole history, their own words included, HTML as text
    shopper.reload()
    shopper.wait_for_selector("text=我是工作台的客服")
    log = shopper.inner_text("#log")
    for words in ("我要转人工", XSS, "我是工作台的客服", "请为本次服务打分"):
        assert words in log, words
    assert shopper.evaluate("window.__xss") is None
    shopper_context.close()
