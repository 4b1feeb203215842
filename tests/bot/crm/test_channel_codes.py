"""Channel codes (渠道活码) end to end through the stand-in: created by qrcode/create, scanned
by a new follower (subscribe with qrscene_) and an existing one (SCAN), applied once per
customer and code even when WeChat retries the event, refused once expired; the figures."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from decimal import Decimal

import pytest

from adapters.wechat_mp import blocking_post
from bot.core import clock
from bot.crm import channel_codes
from bot.crm.channel_codes import CodeError, CodeSpec
from bot.core.models import ChannelCode, ChannelCodeScan, Coupon, Customer, CustomerGroup, CustomerTag, GroupMember, IssuedCoupon, Order, Tag
from tests.adapters.wechat_kit import kefu_client, mp_channel, post, stand, wechat

__all__ = ["stand"]

WELCOME = "欢迎来自直播间的朋友！"


@pytest.fixture
async def client(aiohttp_client, config, database, stand):
    return await kefu_client(aiohttp_client, config, mp_channel(stand.base))


async def make_code(stand, expires_in: timedelta | None = None, **extra) -> ChannelCode:
    group = CustomerGroup.create(name="直播群")
    coupon = Coupon.create(name="新人券", value=Decimal("10"), valid_days=7)
    spec = CodeSpec(name="直播间", channel="mp", tags=("直播", "新客"), group_id=group.id, welcome=WELCOME,
                    coupon_id=coupon.id, expires_at=clock.now() + expires_in if expires_in else None, **extra)
    return await asyncio.to_thread(channel_codes.create, spec, blocking_post(mp_channel(stand.base)))


def event(server, user: str, event_name: str, key: str, at: int) -> str:
    return server.event_xml(user, event_name, key, create_time=at, extra={"Ticket": "t"})


def reply_text(server, body: str) -> str:
    return (server.open_reply(body) or {}).get("Content", "") if body != "success" else ""


def applied_to(user: str) -> tuple[set[str], bool, int]:
    customer = Customer.get(Customer.external_id == user)
    tags = {t.name for t in Tag.select().join(CustomerTag).where(CustomerTag.customer == customer.id)}
    member = GroupMember.select().where(GroupMember.customer == customer.id).exists()
    return tags, member, IssuedCoupon.select().where(IssuedCoupon.customer == customer.id).count()


async def test_creating_asks_the_platform_for_a_permanent_code(stand, database) -> None:
    code = await make_code(stand)
    call = [c for c in stand.sandbox.calls if c.path == "/cgi-bin/qrcode/create"][-1]
    assert call.body["action_name"] == "QR_LIMIT_STR_SCENE" and "expire_seconds" not in call.body
    assert call.body["action_info"]["scene"]["scene_str"] == code.scene
    assert code.ticket in stand.sandbox.qrcodes and code.url == stand.sandbox.qrcodes[code.ticket]["url"]
    image = channel_codes.png(code)
    assert image.startswith(b"\x89PNG\r\n\x1a\n") and len(image) > 200


async def test_a_near_expiry_makes_a_temporary_code(stand, database, fake_clock) -> None:
    await make_code(stand, expires_in=timedelta(days=2))
    call = [c for c in stand.sandbox.calls if c.path == "/cgi-bin/qrcode/create"][-1]
    assert call.body["action_name"] == "QR_STR_SCENE" and call.body["expire_seconds"] == 2 * 86400
    assert ChannelCode.get().permanent is False


async def test_a_refusal_by_the_platform_stores_nothing(stand, database) -> None:
    stand.sandbox.inject(40053, "qrcode/create")
    with pytest.raises(CodeError, match="40053"):
        await make_code(stand)
    assert ChannelCode.select().count() == 0


async def test_bad_requests_are_refused_before_the_platform(stand, database) -> None:
    post_nothing = lambda path, body: pytest.fail("the platform was asked")  # noqa: E731
    with pytest.raises(CodeError):
        channel_codes.create(CodeSpec(name=" ", channel="mp"), post_nothing)
    with pytest.raises(CodeError):
        channel_codes.create(CodeSpec(name="x", channel="mp", expires_at=clock.now() - timedelta(1)), post_nothing)
    with pytest.raises(CodeError):
        channel_codes.create(CodeSpec(name="x", channel="mp", group_id=999), post_nothing)
    with pytest.raises(CodeError):
        channel_codes.create(CodeSpec(name="x", channel="mp", coupon_id=999), post_nothing)


async def test_a_new_follower_gets_the_code_once_even_when_wechat_retries(client, stand) -> None:
    code = await make_code(stand)
    server = wechat("safe")
    xml = event(server, "fan1", "subscribe", stand.sandbox.scan_event_key(code.ticket), int(time.time()))
    replies = []
    for _ in range(3):  # WeChat posts the same event again when it saw no answer in time
        status, body = await post(client, server, "/wechat/mp", xml)
        assert status == 200
        replies.append(reply_text(server, body))
    assert replies[0].startswith(WELCOME) and "新人券" in replies[0]
    assert replies == [replies[0]] * 3  # the retries replay the first answer
    assert applied_to("fan1") == ({"直播", "新客"}, True, 1)
    scan = ChannelCodeScan.get()
    assert (scan.new_follower, scan.scans) == (True, 1)
    issued = IssuedCoupon.get()
    assert issued.code in replies[0] and scan.issued_coupon_id == issued.id


async def test_an_existing_follower_scanning_gets_it_once(client, stand) -> None:
    code = await make_code(stand)
    server = wechat("safe")
    now = int(time.time())
    _, body = await post(client, server, "/wechat/mp", event(server, "fan2", "subscribe", "", now))
    assert "欢迎光临" in reply_text(server, body)  # a plain follower first
    assert applied_to("fan2") == (set(), False, 0)
    _, body = await post(client, server, "/wechat/mp",
                         event(server, "fan2", "SCAN", stand.sandbox.scan_event_key(code.ticket, subscribe=False),
                               now + 1))
    assert reply_text(server, body).startswith(WELCOME)
    _, body = await post(client, server, "/wechat/mp",
                         event(server, "fan2", "SCAN", stand.sandbox.scan_event_key(code.ticket, subscribe=False),
                               now + 2))
    assert body == "success"  # a second scan counts, and applies nothing again
    assert applied_to("fan2") == ({"直播", "新客"}, True, 1)
    scan = ChannelCodeScan.get()
    assert (scan.new_follower, scan.scans) == (False, 2)
    figures = channel_codes.figures(code)
    assert (figures.scans, figures.customers, figures.new_followers, figures.coupons_issued) == (2, 1, 0, 1)


async def test_an_expired_code_is_refused_and_the_follower_welcomed_plainly(client, stand, fake_clock) -> None:
    code = await make_code(stand, expires_in=timedelta(days=1))
    fake_clock.advance(days=1, seconds=1)
    server = wechat("safe")
    _, body = await post(client, server, "/wechat/mp",
                         event(server, "fan3", "subscribe", stand.sandbox.scan_event_key(code.ticket), int(time.time())))
    text = reply_text(server, body)
    assert "欢迎光临" in text and WELCOME not in text
    assert applied_to("fan3") == (set(), False, 0)
    assert ChannelCodeScan.select().count() == 0


async def test_a_scene_that_is_no_code_of_ours_is_a_plain_subscription(client, stand) -> None:
    server = wechat("safe")
    _, body = await post(client, server, "/wechat/mp", event(server, "fan4", "subscribe", "qrscene_123", 1))
    assert "欢迎光临" in reply_text(server, body)


async def test_figures_count_orders_and_revenue_in_7_and_30_days(stand, database, fake_clock) -> None:
    code = await make_code(stand)
    buyer = Customer.create(channel="mp", external_id="b1")
    other = Customer.create(channel="mp", external_id="b2")
    start = clock.now()
    ChannelCodeScan.create(code=code, customer=buyer, new_follower=True, first_at=start, last_at=start)
    issued = channel_codes.issue_coupon(code.coupon_id, buyer.id, "k")
    IssuedCoupon.update(used_at=start).where(IssuedCoupon.id == issued.id).execute()
    ChannelCodeScan.update(issued_coupon=issued.id).execute()
    for n, (days, amount, status, who) in enumerate([(-1, 5, "paid", buyer), (1, 100, "paid", buyer),
                                                      (10, 50, "delivered", buyer), (40, 7, "paid", buyer),
                                                      (2, 9, "cancelled", buyer), (2, 1000, "paid", other)]):
        Order.create(shop_order_id=f"o{n}", customer=who, status=status, amount=Decimal(amount),
                     created_at=start + timedelta(days=days))
    figures = channel_codes.figures(code)
    assert (figures.new_followers, figures.coupons_issued, figures.coupons_used) == (1, 1, 1)
    assert figures.orders == {7: 1, 30: 2}
    assert figures.revenue == {7: Decimal(100), 30: Decimal(150)}
