"""微信客服 (WeChat Customer Service): acknowledge, pull from a persisted cursor, send with
kf/send_msg, never handle a message twice across restarts, session state in step, and the
platform's send limits (48 hours, 5 messages per customer message) checked before sending."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import pytest

from adapters.api_client import WeChatApi
from adapters.delivery import AsyncDelivery
from adapters.server import ADAPTERS
from adapters.wechat_kf import WeChatKfSender, kf_inbound, load_cursor
from bot.sending import outbox
from bot.core import clock
from bot.core.models import ChannelCursor, Customer, Message, Outbox
from tests.adapters.wechat_kit import CORP_ID, eventually, kefu_client, stand, wecom_channel, wecom_server
from tests.factories import RETURNS, SHIPPING, shop_faqs

__all__ = ["stand"]

KFID = "wkAJ2GCAAAZSfhHCt7IFSvLKtMPxyJTw"
# The callback from the 微信客服 documentation (接收消息和事件).
CALLBACK = f"""<xml>
   <ToUserName><![CDATA[ww12345678910]]></ToUserName>
   <CreateTime>1348831860</CreateTime>
   <MsgType><![CDATA[event]]></MsgType>
   <Event><![CDATA[kf_msg_or_event]]></Event>
   <Token><![CDATA[ENCApHxnGDNAVNY4AaSJKj4Tb5mwsEMzxhFmHVGcra996NR]]></Token>
   <OpenKfId><![CDATA[{KFID}]]></OpenKfId>
