"""The agents' workbench (issue 22): agents sign in and see only their own conversations
and the queue; a reply from the workbench and one through the IM relay are one state; a
guessed id gets nothing; every action needs the CSRF token; customer text stays text."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from admin import users
from bot import db
from bot.cli import main
from bot.models import AdminUser, Conversation, Message, Outbox
from tests.admin.conftest import PASSWORD, login
from tests.bot.test_scenarios import Shop, conversation_of
from tests.factories import make_agent, shop_faqs

_CSRF = re.compile(r'data-csrf="([^"]+)"')


class Desk:
    """An agent signed in to the workbench."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        page = client.get("/admin/workbench/")
        assert page.status_code == 200, page.status_code
        self.csrf = _CSRF.search(page.get_data(as_text=True)).group(1)  # type: ignore[union-attr]

    def get(self, path: str) -> Any:
        return self.client.get("/admin/workbench" + path)

    def post(self, path: str, csrf: bool = True, **fields: str) -> Any:
        if csrf:
            fields["csrf_token"] = self.csrf
        return self.client.post("/admin/workbench" + path, data=fields)


@pytest.fixture
def shop(dispatcher, fake_clock) -> Shop:  # type: ignore[no-untyped-def]
    shop_faqs()
    return Shop(dispatcher)


def desk_for(app: Flask, name: str) -> Desk:
    agent = make_agent(name, f"agent-{name}")
    users.create_user(f"u-{name}", PASSWORD, "agent", agent_id=agent.id)
    client = app.test_client()
    assert login(client, f"u-{name}").status_code == 302
    return Desk(client)


@pytest.fixture
def two_desks(app: Flask, shop: Shop) -> tuple[Desk, Desk]:
    mei, qiang = desk_for(app, "mei"), desk_for(app, "qiang")
    shop.says("c1", "转人工")  # round-robin: c1 to mei, c2 to qiang
    shop.says("c2", "<script>alert(1)</script>转人工")
    shop.says("c2", "转人工")
    return mei, qiang


def test_each_agent_sees_only_their_own_conversations(two_desks: tuple[Desk, Desk]) -> None:
    mei, qiang = two_desks
    c1, c2 = conversation_of("c1"), conversation_of("c2")
    assert c1.agent_id != c2.agent_id
    mine = mei.get("/inbox.json").get_json()
    assert [r["id"] for r in mine["mine"]] == [c1.id] and mine["me"]["name"] == "mei"
    assert mine["mine"][0]["unread"] >= 1
    assert [r["id"] for r in qiang.get("/inbox.json").get_json()["mine"]] == [c2.id]


def test_a_guessed_id_opens_and_acts_on_nothing(two_desks: tuple[Desk, Desk]) -> None:
    mei, _ = two_desks
    other = conversation_of("c2")
    assert mei.get(f"/conversation.json?id={other.id}").status_code == 404
    assert mei.get("/conversation.json?id=99999").status_code == 404
    before = Message.select().count()
    for action, fields in (("reply", {"text": "hi", "client_id": "guess-0001"}), ("resolve", {}),
                           ("transfer", {"agent_id": "1", "note": ""}), ("claim", {})):
        assert mei.post(f"/conversation/{action}", id=str(other.id), **fields).status_code in (404, 409), action
    assert Message.select().count() == before
    assert Conversation.get_by_id(other.id).status == "assigned"


def test_every_action_needs_the_csrf_token(two_desks: tuple[Desk, Desk]) -> None:
    mei, _ = two_desks
    mine = conversation_of("c1")
    assert mei.post("/conversation/reply", id=str(mine.id), csrf=False, text="hi", client_id="no-token-01").status_code == 400
    assert mei.post("/conversation/resolve", id=str(mine.id), csrf=False).status_code == 400
    assert mei.post("/status", csrf=False, status="away").status_code == 400
    assert Conversation.get_by_id(mine.id).status == "assigned"


def test_a_workbench_reply_and_an_im_reply_are_one_thread(two_desks: tuple[Desk, Desk], shop: Shop) -> None:
    mei, _ = two_desks
    mine = conversation_of("c1")
    assert mei.post("/conversation/reply", id=str(mine.id), text="您好，我是小美", client_id="reply-0001").get_json()["ok"]
    again = mei.post("/conversation/reply", id=str(mine.id), text="您好，我是小美", client_id="reply-0001").get_json()
    assert again["duplicate"] is True  # a resent click sends once
    assert [r.content["text"] for r in Outbox.select().where(Outbox.recipient == "c1")].count("您好，我是小美") == 1
    shop.says("agent-mei", "这是从手机上回复的")
    thread = mei.get(f"/conversation.json?id={mine.id}").get_json()
    texts = [(m["author"], m["text"]) for m in thread["messages"]]
    assert ("customer", "转人工") in texts
    assert ("agent", "您好，我是小美") in texts and ("agent", "这是从手机上回复的") in texts
    assert thread["customer"]["name"] and "level" in thread["customer"]


