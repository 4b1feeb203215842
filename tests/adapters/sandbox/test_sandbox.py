"""The stand-in itself (platform rules, faults, control API) and the WeChat-server client
(retries like WeChat, the retry storm, `kefu chat` on a 公众号 channel)."""

from __future__ import annotations

import asyncio
import builtins
import time

import aiohttp
import pytest

from adapters.sandbox.chat import run_wechat_chat
from bot.core.models import Message, Outbox
from tests.adapters.wechat_kit import APP_ID, kefu_client, mp_channel, stand, wechat
from tests.factories import SHIPPING, shop_faqs

__all__ = ["stand"]


async def test_a_new_token_invalidates_the_previous_one(stand) -> None:
    async with aiohttp.ClientSession() as http:
        async def token() -> str:
            async with http.get(f"{stand.base}/cgi-bin/token", params={"grant_type": "client_credential",
                                                                       "appid": APP_ID, "secret": "s"}) as r:
                return (await r.json())["access_token"]

        async def send(tok: str | None) -> int:
            params = {"access_token": tok} if tok else {}
            async with http.post(f"{stand.base}/cgi-bin/message/custom/send", params=params,
                                 json={"touser": "o1", "msgtype": "text", "text": {"content": "hi"}}) as r:
                return (await r.json())["errcode"]

        old = await token()
        assert await send(old) == 0
        new = await token()
        assert (await send(old), await send(new), await send(None)) == (40001, 0, 41001)
        stand.sandbox.expire_tokens()
        assert await send(new) == 42001
    assert [c.errcode for c in stand.sandbox.calls if c.path.endswith("custom/send")] == [0, 40001, 0, 41001, 42001]


async def test_faults_through_the_control_api(stand) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{stand.base}/sandbox/faults", json={"errcode": 45009, "path": "/custom/send",
                                                                  "times": 2, "after": 1}) as r:
            assert r.status == 200
        async with http.get(f"{stand.base}/cgi-bin/token", params={"grant_type": "client_credential",
                                                                   "appid": APP_ID, "secret": "s"}) as r:
            tok = (await r.json())["access_token"]
        codes = []
        for _ in range(4):
            async with http.post(f"{stand.base}/cgi-bin/message/custom/send", params={"access_token": tok},
                                 json={"touser": "o1", "msgtype": "text", "text": {"content": "x"}}) as r:
                codes.append((await r.json())["errcode"])
        assert codes == [0, 45009, 45009, 0]
        async with http.get(f"{stand.base}/sandbox/messages", params={"touser": "o1"}) as r:
            assert (await r.json())["messages"] == ["x", "x"]
        async with http.post(f"{stand.base}/sandbox/kf/messages",
                             json={"open_kfid": "wk1", "external_userid": "wm1", "text": "在吗"}) as r:
            assert (await r.json())["msgid"].startswith("kf")
    assert stand.sandbox.kf[0].body == {"content": "在吗"}


@pytest.fixture
async def slow_kefu(aiohttp_client, config, database, stand, dispatcher):
    shop_faqs()
    original = dispatcher.decide  # each message, alone or in a batch
    calls = []

    def slow(inbound, slot=None):  # the first delivery is slow, WeChat's retries are not
        calls.append(inbound.msg_id)
        if len(calls) == 1:
            time.sleep(0.5)
        return original(inbound, slot)

    dispatcher.decide = slow  # type: ignore[method-assign]
    return await kefu_client(aiohttp_client, config, mp_channel(stand.base, deadline=4.0), dispatcher=dispatcher)


async def test_the_client_retries_like_wechat_and_the_retry_gets_the_first_reply(slow_kefu) -> None:
    server = wechat("safe")
    async with aiohttp.ClientSession() as http:
        delivery = await server.deliver(http, str(slow_kefu.make_url("/wechat/mp")),
                                        server.text_xml("o_slow", "发货要多久", "r1"), timeout=0.25,
                                        retries=20)
    assert delivery.attempts > 1 and delivery.status == 200
    assert delivery.text == SHIPPING
    assert Message.select().where(Message.direction == "in").count() == 1
    assert Outbox.select().count() == 0  # answered inline, not also through the API


async def test_retry_storm_one_row_and_one_reply_per_message(aiohttp_client, config, database, stand) -> None:
    shop_faqs()
    kefu = await kefu_client(aiohttp_client, config, mp_channel(stand.base))
    server = wechat("safe")
    url = str(kefu.make_url("/wechat/mp"))
    async with aiohttp.ClientSession() as http:
        xmls = [server.text_xml(f"o_storm{n}", "发货要多久", f"storm{n}") for n in range(10)]
        results = await asyncio.gather(*(server.deliver(http, url, xml) for xml in xmls for _ in range(3)))
    answers = [{r.text for r in results[n * 3:n * 3 + 3]} for n in range(10)]
    # the three copies of each message got one and the same reply (what the reply says is
    # the FAQ engine's business, tested there)
    assert all(len(a) == 1 and a != {""} for a in answers)
    assert Message.select().where(Message.direction == "in").count() == 10
    assert Message.select().where(Message.direction == "out").count() == 10


async def test_terminal_chat_talks_through_the_official_account_path(aiohttp_client, config, database, stand,
                                                                     monkeypatch, capsys) -> None:
    shop_faqs()
    channel = mp_channel(stand.base)
    kefu = await kefu_client(aiohttp_client, config, channel)
    lines = iter(["发货要多久", "/quit"])
    monkeypatch.setattr(builtins, "input", lambda prompt="": next(lines))
    await asyncio.to_thread(run_wechat_chat, channel, str(kefu.make_url("/")), "o_terminal")
    out = capsys.readouterr().out
    assert "欢迎" in out and SHIPPING in out
    assert Message.get(Message.text == "发货要多久").peer_id == "o_terminal"


async def test_mass_sends_keep_the_platforms_list_size_clientmsgid_dedup_and_monthly_allowance(stand) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{stand.base}/cgi-bin/token", params={"grant_type": "client_credential",
                                                                   "appid": APP_ID, "secret": "s"}) as r:
            token = (await r.json())["access_token"]

        async def mass(touser: list[str], client_id: str = "") -> dict:  # type: ignore[type-arg]
            body = {"touser": touser, "msgtype": "text", "text": {"content": "双十二"}, "clientmsgid": client_id}
            async with http.post(f"{stand.base}/cgi-bin/message/mass/send", params={"access_token": token},
                                 json=body) as r:
                return await r.json()  # type: ignore[no-any-return]

        assert (await mass(["o1"]))["errcode"] == 40130  # at least two openids
        assert (await mass(["o1", "o2"], "x" * 65))["errcode"] == 45067
        first = await mass(["o1", "o2"], "run-1")
        assert first["errcode"] == 0
        again = await mass(["o1", "o2"], "run-1")
        assert (again["errcode"], again["msg_id"]) == (45066, first["msg_id"])  # within a minute
        stand.sandbox.time_passes(120)
        again = await mass(["o1", "o2"], "run-1")
        assert (again["errcode"], again["msg_id"]) == (45065, first["msg_id"])  # deduplicated, not sent
        for n in range(2, 5):
            assert (await mass(["o1", "o2"], f"run-{n}"))["errcode"] == 0
        fifth = await mass(["o1", "o3"], "run-5")  # o1's fifth this month
    report = stand.sandbox.mass_report(fifth["msg_id"])
    assert (report["TotalCount"], report["SentCount"], report["ErrorCount"]) == ("2", "1", "1")
    assert len(stand.sandbox.mass_jobs) == 5
    assert stand.sandbox.texts_to("o3") == ["双十二"]