</xml>"""


def kf_channel(base: str, **extra):
    return wecom_channel(base, name="kf", kind="wechat_kf", open_kfid=KFID, **extra)


async def notify(client) -> None:
    params, body = wecom_server().sign(CALLBACK)
    resp = await client.post("/wecom/kf", params=params, data=body)
    assert resp.status == 200 and await resp.text() == "success"


@pytest.fixture
async def kefu(aiohttp_client, config, database, stand):
    shop_faqs()
    return await kefu_client(aiohttp_client, config, kf_channel(stand.base), run_sender=True)


async def test_callback_acks_then_messages_are_pulled_answered_and_sent(kefu, stand) -> None:
    sb = stand.sandbox
    sb.add_kf_message(KFID, "wm_cust1", "发货要多久")
    sb.add_kf_message(KFID, "wm_cust2", "怎么退货")
    await notify(kefu)
    assert await eventually(lambda: len(sb.sends("/kf/send_msg")) == 2)
    assert sb.texts_to("wm_cust1") == [SHIPPING] and sb.texts_to("wm_cust2") == [RETURNS]
    assert sb.sends("/kf/send_msg")[0].body["open_kfid"] == KFID
    assert await eventually(lambda: load_cursor("kf") == "2")  # saved once the batch is handled
    assert Message.select().where(Message.direction == "in").count() == 2


async def test_a_restart_never_redelivers_pulled_messages(aiohttp_client, config, database, stand) -> None:
    shop_faqs()
    sb = stand.sandbox
    sb.add_kf_message(KFID, "wm_a", "发货要多久")
    first = await kefu_client(aiohttp_client, config, kf_channel(stand.base), run_sender=True)
    await notify(first)
    assert await eventually(lambda: len(sb.sends("/kf/send_msg")) == 1 and load_cursor("kf") == "1")
    await first.close()  # the process stops
    sb.add_kf_message(KFID, "wm_a", "怎么退货")
    second = await kefu_client(aiohttp_client, config, kf_channel(stand.base), run_sender=True)
    await notify(second)
    assert await eventually(lambda: len(sb.sends("/kf/send_msg")) == 2)
    assert sb.texts_to("wm_a") == [SHIPPING, RETURNS]
    assert Message.select().where(Message.direction == "in").count() == 2
    pulls = [c.body["cursor"] for c in sb.calls if c.path.endswith("/kf/sync_msg")]
    assert pulls == ["", "1"]  # the second process resumed from the persisted cursor


async def test_a_lost_cursor_still_handles_each_message_once(kefu, stand) -> None:
    sb = stand.sandbox
    sb.add_kf_message(KFID, "wm_b", "发货要多久")
    await notify(kefu)
    assert await eventually(lambda: load_cursor("kf") == "1")
    ChannelCursor.delete().execute()  # e.g. a crash before the cursor was saved
    handled = await kefu.app[ADAPTERS]["kf"].pull()
    assert handled == 1  # pulled again...
    assert Message.select().where(Message.direction == "in").count() == 1  # ...but stored once
    assert Outbox.select().count() == 1


async def test_platform_session_state_follows_ours(kefu, stand) -> None:
    sb = stand.sandbox
    sb.add_kf_message(KFID, "wm_c", "发货要多久")
    await notify(kefu)
    assert await eventually(lambda: sb.kf_states.get((KFID, "wm_c")) == 1)  # the bot is serving
    sb.add_kf_message(KFID, "wm_c", "转人工")  # no agent online: queued
    await notify(kefu)
    assert await eventually(lambda: sb.kf_states.get((KFID, "wm_c")) == 2)


async def test_entering_the_session_gets_the_welcome_with_its_code(kefu, stand) -> None:
    sb = stand.sandbox
    code = sb.add_kf_enter_session(KFID, "wm_new", scene="shop_home")
    await notify(kefu)
    assert await eventually(lambda: len(sb.sends("/kf/send_msg_on_event")) == 1)
    call = sb.sends("/kf/send_msg_on_event")[0]
    assert call.body["code"] == code and "欢迎" in call.body["text"]["content"]
    assert sb.texts_to("wm_new") == [call.body["text"]["content"]]
    assert not [c for c in sb.sends() if c.path.endswith("/kf/send_msg")]  # not also through send_msg


async def test_window_closed_on_kf_send(kefu, stand) -> None:
    sb = stand.sandbox
    sb.inject(45015, "/kf/send_msg")
    sb.add_kf_message(KFID, "wm_d", "发货要多久")
    await notify(kefu)
    assert await eventually(lambda: Outbox.get_or_none(Outbox.status == "window_closed") is not None)


async def test_bad_signature_is_403_and_pulls_nothing(kefu, stand) -> None:
    params, body = wecom_server().sign(CALLBACK)
    resp = await kefu.post("/wecom/kf", params={**params, "msg_signature": "2" * 40}, data=body)
    assert resp.status == 403
    assert not [c for c in stand.sandbox.calls if "sync_msg" in c.path]


def test_sync_items_become_inbounds() -> None:
    text = {"msgid": "m1", "open_kfid": KFID, "external_userid": "wm_1", "send_time": 1, "origin": 3,
            "msgtype": "text", "text": {"content": "你好"}}
    inbound = kf_inbound("kf", text)
    assert (inbound.user_id, inbound.msg_id, inbound.kind, inbound.text) == ("wm_1", "m1", "text", "你好")
    servicer = {**text, "msgid": "m2", "origin": 5}
    assert kf_inbound("kf", servicer) is None
    enter = {"msgid": "m3", "origin": 4, "msgtype": "event",
             "event": {"event_type": "enter_session", "external_userid": "wm_2", "welcome_code": "WC"}}
    event = kf_inbound("kf", enter)
    assert (event.kind, event.event, event.raw["welcome_code"]) == ("event", "subscribe", "WC")
    odd = {**text, "msgid": "m4", "msgtype": "channels_shop_product", "channels_shop_product": {}}
    assert kf_inbound("kf", odd).kind == "unknown"


# --- the 48-hour window and 5 messages per customer message, checked before sending ----------


async def run_blocking(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


@pytest.fixture
async def kf_delivery(database, stand):
    api = WeChatApi.for_wecom(stand.base, CORP_ID, "kf-secret", "kf", run_blocking)
    yield AsyncDelivery({"kf": WeChatKfSender(api, KFID)}, run_blocking, max_attempts=5)
    await api.close()


def customer_wrote(user: str, kind: str = "text") -> None:
    now = clock.now()
    customer, _ = Customer.get_or_create(channel="kf", external_id=user, defaults={"last_inbound_at": now})
    Message.create(channel="kf", external_id=f"in:{user}:{now.isoformat()}", customer=customer, direction="in",
                   author="customer", peer_id=user, kind=kind, created_at=now)


def kf_sends(stand) -> list[Any]:
    return [c for c in stand.sandbox.calls if c.path.endswith("/kf/send_msg")]


LONG = "\n".join(f"第{i}段" + "说明" * 300 for i in range(2))  # two parts of about 1.8 KB


async def test_kf_sends_at_most_five_messages_per_customer_message_without_calling_for_the_sixth(
        kf_delivery, stand, fake_clock) -> None:
    customer_wrote("wm_e")
    rows = [("k0", "一"), ("k1", LONG), ("k2", "二"), ("k3", LONG), ("k4", "三"), ("k5", "四")]
    for key, text in rows:
        assert outbox.enqueue(key, "kf", "wm_e", {"kind": "text", "text": text})
    assert outbox.enqueue("welcome", "kf", "wm_e", {"kind": "text", "text": "欢迎", "welcome_code": "WC"})
    await kf_delivery.deliver_due()
    statuses = {r.key: r.status for r in Outbox.select()}
    assert statuses == {"k0": "sent", "k1": "sent", "k2": "sent",  # 1 + 2 parts + 1 = 4 messages
                        "k3": "limit_reached",  # 2 parts, 1 left: refused whole, nothing sent
                        "k4": "sent",  # the 5th
                        "k5": "limit_reached",  # the 6th
                        "welcome": "sent"}  # kf/send_msg_on_event: not counted
    assert len(kf_sends(stand)) == 5 and all(c.errcode == 0 for c in stand.sandbox.calls)  # no refused call
    assert "before sending" in Outbox.get(Outbox.key == "k5").last_error
    fake_clock.advance(minutes=1)
    customer_wrote("wm_e", kind="event")  # entering the session again is not a message
    assert outbox.enqueue("k6", "kf", "wm_e", {"kind": "text", "text": "五"})
    await kf_delivery.deliver_due()
    assert Outbox.get(Outbox.key == "k6").status == "limit_reached" and len(kf_sends(stand)) == 5
    fake_clock.advance(minutes=1)
    customer_wrote("wm_e")  # the customer writes again: five more
    assert outbox.enqueue("k7", "kf", "wm_e", {"kind": "text", "text": "六"})
    await kf_delivery.deliver_due()
    assert Outbox.get(Outbox.key == "k7").status == "sent" and stand.sandbox.texts_to("wm_e")[-1] == "六"


async def test_kf_send_after_48_hours_is_window_closed_without_a_call(kf_delivery, stand, fake_clock) -> None:
    customer_wrote("wm_f")
    fake_clock.advance(hours=47, minutes=59)
    assert outbox.enqueue("in-time", "kf", "wm_f", {"kind": "text", "text": "还在"})
    await kf_delivery.deliver_due()
    fake_clock.advance(minutes=2)
    assert outbox.enqueue("late", "kf", "wm_f", {"kind": "text", "text": "太晚了"})
    await kf_delivery.deliver_due()
    assert {r.key: r.status for r in Outbox.select()} == {"in-time": "sent", "late": "window_closed"}
    assert stand.sandbox.texts_to("wm_f") == ["还在"] and len(kf_sends(stand)) == 1


# --- one channel is one 客服账号: the limits are per customer per account ----------------------

KFID_B = "wkBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"


@pytest.fixture
async def two_accounts(database, stand):
    """Two channels of one corp, one per 客服账号 (how a shop with two accounts runs kefu)."""
    api = WeChatApi.for_wecom(stand.base, CORP_ID, "kf-secret", "kf", run_blocking)
    yield AsyncDelivery({"kf": WeChatKfSender(api, KFID), "kf_b": WeChatKfSender(api, KFID_B)}, run_blocking)
    await api.close()


def wrote_to(channel: str, user: str) -> None:
    now = clock.now()
    customer, _ = Customer.get_or_create(channel=channel, external_id=user, defaults={"last_inbound_at": now})
    Message.create(channel=channel, external_id=f"in:{channel}:{user}:{now.isoformat()}", customer=customer,
                   direction="in", author="customer", peer_id=user, kind="text", created_at=now)


def sends_as(stand, open_kfid: str) -> list[str]:
    return [c.body["text"]["content"] for c in kf_sends(stand) if c.body["open_kfid"] == open_kfid]


async def test_one_customer_on_two_accounts_has_five_messages_on_each(two_accounts, stand, fake_clock) -> None:
    wrote_to("kf", "wm_g")
    wrote_to("kf_b", "wm_g")
    fake_clock.advance(minutes=1)
    for n in range(6):
        assert outbox.enqueue(f"a{n}", "kf", "wm_g", {"kind": "text", "text": f"A{n}"})
        assert outbox.enqueue(f"b{n}", "kf_b", "wm_g", {"kind": "text", "text": f"B{n}",
                                                        "open_kfid": KFID})  # content cannot switch account
    await two_accounts.deliver_due()
    statuses = {r.key: r.status for r in Outbox.select()}
    for prefix in "ab":
        assert [statuses[f"{prefix}{n}"] for n in range(6)] == ["sent"] * 5 + ["limit_reached"]
    assert sends_as(stand, KFID) == [f"A{n}" for n in range(5)]
    assert sends_as(stand, KFID_B) == [f"B{n}" for n in range(5)]
    assert all(c.errcode == 0 for c in stand.sandbox.calls)


async def test_a_message_to_one_account_does_not_open_the_others_window(two_accounts, stand, fake_clock) -> None:
    wrote_to("kf_b", "wm_h")
    fake_clock.advance(hours=48, minutes=1)
    wrote_to("kf", "wm_h")  # the customer writes to account A only
    assert outbox.enqueue("a", "kf", "wm_h", {"kind": "text", "text": "A 在"})
    assert outbox.enqueue("b", "kf_b", "wm_h", {"kind": "text", "text": "B 在"})
    await two_accounts.deliver_due()
    assert {r.key: r.status for r in Outbox.select()} == {"a": "sent", "b": "window_closed"}
    assert sends_as(stand, KFID) == ["A 在"] and sends_as(stand, KFID_B) == []


def test_a_pulled_item_of_another_account_is_not_this_channels() -> None:
    mine = {"msgid": "m1", "open_kfid": KFID, "external_userid": "wm_1", "origin": 3, "msgtype": "text",
            "text": {"content": "你好"}}
    other = {**mine, "msgid": "m2", "open_kfid": KFID_B}
    entered_other = {"msgid": "m3", "origin": 4, "msgtype": "event",
                     "event": {"event_type": "enter_session", "open_kfid": KFID_B, "external_userid": "wm_1"}}
    assert kf_inbound("kf", mine, KFID) is not None
    assert kf_inbound("kf", other, KFID) is None
    assert kf_inbound("kf", entered_other, KFID) is None
    assert kf_inbound("kf", {**mine, "open_kfid": ""}, KFID) is not None  # an item that does not say: kept


async def test_the_pull_asks_for_the_channels_account_only(kefu, stand) -> None:
    sb = stand.sandbox
    sb.add_kf_message(KFID_B, "wm_i", "发货要多久")  # to the other account
    sb.add_kf_message(KFID, "wm_j", "发货要多久")
    await notify(kefu)
    assert await eventually(lambda: load_cursor("kf") == "2")
    assert {c.body.get("open_kfid") for c in sb.calls if c.path.endswith("/kf/sync_msg")} == {KFID}
    assert [m.peer_id for m in Message.select().where(Message.direction == "in")] == ["wm_j"]


def test_a_kf_sender_needs_its_account() -> None:
    with pytest.raises(ValueError, match="open_kfid"):
        WeChatKfSender(None, "")  # type: ignore[arg-type]


async def test_a_resumed_split_text_needs_only_its_parts_left(kf_delivery, stand, fake_clock, monkeypatch) -> None:
    import adapters.wechat_mp as wechat_mp

    cuts: list[str] = []
    real_split = wechat_mp.split_text
    monkeypatch.setattr(wechat_mp, "split_text", lambda text, *a: cuts.append(text) or real_split(text, *a))
    customer_wrote("wm_k")
    for n in range(4):
        assert outbox.enqueue(f"k{n}", "kf", "wm_k", {"kind": "text", "text": f"第{n}条"})
    assert outbox.enqueue("long", "kf", "wm_k", {"kind": "text", "text": LONG, "parts_sent": 1})  # 1 part left
    await kf_delivery.deliver_due()
    assert Outbox.get(Outbox.key == "long").status == "sent"  # the 5th message
    assert stand.sandbox.texts_to("wm_k")[-1] == wechat_mp.split_text(LONG)[1]
    assert cuts.count(LONG) == 1 + 1  # once for its send (the check and the call), once just above


def callback_for(open_kfid: str) -> str:
    return CALLBACK.replace(KFID, open_kfid)


async def test_a_callback_wakes_the_channel_of_the_account_it_names(aiohttp_client, config, database, stand) -> None:
    """The platform calls one URL per corp for every 客服账号: here channel "kf"'s URL gets the
    callback for account B, and channel "kf_b" pulls and answers it, as account B."""
    shop_faqs()
    client = await kefu_client(aiohttp_client, config, kf_channel(stand.base),
                               wecom_channel(stand.base, name="kf_b", kind="wechat_kf", open_kfid=KFID_B),
                               run_sender=True)
    sb = stand.sandbox
    sb.add_kf_message(KFID_B, "wm_b1", "发货要多久")
    params, body = wecom_server().sign(callback_for(KFID_B))
    resp = await client.post("/wecom/kf", params=params, data=body)
    assert resp.status == 200 and await resp.text() == "success"
    assert await eventually(lambda: len(sb.sends("/kf/send_msg")) == 1)
    assert sb.sends("/kf/send_msg")[0].body["open_kfid"] == KFID_B
    assert sb.texts_to("wm_b1") == [SHIPPING]
    assert [m.channel for m in Message.select().where(Message.direction == "in")] == ["kf_b"]
    assert {c.body.get("open_kfid") for c in sb.calls if c.path.endswith("/kf/sync_msg")} == {KFID_B}


async def test_a_callback_for_an_account_no_channel_serves_pulls_nothing(kefu, stand) -> None:
    sb = stand.sandbox
    sb.add_kf_message("wkUNKNOWN", "wm_x", "发货要多久")
    params, body = wecom_server().sign(callback_for("wkUNKNOWN"))
    resp = await kefu.post("/wecom/kf", params=params, data=body)
    assert resp.status == 200 and await resp.text() == "success"  # acknowledged: the platform must not retry
    await asyncio.sleep(0.2)
    assert not any(c.path.endswith("/kf/sync_msg") for c in sb.calls)
    assert Message.select().count() == 0
