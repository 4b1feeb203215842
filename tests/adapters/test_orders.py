import dataclasses
import json

import pytest
from aiohttp.test_utils import TestClient

from adapters.orders import sign
from adapters.server import create_app
from bot.core.config import OrdersConfig
from bot.core.models import Customer, Order, SeenRequest
from tests.bot.crm.helpers import customer, order_event

SECRET = "shop-secret-测试"


@pytest.fixture
async def client(aiohttp_client, config, database, fake_clock) -> TestClient:
    config = dataclasses.replace(config, orders=OrdersConfig(secret=SECRET, max_skew_seconds=300))
    return await aiohttp_client(create_app(config, run_sender=False))


def now_ts(fake_clock) -> str:
    return str(int(fake_clock.now().timestamp()))


async def post(client: TestClient, body: bytes | dict, ts: str, secret: str = SECRET, signature: str | None = None):
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
    headers = {"X-Kefu-Timestamp": ts, "X-Kefu-Signature": signature or sign(secret, ts, raw),
               "Content-Type": "application/json"}
    resp = await client.post("/api/orders", data=raw, headers=headers)
    return resp.status, await resp.json()


async def test_a_signed_order_is_applied(client, fake_clock) -> None:
    c = customer("u1")
    status, body = await post(client, order_event(amount="66.00"), now_ts(fake_clock))
    assert status == 200, body
    assert body == {"ok": True, "duplicate": False, "shop_order_id": "T1001", "outcome": "created", "status": "paid",
                    "customer_matched": True}
    assert Customer.get_by_id(c.id).order_count == 1


@pytest.mark.parametrize("secret, signature", [
    ("wrong-secret", None), (SECRET, "sha256=" + "0" * 64), (SECRET, "md5=abc"), (SECRET, " "),
])
async def test_a_bad_signature_is_refused_and_stores_nothing(client, fake_clock, secret, signature) -> None:
    status, body = await post(client, order_event(), now_ts(fake_clock), secret=secret, signature=signature)
    assert status == 403
    assert "X-Kefu-Signature" in body["error"]
    assert Order.select().count() == 0


async def test_a_signature_over_another_timestamp_is_refused(client, fake_clock) -> None:
    raw = json.dumps(order_event()).encode()
    ts = now_ts(fake_clock)
    status, body = await post(client, raw, ts, signature=sign(SECRET, str(int(ts) - 1), raw))
    assert status == 403
    assert Order.select().count() == 0


async def test_an_old_or_future_timestamp_is_refused_as_replay(client, fake_clock) -> None:
    for delta in (-301, 301):
        ts = str(int(fake_clock.now().timestamp()) + delta)
        status, body = await post(client, order_event(), ts)
        assert status == 403
        assert "X-Kefu-Timestamp" in body["error"] and "replay" in body["error"]
    ts = str(int(fake_clock.now().timestamp()) - 299)
    assert (await post(client, order_event(), ts))[0] == 200


async def test_missing_timestamp_is_refused(client, fake_clock) -> None:
    raw = json.dumps(order_event()).encode()
    resp = await client.post("/api/orders", data=raw, headers={"X-Kefu-Signature": sign(SECRET, "", raw)})
    assert resp.status == 403
    assert "X-Kefu-Timestamp" in (await resp.json())["error"]


async def test_a_replayed_request_within_the_window_is_not_applied_twice(client, fake_clock) -> None:
    customer("u1")
    raw = json.dumps(order_event(amount="10.00")).encode()
    ts = now_ts(fake_clock)
    first = await post(client, raw, ts)
    fake_clock.advance(seconds=30)
    replay = await post(client, raw, ts)  # the captured request, byte for byte
    retry = await post(client, raw, now_ts(fake_clock))  # the shop's retry, signed anew
    assert first[0] == replay[0] == retry[0] == 200
    assert first[1]["duplicate"] is False
    assert replay[1]["duplicate"] is True and retry[1]["duplicate"] is True
    assert SeenRequest.select().count() == 1
    assert Customer.get().order_count == 1


async def test_idempotent_by_shop_order_id_and_out_of_order(client, fake_clock) -> None:
    customer("u1")
    shipped = order_event(status="shipped", at="2026-11-24T12:00:00+08:00", amount="88.00")
    paid = order_event(status="paid", at="2026-11-24T10:00:00+08:00", amount="88.00")
    assert (await post(client, shipped, now_ts(fake_clock)))[1]["outcome"] == "created"
    late = (await post(client, paid, now_ts(fake_clock)))[1]
    assert (late["outcome"], late["status"]) == ("stale", "shipped")
    same_event_new_body = {**shipped, "items": None}  # another body, the same event
    again = (await post(client, same_event_new_body, now_ts(fake_clock)))[1]
    assert again["outcome"] == "duplicate" and again["duplicate"] is True
    assert Order.select().count() == 1
    assert Order.get().status == "shipped"


