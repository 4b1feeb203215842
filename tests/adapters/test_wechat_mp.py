"""The Official Account callback: modes, message kinds (WeChat's documented XML samples),
signatures, hostile bodies, dedup of retries, and the deadline."""

from __future__ import annotations

import time

import pytest

from adapters.sandbox.client import WeChatServer
from bot.core.models import Conversation, Customer, Message, Outbox
from tests.adapters.wechat_kit import (AES_KEY, APP_ID, MP_TOKEN, eventually, kefu_client, mp_channel, post,
                                       stand, wechat)
from tests.factories import SHIPPING, shop_faqs

__all__ = ["stand"]

# Samples from the 公众号 documentation (接收普通消息 / 接收事件推送), verbatim but for the ids.
SAMPLES = {
    "text": """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1348831860</CreateTime>
  <MsgType><![CDATA[text]]></MsgType>
  <Content><![CDATA[this is a test]]></Content>
  <MsgId>1234567890123456</MsgId>
</xml>""",
    "image": """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1348831860</CreateTime>
  <MsgType><![CDATA[image]]></MsgType>
  <PicUrl><![CDATA[this is a url]]></PicUrl>
  <MediaId><![CDATA[media_id]]></MediaId>
  <MsgId>1234567890123456</MsgId>
</xml>""",
    "voice": """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1357290913</CreateTime>
  <MsgType><![CDATA[voice]]></MsgType>
  <MediaId><![CDATA[media_id]]></MediaId>
  <Format><![CDATA[Format]]></Format>
  <MsgId>1234567890123456</MsgId>
</xml>""",
    "video": """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1357290913</CreateTime>
  <MsgType><![CDATA[video]]></MsgType>
  <MediaId><![CDATA[media_id]]></MediaId>
  <ThumbMediaId><![CDATA[thumb_media_id]]></ThumbMediaId>
  <MsgId>1234567890123456</MsgId>
</xml>""",
    "shortvideo": """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1357290913</CreateTime>
  <MsgType><![CDATA[shortvideo]]></MsgType>
  <MediaId><![CDATA[media_id]]></MediaId>
  <ThumbMediaId><![CDATA[thumb_media_id]]></ThumbMediaId>
  <MsgId>1234567890123456</MsgId>
</xml>""",
    "location": """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1351776360</CreateTime>
  <MsgType><![CDATA[location]]></MsgType>
  <Location_X>23.134521</Location_X>
  <Location_Y>113.358803</Location_Y>
  <Scale>20</Scale>
  <Label><![CDATA[位置信息]]></Label>
  <MsgId>1234567890123456</MsgId>
</xml>""",
    "link": """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[fromUser]]></FromUserName>
  <CreateTime>1351776360</CreateTime>
  <MsgType><![CDATA[link]]></MsgType>
  <Title><![CDATA[公众平台官网链接]]></Title>
  <Description><![CDATA[公众平台官网链接]]></Description>
  <Url><![CDATA[url]]></Url>
  <MsgId>1234567890123456</MsgId>
</xml>""",
}

EVENTS = {
    "subscribe": """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[subscribe]]></Event>
</xml>""",
    "subscribe_qrscene": """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[subscribe]]></Event>
  <EventKey><![CDATA[qrscene_123123]]></EventKey>
  <Ticket><![CDATA[TICKET]]></Ticket>
</xml>""",
    "unsubscribe": """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456790</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[unsubscribe]]></Event>
</xml>""",
    "scan": """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[SCAN]]></Event>
  <EventKey><![CDATA[SCENE_VALUE]]></EventKey>
  <Ticket><![CDATA[TICKET]]></Ticket>
</xml>""",
    "click": """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[CLICK]]></Event>
  <EventKey><![CDATA[发货要多久]]></EventKey>
</xml>""",
    "view": """<xml>
  <ToUserName><![CDATA[toUser]]></ToUserName>
  <FromUserName><![CDATA[FromUser]]></FromUserName>
  <CreateTime>123456789</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[VIEW]]></Event>
  <EventKey><![CDATA[www.qq.com]]></EventKey>
</xml>""",
    "templatesendjobfinish": """<xml>
  <ToUserName><![CDATA[gh_7f083739789a]]></ToUserName>
  <FromUserName><![CDATA[oia2TjuEGTNoeX76QEjQNrcURxG8]]></FromUserName>
  <CreateTime>1395658920</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event>
  <MsgID>200163836</MsgID>
  <Status><![CDATA[success]]></Status>
</xml>""",
    "masssendjobfinish": """<xml>
  <ToUserName><![CDATA[gh_4d00ed8d6399]]></ToUserName>
  <FromUserName><![CDATA[oV5CrjpxgaGXNHIQigzNlgLTnwic]]></FromUserName>
  <CreateTime>1481013459</CreateTime>
  <MsgType><![CDATA[event]]></MsgType>
  <Event><![CDATA[MASSSENDJOBFINISH]]></Event>
  <MsgID>1000001625</MsgID>
  <Status><![CDATA[err(30003)]]></Status>
  <TotalCount>0</TotalCount>
  <FilterCount>0</FilterCount>
  <SentCount>0</SentCount>
  <ErrorCount>0</ErrorCount>
</xml>""",
}