def test_resolve_and_transfer_with_a_note(two_desks: tuple[Desk, Desk], shop: Shop) -> None:
    mei, qiang = two_desks
    c1 = conversation_of("c1")
    qiang_id = c1.agent_id + 1 if c1.agent_id == 1 else 1
    moved = mei.post("/conversation/transfer", id=str(c1.id), agent_id=str(qiang_id), note="老顾客，想换货").get_json()
    assert moved["ok"] and Conversation.get_by_id(c1.id).agent_id == qiang_id
    assert any("老顾客，想换货" in t for t in shop.inbox("agent-qiang"))
    assert qiang.post("/conversation/resolve", id=str(c1.id)).get_json()["ok"]
    assert Conversation.get_by_id(c1.id).status == "resolved"
    assert any("1-5" in t for t in shop.inbox("c1"))


def test_an_agent_claims_from_the_queue(app: Flask, shop: Shop) -> None:
    mei = desk_for(app, "mei")
    make_agent("full", "agent-full", status="offline")
    from bot.models import Agent

    Agent.update(status="away").where(Agent.name == "mei").execute()
    shop.says("c9", "转人工")
    queued = conversation_of("c9")
    assert queued.status == "queued"
    assert [r["id"] for r in mei.get("/inbox.json").get_json()["queue"]] == [queued.id]
    assert mei.get(f"/conversation.json?id={queued.id}").status_code == 200  # readable before claiming
    assert mei.post("/conversation/claim", id=str(queued.id)).get_json()["ok"]
    assert Conversation.get_by_id(queued.id).status == "assigned"


def test_an_agent_is_kept_to_the_workbench(two_desks: tuple[Desk, Desk]) -> None:
    mei, _ = two_desks
    for path in ("/admin/faq/", "/admin/conversation/", "/admin/message/", "/admin/customer/", "/admin/dashboard.json"):
        assert mei.client.get(path).status_code == 403, path
    assert mei.client.get("/admin/").headers["Location"].endswith("/admin/workbench/")


def test_customer_html_is_text_in_the_workbench(two_desks: tuple[Desk, Desk], app: Flask) -> None:
    _, qiang = two_desks
    c2 = conversation_of("c2")
    page = qiang.get("/").get_data(as_text=True)
    assert "<script>alert(1)" not in page  # nothing a customer wrote is rendered by the server
    thread = qiang.get(f"/conversation.json?id={c2.id}")
    assert thread.mimetype == "application/json"
    assert any(m["text"].startswith("<script>") for m in thread.get_json()["messages"])
    script = app.test_client().get("/kefu-static/kefu-workbench.js").get_data(as_text=True)
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script and "textContent" in script


def test_an_admin_sees_every_conversation_but_cannot_reply(two_desks: tuple[Desk, Desk], admin_panel: Any) -> None:
    body = admin_panel.get("/admin/workbench/inbox.json").get_json()
    assert {r["id"] for r in body["mine"]} == {conversation_of("c1").id, conversation_of("c2").id}
    token = _CSRF.search(admin_panel.get("/admin/workbench/").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    refused = admin_panel.client.post("/admin/workbench/conversation/reply",
                                      data={"id": str(conversation_of("c1").id), "csrf_token": token, "text": "x", "client_id": "admin-0001"})
    assert refused.status_code == 403


def test_cli_adds_an_agent_panel_user(tmp_path: Path, database_url: str, database: Any) -> None:
    make_agent("mei", "agent-mei")
    env = {"KEFU_DATABASE_URL": database_url, "KEFU_DATA_DIR": str(tmp_path / "data"), "KEFU_LOG_FORMAT": "text"}

    def run(*args: str) -> Any:
        result = CliRunner().invoke(main, list(args), env=env, input="long-password-1\n", catch_exceptions=False)
        if not db.database.obj.is_closed():
            db.database.obj.close()
        return result

    ok = run("admin-user", "add", "xm", "--role", "agent", "--agent", "mei", "--password-stdin")
    assert ok.exit_code == 0, ok.output
    db.database.obj.connect(reuse_if_open=True)
    assert AdminUser.get(AdminUser.username == "xm").agent_id is not None
    assert run("admin-user", "add", "xm2", "--role", "agent", "--agent", "mei", "--password-stdin").exit_code != 0
    assert run("admin-user", "add", "xm3", "--role", "agent", "--password-stdin").exit_code != 0
    assert run("admin-user", "add", "xm4", "--role", "agent", "--agent", "nobody", "--password-stdin").exit_code != 0