@pytest.mark.parametrize("body, field", [
    (b"{not json", "body"),
    (b"\xff\xfe", "body"),
    (b"[1, 2]", "body"),
    ({**order_event(), "status": "teleported"}, "status"),
    ({**order_event(), "amount": "-5"}, "amount"),
    ({**order_event(), "event_at": "2026-11-24 10:00"}, "event_at"),
    ({k: v for k, v in order_event().items() if k != "shop_order_id"}, "shop_order_id"),
    ({**order_event(), "customer": {"channel": "web"}}, "customer.user_id"),
    (order_event(user=None), "customer"),
])
async def test_a_bad_payload_is_a_400_naming_the_field(client, fake_clock, body, field) -> None:
    status, answer = await post(client, body, now_ts(fake_clock))
    assert status == 400, answer
    assert answer["field"] == field
    assert answer["error"].startswith(f"{field}: ")
    assert Order.select().count() == 0 and SeenRequest.select().count() == 0


async def test_an_oversized_body_is_413(client, fake_clock) -> None:
    huge = {**order_event(), "items": [{"name": "x" * 1000}] * 400}
    status = (await client.post("/api/orders", data=json.dumps(huge).encode(),
                                headers={"X-Kefu-Timestamp": now_ts(fake_clock)})).status
    assert status == 413


async def test_without_a_secret_the_api_is_off(aiohttp_client, config, database) -> None:
    app_client = await aiohttp_client(create_app(config, run_sender=False))
    resp = await app_client.post("/api/orders", data=b"{}")
    assert resp.status == 503
    assert "secret" in (await resp.json())["error"]


async def test_a_buyer_on_a_channel_that_is_not_configured_is_refused(client, fake_clock) -> None:
    """Such an order could never be linked to a customer: the shop hears it at once."""
    status, body = await post(client, order_event(channel="nochannel"), now_ts(fake_clock))
    assert status == 400 and body["field"] == "customer.channel" and "no channel named 'nochannel'" in body["error"]
    assert Order.select().count() == 0


def _raw(**fields) -> bytes:
    """An order event as JSON text with the given fields replaced (json.dumps escapes a lone
    surrogate as \\ud800, as a shop system's serializer would)."""
    return json.dumps({**order_event(), **fields}).encode()


@pytest.mark.parametrize("raw, field", [
    (_raw(items=[{"sku": "T-1", "name": "\ud800"}]), "items[0].name"),
    (_raw(customer={"channel": "web", "user_id": "u\udfff"}), "customer.user_id"),
    (_raw(items=[{"\ud800": 1}]), "items[0].'\\ud800'"),
    (_raw(items=[{"name": "a\x00b"}]), "items[0].name"),
    (b"[" * 50000 + b"]" * 50000, "body"),
    (_raw(items=[{"x": [[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}]), "items[0].x[0][0][0][0][0][0][0][0][0][0][0][0][0][0]"),
    (_raw(amount=float("nan")), "amount"),
    (_raw(amount=float("inf")), "amount"),
    (_raw(amount=10**30), "amount"),
    (_raw(event_at=2**63), "event_at"),
    (b'{"shop_order_id": "T1", "shop_order_id": "T2", "status": "paid"}', "shop_order_id"),
])
async def test_input_no_database_could_store_is_a_400_not_a_500(client, fake_clock, raw, field) -> None:
    """Issue 23: a lone surrogate, NUL, 50,000 levels of nesting, NaN, a number beyond 64 bits
    were a 500 (or stored); each is now refused by the one JSON reader, naming where."""
    customer("u1")
    status, answer = await post(client, raw, now_ts(fake_clock))
    assert status == 400, answer
    assert answer["field"] == field and answer["error"].startswith(f"{field}: ")
    assert Order.select().count() == 0 and SeenRequest.select().count() == 0


@pytest.mark.parametrize("timestamp", ["1" * 5000, "١٧٦٤٠٣٦٠٠٠", " "])
async def test_a_timestamp_that_is_not_ascii_unix_seconds_is_a_403(client, timestamp) -> None:
    raw = _raw()
    resp = await client.post("/api/orders", data=raw, headers={"X-Kefu-Timestamp": timestamp,
                                                               "X-Kefu-Signature": sign(SECRET, timestamp, raw)})
    assert resp.status == 403 and "X-Kefu-Timestamp" in (await resp.json())["error"]
    assert Order.select().count() == 0


@pytest.mark.parametrize("field", ["shop_order_id", "status", "event_at", "amount", "customer", "items",
                                   "created_at"])
async def test_any_json_type_in_any_field_is_answered_never_a_500(client, fake_clock, field) -> None:
    for value in (None, True, 0, -1, 1.5, 2**63 - 1, "", "x" * 5000, [], [1], {}, {"a": [1]}):
        status, answer = await post(client, _raw(**{field: value}), now_ts(fake_clock))
        assert status in (200, 400), (field, value, answer)
        if status == 400:
            assert answer["field"].split(".")[0].split("[")[0] in (field, "customer"), (field, value, answer)


async def test_the_413_answer_is_json(client, fake_clock) -> None:
    huge = json.dumps({**order_event(), "items": [{"name": "x" * 1000}] * 400}).encode()
    resp = await client.post("/api/orders", data=huge, headers={"X-Kefu-Timestamp": now_ts(fake_clock)})
    assert resp.status == 413 and "max_body_bytes" in (await resp.json())["error"]
