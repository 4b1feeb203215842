"""The WeCom (企业微信) app callback: encrypted URL check, documented samples, signatures,
dedup, the deadline, and sending through message/send."""

from __future__ import annotations

import time

import pytest

from adapters.sandbox.client import WeChatServer
from bot.core.models import Message, Outbox
from tests.adapters.wechat_kit import (AES_KEY, CORP_ID, MP_TOKEN, eventually, kefu_client, post, stand,
                                       wecom_channel, wecom_server)
from tests.factories import SHIPPING, shop_faqs

__all__ = ["stand"]

# From the 企业微信 documentation (接收消息与事件 / 消息格式), verbatim but for the content.
TEXT = """<xml>
   <ToUserName><![CDATA[toUser]]></ToUserName>
   <FromUserName><![CDATA[fromUser]]></FromUserName>
   <CreateTime>1348831860</CreateTime>
   <MsgType><![CDATA[text]]></MsgType>
   <Content><![CDATA[发货要多久]]></Content>
   <MsgId>1234567890123456</MsgId>
   <AgentID>1</AgentID>
</xml>"""
IMAGE = """<xml>
   <ToUserName><![CDATA[toUser]]></ToUserName>
   <FromUserName><![CDATA[fromUser]]></FromUserName>
   <CreateTime>1348831860</CreateTime>
   <MsgType><![CDATA[image]]></MsgType>
   <PicUrl><![CDATA[this is a url]]></PicUrl>
   <MediaId><![CDATA[media_id]]></MediaId>
   <MsgId>1234567890123456</MsgId>
   <AgentID>1</AgentID>
</xml>"""
SUBSCRIBE = """<xml>
   <ToUserName><![CDATA[toUser]]></ToUserName>
   <FromUserName><![CDATA[UserID]]></FromUserName>
   <CreateTime>1348831860</CreateTime>
   <MsgType><![CDATA[event]]></MsgType>
   <Event><![CDATA[subscribe]]></Event>
   <AgentID>1</AgentID>
</xml>"""
ENTER_AGENT = """<xml>
   <ToUserName><![CDATA[toUser]]></ToUserName>
   <FromUserName><![CDATA[FromUser]]></FromUserName>
   <CreateTime>1408091189</CreateTime>
   <MsgType><![CDATA[event]]></MsgType>
   <Event><![CDATA[enter_agent]]></Event>
   <EventKey><![CDATA[]]></EventKey>
   <AgentID>1</AgentID>
</xml>"""


@pytest.fixture
async def client(aiohttp_client, config, database, stand):
    shop_faqs()
    return await kefu_client(aiohttp_client, config, wecom_channel(stand.base))


async def test_url_check_answers_the_decrypted_echostr(client) -> None:
    params = wecom_server().echo_params("5927782489442352469")
    resp = await client.get("/wecom/corp", params=params)
    assert resp.status == 200 and await resp.text() == "5927782489442352469"
    resp = await client.get("/wecom/corp", params={**params, "msg_signature": "0" * 40})
    assert resp.status == 403


async def test_text_is_answered_passively_and_encrypted(client) -> None:
    server = wecom_server()
    status, body = await post(client, server, "/wecom/corp", TEXT)
    assert status == 200 and "<Encrypt>" in body and "发货" not in body
    reply = server.open_reply(body)
    assert reply["Content"] == SHIPPING and reply["ToUserName"] == "fromUser"
    stored = Message.get(Message.direction == "in")
    assert (stored.channel, stored.external_id, stored.peer_id) == ("corp", "1234567890123456", "fromUser")


@pytest.mark.parametrize("xml, kind", [(IMAGE, "image"), (SUBSCRIBE, "event"), (ENTER_AGENT, "event")])
async def test_documented_kinds_are_stored(client, xml: str, kind: str) -> None:
    status, _ = await post(client, wecom_server(), "/wecom/corp", xml)
    assert status == 200
    assert Message.get(Message.direction == "in").kind == kind


async def test_subscribe_gets_the_welcome(client) -> None:
    server = wecom_server()
    status, body = await post(client, server, "/wecom/corp", SUBSCRIBE)
    assert status == 200 and "欢迎" in server.open_reply(body)["Content"]


async def test_bad_signature_or_foreign_corp_is_refused_and_nothing_stored(client) -> None:
    server = wecom_server()
    params, body = server.sign(TEXT)
    resp = await client.post("/wecom/corp", params={**params, "msg_signature": "1" * 40}, data=body)
    assert resp.status == 403
    other_corp = WeChatServer(MP_TOKEN, "ww_other_corp", AES_KEY, enterprise=True)
    status, _ = await post(client, other_corp, "/wecom/corp", TEXT)
    assert status == 400  # decrypts, but names another corp
    assert Message.select().count() == 0


async def test_retries_are_handled_once(client) -> None:
    server = wecom_server()
    bodies = [await post(client, server, "/wecom/corp", TEXT) for _ in range(3)]
    assert {server.open_reply(b)["Content"] for _, b in bodies} == {SHIPPING}
    assert Message.select().where(Message.direction == "in").count() == 1


async def test_late_reply_is_sent_with_message_send(aiohttp_client, config, database, stand, dispatcher) -> None:
    shop_faqs()
    original = dispatcher.decide  # each message, alone or in a batch

    def slow(inbound, slot=None):
        time.sleep(0.5)
        return original(inbound, slot)

    dispatcher.decide = slow  # type: ignore[method-assign]
    client = await kefu_client(aiohttp_client, config, wecom_channel(stand.base, deadline=0.2), run_sender=True,
                               dispatcher=dispatcher)
    status, body = await post(client, wecom_server(), "/wecom/corp", TEXT)
    assert status == 200 and body == "success"
    assert await eventually(lambda: stand.sandbox.texts_to("fromUser") == [SHIPPING]
                            and Outbox.get().status == "sent")
    call = stand.sandbox.sends("/message/send")[0]
    assert call.body["agentid"] == 1000002 and call.params["access_token"]
    assert stand.sandbox.token_fetches == {f"{CORP_ID}:corp-secret": 1}
    assert Outbox.get().status == "sent"
