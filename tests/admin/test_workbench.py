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
from bot.core import db
from bot.cli import main
from bot.core.models import AdminUser, Conversation, Message, Outbox
from tests.admin.conftest import PASSWORD, login
from tests.bot.conversation.test_scenarios import Shop, conversation_of
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
    from bot.core.models import Agent

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


def test_one_click_teaches_the_bot_what_the_agent_answered(app: Flask, shop: Shop) -> None:
    from bot.core.models import Faq, FaqQuestion, UnansweredQuestion

    mei, qiang = desk_for(app, "mei"), desk_for(app, "qiang")
    shop.says("c5", "你们老板是谁呀")  # the bot cannot answer: an unanswered question
    shop.says("c5", "转人工")
    mine = conversation_of("c5")
    owner, other = (mei, qiang) if mine.agent.name == "mei" else (qiang, mei)
    learnable = owner.get(f"/conversation.json?id={mine.id}").get_json()["learnable"]
    asked = next(q for q in learnable if q["text"] == "你们老板是谁呀")
    # not before the agent said anything (no answer to teach), not by the other agent, not without CSRF
    refused = owner.post("/conversation/learn", id=str(mine.id), question_id=str(asked["id"]))
    assert refused.status_code == 400 and refused.get_json()["error"]
    assert other.post("/conversation/learn", id=str(mine.id), question_id=str(asked["id"])).status_code == 404
    owner.post("/conversation/reply", id=str(mine.id), text="我们老板是张三", client_id="teach-0001")
    assert owner.post("/conversation/learn", csrf=False, id=str(mine.id), question_id=str(asked["id"])).status_code == 400
    taught = owner.post("/conversation/learn", id=str(mine.id), question_id=str(asked["id"])).get_json()
    faq = Faq.get_by_id(taught["faq_id"])
    assert faq.answer == "我们老板是张三"
    assert [q.text for q in FaqQuestion.select().where(FaqQuestion.faq == faq)] == ["你们老板是谁呀"]
    row = UnansweredQuestion.get_by_id(asked["id"])
    assert row.resolved and row.resolved_at is not None  # the learning figures count it
    assert owner.get(f"/conversation.json?id={mine.id}").get_json()["learnable"] == []


def test_one_click_adds_the_question_as_a_phrasing_of_the_faq_sent(app: Flask, shop: Shop) -> None:
    from bot.core.models import Faq, FaqQuestion

    mei = desk_for(app, "mei")
    shop.says("c6", "你们老板是谁呀")
    shop.says("c6", "转人工")
    mine = conversation_of("c6")
    shipping = Faq.select().where(Faq.category == "物流问题").first()
    mei.post("/conversation/reply", id=str(mine.id), text=shipping.answer, client_id="teach-0002", faq_id=str(shipping.id))
    asked = mei.get(f"/conversation.json?id={mine.id}").get_json()["learnable"][0]
    assert asked["faq_id"] == shipping.id  # the FAQ the agent answered with
    assert mei.post("/conversation/learn", id=str(mine.id), question_id=str(asked["id"]),
                    faq_id=str(shipping.id)).get_json()["ok"]
    assert "你们老板是谁呀" in [q.text for q in FaqQuestion.select().where(FaqQuestion.faq == shipping)]


def test_quick_phrases_for_the_shop_and_per_agent(app: Flask, shop: Shop, admin_panel: Any) -> None:
    mei, qiang = desk_for(app, "mei"), desk_for(app, "qiang")
    token = _CSRF.search(admin_panel.get("/admin/workbench/").get_data(as_text=True)).group(1)  # type: ignore[union-attr]
    shop_wide = admin_panel.client.post("/admin/workbench/phrases/add", data={"csrf_token": token, "text": "亲，稍等一下哦"})
    assert shop_wide.get_json()["ok"]
    assert mei.post("/phrases/add", text="<b>七天无理由</b>退货").get_json()["ok"]
    assert mei.post("/phrases/add", text="<b>七天无理由</b>退货").get_json()["ok"]  # twice keeps one
    assert mei.post("/phrases/add", csrf=False, text="没有令牌").status_code == 400
    assert [p["text"] for p in mei.get("/phrases.json").get_json()["phrases"]] == ["<b>七天无理由</b>退货", "亲，稍等一下哦"]
    assert [p["text"] for p in mei.get("/phrases.json?q=稍等").get_json()["phrases"]] == ["亲，稍等一下哦"]
    assert [p["text"] for p in qiang.get("/phrases.json").get_json()["phrases"]] == ["亲，稍等一下哦"]
    mine_id = mei.get("/phrases.json?q=退货").get_json()["phrases"][0]["id"]
    shop_id = shop_wide.get_json()["id"]
    assert qiang.post("/phrases/delete", phrase_id=str(mine_id)).status_code == 404  # not his
    assert mei.post("/phrases/delete", phrase_id=str(shop_id)).status_code == 404  # the shop's
    assert mei.post("/phrases/delete", phrase_id=str(mine_id)).get_json()["ok"]
    assert [p["text"] for p in mei.get("/phrases.json").get_json()["phrases"]] == ["亲，稍等一下哦"]


def test_the_send_window_beside_an_im_thread(database: Any, fake_clock: Any) -> None:
    from datetime import timedelta

    from bot.conversation import workbench
    from bot.core import clock
    from bot.core.models import Customer

    now = clock.now()
    customer = Customer.create(channel="kf", external_id="kf-1", last_inbound_at=now - timedelta(hours=47))
    conversation = Conversation.create(customer=customer, channel="kf", status="assigned")
    Message.create(channel="kf", external_id="m1", customer=customer, conversation=conversation, direction="in",
                   author="customer", text="在吗", created_at=now - timedelta(hours=47))
    shown = workbench.window(conversation, "wechat_kf")
    assert shown == {"open_until": (now + timedelta(hours=1)).isoformat(), "open": True, "sends_left": 5}
    fake_clock.advance(hours=2)
    assert workbench.window(conversation, "wechat_kf")["open"] is False
    mp = workbench.window(conversation, "wechat_mp")  # 公众号: the window only, no count
    assert mp is not None and mp["sends_left"] is None
    assert workbench.window(conversation, "web") is None
