"""Sending through the stand-in: every errcode path, the token refresh-once rule, split
texts that resume, content kinds, a restart in the middle of sending, and the 48-hour
window checked before the platform is called."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, Callable

import pytest

from adapters.api_client import WeChatApi
from adapters.delivery import AsyncDelivery, RateLimiter
from adapters.wechat_mp import OfficialAccountSender
from bot.sending import outbox
from bot.core import clock
from bot.core.models import Customer, Message, Outbox
from tests.adapters.wechat_kit import APP_ID, stand

__all__ = ["stand"]


async def run_blocking(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


@pytest.fixture
async def delivery(database, stand):
    api = WeChatApi.for_mp(stand.base, APP_ID, "mp-secret", run_blocking)
    yield AsyncDelivery({"mp": OfficialAccountSender(api)}, run_blocking, max_attempts=5)
    await api.close()


def enqueue(key: str, text: str = "您的订单已发货", user: str = "o_cust", **content: Any) -> None:
    assert outbox.enqueue(key, "mp", user, {"kind": "text", "text": text, **content})


def status(key: str = "k") -> tuple[str, str]:
    row = Outbox.get(Outbox.key == key)
    return row.status, row.last_error


async def test_send_fetches_one_token_and_reuses_it(delivery, stand) -> None:
    for n in range(3):
        enqueue(f"k{n}", user=f"o_{n}")
    assert await delivery.deliver_due() == 3
    assert [s for s, _ in map(status, ["k0", "k1", "k2"])] == ["sent"] * 3
    assert stand.sandbox.token_fetches == {APP_ID: 1}
    assert stand.sandbox.texts_to("o_1") == ["您的订单已发货"]


@pytest.mark.parametrize("fault", ["expired", 40001, 40014, 42001])
async def test_invalid_or_expired_token_is_refreshed_once_and_the_send_repeated(delivery, stand, fault) -> None:
    enqueue("warm")
    await delivery.deliver_due()
    if fault == "expired":
        stand.sandbox.expire_tokens()
    else:
        stand.sandbox.inject(fault, "/custom/send")
    enqueue("k")
    await delivery.deliver_due()
    assert status() == ("sent", "")
    assert stand.sandbox.token_fetches == {APP_ID: 2}
    assert stand.sandbox.texts_to("o_cust") == ["您的订单已发货"] * 2


async def test_a_token_still_refused_after_one_refresh_is_retried_later(delivery, stand, fake_clock) -> None:
    stand.sandbox.inject(40001, "/custom/send", times=2)
    enqueue("k")
    await delivery.deliver_due()
    row_status, error = status()
    assert row_status == "pending" and error.startswith("40001")
    assert stand.sandbox.token_fetches == {APP_ID: 2}  # the first token and one refresh, no loop
    fake_clock.advance(minutes=5)
    await delivery.deliver_due()
    assert status()[0] == "sent"


@pytest.mark.parametrize("errcode", [-1, 45009, 45011])
async def test_busy_and_rate_limits_back_off_then_send(delivery, stand, fake_clock, errcode) -> None:
    stand.sandbox.inject(errcode, "/custom/send")
    enqueue("k")
    await delivery.deliver_due()
    row = Outbox.get()
    assert row.status == "pending" and row.last_error.startswith(str(errcode))
    assert row.next_attempt_at > fake_clock.now()
    assert await delivery.deliver_due() == 0  # not before the back-off
    fake_clock.advance(minutes=2)
    await delivery.deliver_due()
    assert status()[0] == "sent"
    assert stand.sandbox.texts_to("o_cust") == ["您的订单已发货"]


@pytest.mark.parametrize("errcode, outcome", [(45015, "window_closed"), (45047, "limit_reached"),
                                              (40003, "failed"), (48001, "failed")])
async def test_window_limit_and_permanent_errors_are_marked_not_retried(delivery, stand, fake_clock, errcode,
                                                                        outcome) -> None:
    stand.sandbox.inject(errcode, "/custom/send")
    m = Message.create(channel="mp", external_id="re:1:0", direction="out", author="bot", peer_id="o_cust",
                       text="您好", state="queued")
    assert outbox.enqueue("k", "mp", "o_cust", {"kind": "text", "text": "您好"}, message=m)
    await delivery.deliver_due()
    row_status, error = status()
    assert row_status == outcome and error.startswith(str(errcode))
    assert Message.get_by_id(m.id).state == outcome  # visible on the message too (admin)
    fake_clock.advance(hours=1)
    assert await delivery.deliver_due() == 0


async def test_unreachable_platform_is_a_retry(database, fake_clock) -> None:
    api = WeChatApi.for_mp("http://127.0.0.1:9", APP_ID, "s", run_blocking)
    d = AsyncDelivery({"mp": OfficialAccountSender(api)}, run_blocking)
    enqueue("k")
    await d.deliver_due()
    await api.close()
    row_status, error = status()
    assert row_status == "pending" and "token fetch failed" in error


async def test_split_text_resumes_after_the_parts_already_sent(delivery, stand, fake_clock) -> None:
    text = "\n".join(f"第{i}段" + "说明" * 300 for i in range(4))  # each line about 1.8 KB
    stand.sandbox.inject(-1, "/custom/send", after=2)  # parts 1 and 2 pass, part 3 fails
    enqueue("k", text=text)
    await delivery.deliver_due()
    assert Outbox.get().content["parts_sent"] == 2
    fake_clock.advance(minutes=5)
    await delivery.deliver_due()
    assert status()[0] == "sent"
    parts = stand.sandbox.texts_to("o_cust")
    assert len(parts) == 4 and "\n".join(parts) == text  # no part twice, none lost


async def test_template_and_mass_sends(delivery, stand) -> None:
    outbox.enqueue("t", "mp", "o_cust", {"kind": "template", "template_id": "TPL1", "url": "https://shop.example",
                                         "data": {"first": {"value": "您的优惠券即将过期"}}})
    outbox.enqueue("m", "mp", "tag:101", {"kind": "mass", "msgtype": "text", "text": "双十一大促开始啦"})
    await delivery.deliver_due()
    assert status("t")[0] == "sent" and status("m")[0] == "sent"
    template = stand.sandbox.sends("/template/send")[0].body
    assert template["template_id"] == "TPL1" and template["touser"] == "o_cust"
    mass = stand.sandbox.sends("/mass/sendall")[0].body
    assert mass["filter"] == {"is_to_all": False, "tag_id": 101} and mass["text"]["content"] == "双十一大促开始啦"


async def test_messages_to_one_customer_keep_their_order(delivery, stand) -> None:
    for n in range(6):
        enqueue(f"k{n}", text=f"第{n}条")
    stand.sandbox.inject(0, "/custom/send", times=3, latency=0.05)  # slow the first ones down
    await delivery.deliver_due()
    assert stand.sandbox.texts_to("o_cust") == [f"第{n}条" for n in range(6)]


async def test_restart_in_the_middle_of_sending_loses_nothing_and_doubles_nothing(database, stand, fake_clock) -> None:
    expected = [(f"o_{u}", f"消息{n}") for u in range(3) for n in range(4)]  # 3 customers, 4 messages each
    for i, (user, text) in enumerate(expected):
        enqueue(f"k{i}", text=text, user=user)
    stand.sandbox.inject(0, "/custom/send", times=100, latency=0.05)
    api = WeChatApi.for_mp(stand.base, APP_ID, "mp-secret", run_blocking)
    first = AsyncDelivery({"mp": OfficialAccountSender(api)}, run_blocking)
    task = asyncio.get_running_loop().create_task(first.deliver_due())
    while not stand.sandbox.sends():  # stop the process once sending has begun
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await api.close()
    statuses = [r.status for r in Outbox.select()]
    assert "sending" not in statuses  # in-flight sends recorded, untried rows handed back
    assert 0 < statuses.count("sent") < len(expected)
    assert statuses.count("sent") == len(stand.sandbox.sends())
    # the next process delivers the rest
    api2 = WeChatApi.for_mp(stand.base, APP_ID, "mp-secret", run_blocking)
    second = AsyncDelivery({"mp": OfficialAccountSender(api2)}, run_blocking)
    while await second.deliver_due():
        pass
    await api2.close()
    assert [r.status for r in Outbox.select()] == ["sent"] * len(expected)
    delivered = sorted((c.body["touser"], c.body["text"]["content"]) for c in stand.sandbox.sends())
    assert delivered == sorted(expected)  # every message exactly once


async def test_rate_limiter_grants_a_burst_then_makes_callers_wait() -> None:
    limiter = RateLimiter(2.0)
    await limiter.acquire()
    await limiter.acquire()
    third = asyncio.get_running_loop().create_task(limiter.acquire())
    await asyncio.sleep(0)
    assert not third.done()  # the bucket is empty: the third send waits its turn
    await third


# --- the 48-hour window, checked before sending -----------------------------------------------


def customer_last_wrote(user: str, ago: timedelta) -> None:
    Customer.create(channel="mp", external_id=user, last_inbound_at=clock.now() - ago)


async def test_a_send_outside_the_window_is_refused_without_calling_the_platform(delivery, stand,
                                                                                fake_clock) -> None:
    customer_last_wrote("o_old", timedelta(hours=48, minutes=1))
    m = Message.create(channel="mp", external_id="re:1:0", direction="out", author="bot", peer_id="o_old",
                       text="您好", state="queued")
    assert outbox.enqueue("k", "mp", "o_old", {"kind": "text", "text": "您好"}, message=m)
    await delivery.deliver_due()
    row_status, error = status()
    assert row_status == "window_closed" and "before sending" in error
    assert Message.get_by_id(m.id).state == "window_closed"  # visible on the message too (admin)
    assert stand.sandbox.calls == []  # no send, not even a token fetch
    fake_clock.advance(hours=1)
    assert await delivery.deliver_due() == 0  # not retried


async def test_inside_the_window_and_templates_outside_it_are_sent(delivery, stand, fake_clock) -> None:
    customer_last_wrote("o_recent", timedelta(hours=47, minutes=59))
    customer_last_wrote("o_old", timedelta(days=3))
    enqueue("recent", user="o_recent")
    outbox.enqueue("template", "mp", "o_old", {"kind": "template", "template_id": "TPL1", "data": {}})
    outbox.enqueue("mass", "mp", "tag:101", {"kind": "mass", "msgtype": "text", "text": "双十一大促开始啦"})
    enqueue("old", user="o_old")
    await delivery.deliver_due()
    assert {r.key: r.status for r in Outbox.select()} == {
        "recent": "sent", "template": "sent", "mass": "sent", "old": "window_closed"}
    assert stand.sandbox.texts_to("o_recent") == ["您的订单已发货"]
    assert [c.body["touser"] for c in stand.sandbox.sends("/custom/send")] == ["o_recent"]


# --- a split text is cut once per attempt: what the check counts is what is sent ------------


async def test_a_split_text_is_cut_once_per_attempt(delivery, stand, fake_clock, monkeypatch) -> None:
    import adapters.wechat_mp as wechat_mp

    cuts: list[str] = []
    real_split = wechat_mp.split_text

    def counting_split(text: str, *args: Any) -> list[str]:
        cuts.append(text)
        return real_split(text, *args)

    monkeypatch.setattr(wechat_mp, "split_text", counting_split)
    customer_last_wrote("o_cust", timedelta(minutes=1))  # a checked send
    text = "\n".join(f"第{i}段" + "说明" * 300 for i in range(3))  # three parts
    enqueue("k", text=text)
    await delivery.deliver_due()
    assert status()[0] == "sent" and "\n".join(stand.sandbox.texts_to("o_cust")) == text
    assert cuts == [text]  # once, for the check and the send together


async def test_a_content_that_cannot_be_planned_fails_with_the_reason_and_no_call(delivery, stand) -> None:
    customer_last_wrote("o_cust", timedelta(minutes=1))
    enqueue("k", parts_sent="two")
    await delivery.deliver_due()
    row_status, error = status()
    assert row_status == "failed" and "content cannot be sent" in error and "'two'" in error
    assert stand.sandbox.calls == []


# --- an agent on the 公众号: their own 48-hour window ----------------------------------------


def agent_says(dispatcher: Any, text: str, user: str = "o_mei") -> None:
    """A message reaching kefu through the 公众号 whose replies all go through the outbox
    (as when the passive reply's deadline has passed)."""
    from bot.conversation.dispatcher import ReplySlot
    from tests.factories import text as inbound_text

    slot = ReplySlot()
    slot.abandon()
    dispatcher.handle(inbound_text(user, text, channel="mp"), slot)


async def test_relays_to_an_agent_whose_window_is_shut_are_refused_then_told_when_they_write(
        dispatcher, delivery, stand, fake_clock) -> None:
    from tests.factories import make_agent, shop_faqs

    shop_faqs()
    make_agent("小美", "o_mei", channel="mp")
    agent_says(dispatcher, "/online")
    await delivery.deliver_due()
    assert "在线" in stand.sandbox.texts_to("o_mei")[-1]
    fake_clock.advance(hours=48, minutes=1)  # the agent has been silent for more than 48 h
    agent_says(dispatcher, "转人工", user="o_cust")  # a customer is handed to her...
    agent_says(dispatcher, "我的快递到哪了", user="o_cust")  # ...and writes
    stand.sandbox.calls.clear()
    await delivery.deliver_due()
    to_agent = list(Outbox.select().where(Outbox.recipient == "o_mei").order_by(Outbox.id))[1:]
    assert [r.status for r in to_agent] == ["window_closed", "window_closed"]  # the brief and the relay
    assert all("before sending" in r.last_error for r in to_agent)
    assert Message.get(Message.id == to_agent[-1].message_id).state == "window_closed"  # visible (admin)
    # the customer's replies only: 已为您转接 and the one 已收到 for their next message (issue 25)
    assert [c.body["touser"] for c in stand.sandbox.sends()] == ["o_cust", "o_cust"]
    fake_clock.advance(minutes=5)
    agent_says(dispatcher, "/list")  # she writes again: her window is open
    await delivery.deliver_due()
    notice, listing = stand.sandbox.texts_to("o_mei")[-2:]
    assert "2 条消息未能送达您" in notice and "48小时" in notice
    assert "新的人工会话" in notice and "我的快递到哪了" in notice
    assert "我的会话" in listing
    agent_says(dispatcher, "/list")  # told once
    await delivery.deliver_due()
    assert "未能送达" not in stand.sandbox.texts_to("o_mei")[-1]