MODES = ["plain", "compat", "safe"]


@pytest.fixture
async def client(aiohttp_client, config, database, stand):
    shop_faqs()
    return await kefu_client(aiohttp_client, config, mp_channel(stand.base))


def _reply(server: WeChatServer, body: str) -> dict | None:
    return server.open_reply(body)


# -- modes -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_faq_answer_in_each_mode(client, mode: str) -> None:
    server = wechat(mode)
    status, body = await post(client, server, "/wechat/mp", server.text_xml("o_user1", "发货要多久", "9001"))
    assert status == 200
    if mode == "plain":
        assert "<Encrypt>" not in body
    else:
        assert "<Encrypt>" in body and "发货" not in body  # the reply is encrypted, signed
    reply = _reply(server, body)
    assert reply is not None
    assert reply["Content"] == SHIPPING
    assert reply["ToUserName"] == "o_user1" and reply["MsgType"] == "text"
    stored = Message.get((Message.direction == "in") & (Message.channel == "mp"))
    assert (stored.external_id, stored.peer_id, stored.text) == ("9001", "o_user1", "发货要多久")


async def test_compatible_mode_trusts_only_the_signed_ciphertext(client) -> None:
    server = wechat("compat")
    params, body = server.sign(server.text_xml("o_user2", "发货要多久", "9002"))
    forged = body.replace("发货要多久".encode(), "转人工".encode(), 1)  # tamper with the clear copy
    assert forged != body
    resp = await client.post("/wechat/mp", params=params, data=forged)
    assert resp.status == 200
    assert _reply(server, await resp.text())["Content"] == SHIPPING


async def test_plaintext_channel_refuses_encrypted_callbacks(aiohttp_client, config, database, stand) -> None:
    client = await kefu_client(aiohttp_client, config, mp_channel(stand.base, aes=False))
    server = wechat("safe")
    status, _ = await post(client, server, "/wechat/mp", server.text_xml("o_u", "hi", "1"))
    assert status == 400
    plain = WeChatServer(MP_TOKEN, APP_ID, "", mode="plain")
    status, body = await post(client, plain, "/wechat/mp", plain.text_xml("o_u", "发货要多久", "2"))
    assert status == 200 and "<Content>" in body


async def test_url_verification_echoes_when_signed(client) -> None:
    params = wechat().echo_params("echo-123")
    resp = await client.get("/wechat/mp", params=params)
    assert resp.status == 200 and await resp.text() == "echo-123"
    resp = await client.get("/wechat/mp", params={**params, "signature": "0" * 40})
    assert resp.status == 403


# -- message kinds -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(SAMPLES))
async def test_documented_message_kinds(client, kind: str) -> None:
    server = wechat("safe")
    status, body = await post(client, server, "/wechat/mp", SAMPLES[kind])
    assert status == 200
    stored = Message.get((Message.direction == "in") & (Message.channel == "mp"))
    assert stored.kind == kind
    assert stored.external_id == "1234567890123456" and stored.peer_id == "fromUser"
    reply = _reply(server, body)
    assert reply is not None and reply["ToUserName"] == "fromUser"
    if kind == "text":
        assert stored.text == "this is a test"
    else:
        assert "已收到您的" in reply["Content"]  # media is acknowledged politely
    if kind == "location":
        assert stored.payload["media"]["label"] == "位置信息"
    if kind == "link":
        assert stored.payload["media"]["url"] == "url"


async def test_unknown_kind_is_stored_and_answered(client) -> None:
    server = wechat("safe")
    xml = server.message_xml("o_odd", "miniprogrampage_v9", {"Title": "小程序"}, msg_id="777")
    status, body = await post(client, server, "/wechat/mp", xml)
    assert status == 200
    assert Message.get(Message.external_id == "777").kind == "unknown"
    assert "已收到" in _reply(server, body)["Content"]


async def test_subscribe_gets_the_welcome_and_card_questions(client) -> None:
    server = wechat("safe")
    status, body = await post(client, server, "/wechat/mp", EVENTS["subscribe"])
    assert status == 200
    content = _reply(server, body)["Content"]
    assert "欢迎" in content and "1. 发货要多久" in content
    stored = Message.get(Message.direction == "in")
    assert (stored.kind, stored.external_id) == ("event", "FromUser:123456789")


async def test_subscribe_from_a_qr_scene_is_a_subscription(client) -> None:
    server = wechat("safe")
    status, body = await post(client, server, "/wechat/mp", EVENTS["subscribe_qrscene"])
    assert status == 200 and "欢迎" in _reply(server, body)["Content"]
    assert Message.get(Message.direction == "in").payload["event_key"] == "123123"


async def test_unsubscribe_marks_the_customer(client) -> None:
    server = wechat("safe")
    await post(client, server, "/wechat/mp", EVENTS["subscribe"])
    status, body = await post(client, server, "/wechat/mp", EVENTS["unsubscribe"])
    assert status == 200 and body == "success"
    assert Customer.get(Customer.external_id == "FromUser").subscribed is False


async def test_menu_click_is_answered_like_its_key(client) -> None:
    server = wechat("safe")
    status, body = await post(client, server, "/wechat/mp", EVENTS["click"])
    assert status == 200 and _reply(server, body)["Content"] == SHIPPING


@pytest.mark.parametrize("event", ["scan", "view"])
async def test_quiet_events_are_stored_without_reply(client, event: str) -> None:
    server = wechat("safe")
    status, body = await post(client, server, "/wechat/mp", EVENTS[event])
    assert status == 200 and body == "success"
    stored = Message.get(Message.direction == "in")
    assert stored.kind == "event" and stored.payload["event"] == event


@pytest.mark.parametrize("event", ["templatesendjobfinish", "masssendjobfinish"])
async def test_job_reports_are_recorded_once_and_open_nothing(client, event: str) -> None:
    server = wechat("safe")
    for _ in range(2):  # WeChat retries: still one record
        status, body = await post(client, server, "/wechat/mp", EVENTS[event])
        assert status == 200 and body == "success"
    rows = list(Message.select())
    assert len(rows) == 1 and rows[0].author == "system" and rows[0].text == event
    assert rows[0].payload["Status"] in ("success", "err(30003)")
    assert Conversation.select().count() == 0 and Customer.select().count() == 0


# -- refusals ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
async def test_bad_signature_is_403_and_nothing_stored(client, mode: str) -> None:
    server = wechat(mode)
    params, body = server.sign(server.text_xml("o_x", "发货要多久", "1"))
    for broken in ({**params, "signature": "f" * 40}, {k: v for k, v in params.items() if k != "signature"}):
        resp = await client.post("/wechat/mp", params=broken, data=body)
        assert resp.status == 403
    if mode != "plain":
        resp = await client.post("/wechat/mp", params={**params, "msg_signature": "e" * 40}, data=body)
        assert resp.status == 403
    assert Message.select().count() == 0


async def test_wrong_token_is_refused(client) -> None:
    other = WeChatServer("not-the-token", APP_ID, AES_KEY, mode="safe")
    status, _ = await post(client, other, "/wechat/mp", other.text_xml("o_x", "hi", "1"))
    assert status == 403 and Message.select().count() == 0


@pytest.mark.parametrize("body", [
    b"<xml><ToUserName>broken",
    b"not xml at all",
    b"<other><MsgType>text</MsgType></other>",
    b"<xml></xml>",
    b'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x "boom">]><xml><ToUserName>a</ToUserName>'
    b"<FromUserName>u</FromUserName><CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&x;</Content>"
    b"<MsgId>5</MsgId></xml>",
    b'<!DOCTYPE xml SYSTEM "http://127.0.0.1:9/evil.dtd"><xml><MsgType>text</MsgType></xml>',
])
async def test_malformed_or_hostile_xml_is_400_and_nothing_stored(client, body: bytes) -> None:
    params, _ = wechat("plain").sign("<xml><FromUserName>u</FromUserName></xml>")
    resp = await client.post("/wechat/mp", params=params, data=body)
    assert resp.status == 400
    assert Message.select().count() == 0


async def test_hostile_xml_inside_the_ciphertext_is_400(client) -> None:
    server = wechat("safe")
    inner = ('<!DOCTYPE xml [<!ENTITY x "boom">]><xml><ToUserName>a</ToUserName><FromUserName>u</FromUserName>'
             "<CreateTime>1</CreateTime><MsgType>text</MsgType><Content>&x;</Content><MsgId>5</MsgId></xml>")
    status, _ = await post(client, server, "/wechat/mp", inner)
    assert status == 400 and Message.select().count() == 0


async def test_oversized_body_is_400(client) -> None:
    server = wechat("plain")
    status, _ = await post(client, server, "/wechat/mp", server.text_xml("o_big", "大" * 40000, "1"))
    assert status == 400 and Message.select().count() == 0


# -- retries and the deadline ------------------------------------------------------------------


async def test_a_retry_gets_the_first_reply_and_is_handled_once(client) -> None:
    server = wechat("safe")
    xml = server.text_xml("o_retry", "发货要多久", "555")
    replies = []
    for _ in range(4):  # the first delivery and WeChat's 3 retries
        status, body = await post(client, server, "/wechat/mp", xml)
        assert status == 200
        replies.append(_reply(server, body)["Content"])
    assert replies == [SHIPPING] * 4
    assert Message.select().where(Message.direction == "in").count() == 1
    assert Message.select().where(Message.direction == "out").count() == 1
    assert Outbox.select().count() == 0


async def test_an_event_retry_is_deduplicated_by_user_and_time(client) -> None:
    server = wechat("safe")
    for _ in range(3):
        status, _ = await post(client, server, "/wechat/mp", EVENTS["subscribe"])
        assert status == 200
    assert Message.select().where(Message.direction == "in").count() == 1


async def test_late_reply_goes_through_the_outbox_and_the_send_api(aiohttp_client, config, database, stand,
                                                                  dispatcher) -> None:
    shop_faqs()
    original = dispatcher.decide  # each message, alone or in a batch

    def slow(inbound, slot=None):
        time.sleep(0.6)
        return original(inbound, slot)

    dispatcher.decide = slow  # type: ignore[method-assign]
    client = await kefu_client(aiohttp_client, config, mp_channel(stand.base, deadline=0.2), run_sender=True,
                               dispatcher=dispatcher)
    server = wechat("safe")
    status, body = await post(client, server, "/wechat/mp", server.text_xml("o_late", "发货要多久", "late1"))
    assert status == 200 and body == "success"
    assert await eventually(lambda: stand.sandbox.texts_to("o_late") == [SHIPPING]
                            and Outbox.get().status == "sent")
    # WeChat retries after its 5 s: the reply already went by the API, so nothing inline
    status, body = await post(client, server, "/wechat/mp", server.text_xml("o_late", "发货要多久", "late1"))
    assert status == 200 and body == "success"
    assert Outbox.get().status == "sent"
    assert stand.sandbox.texts_to("o_late") == [SHIPPING]


async def test_long_reply_is_sent_in_parts_through_the_api(aiohttp_client, config, database, stand) -> None:
    from tests.factories import make_faq

    long_answer = "\n".join(f"第{i}条：" + "很长的说明文字" * 12 for i in range(40))
    make_faq(long_answer, ["说明书在哪里"])
    client = await kefu_client(aiohttp_client, config, mp_channel(stand.base), run_sender=True)
    server = wechat("safe")
    status, body = await post(client, server, "/wechat/mp", server.text_xml("o_long", "说明书在哪里", "l1"))
    assert status == 200 and body == "success"
    assert await eventually(lambda: Outbox.get_or_none(Outbox.status == "sent") is not None)
    parts = stand.sandbox.texts_to("o_long")
    assert len(parts) > 1 and all(len(p.encode()) <= 2048 for p in parts)
    assert "\n".join(parts) == long_answer
