"""`GET /metrics` after a scripted conversation: every counter moved by exactly what happened.

The script: an FAQ answer, the same message again (a platform retry), a handoff to an agent,
a reply ready only after the passive-reply deadline, a 公众号 follower answered inline and a
send to them that the stand-in refuses (40003). Without `Authorization: Bearer <token>`
the endpoint refuses; without `[metrics] enabled` it does not exist.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from adapters.server import BRIDGE
from bot.sending import outbox
from bot.core.config import ChannelConfig, Config, MetricsConfig
from bot.conversation.dispatcher import Dispatcher
from bot.faq.store import FaqStore
from bot.core.models import Outbox
from tests.adapters.wechat_kit import APP_ID, Stand, eventually, kefu_client, mp_channel, post, stand, wechat  # noqa: F401
from tests.factories import make_agent, shop_faqs

TOKEN = "metrics-token-0123456789"
SLOW = "这个问题要想很久"


class GatedDispatcher(Dispatcher):
    """Holds one message until the test lets it go: its reply is late by construction."""

    gate = threading.Event()

    def decide(self, inbound: Any, *args: Any) -> Any:  # each message, alone or in a batch
        if inbound.text == SLOW:
            self.gate.wait(30)
        return super().decide(inbound, *args)


def scrape_text(text: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


async def scrape(client: TestClient) -> dict[str, float]:
    resp = await client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200, await resp.text()
    assert resp.headers["Content-Type"].startswith("text/plain")
    return scrape_text(await resp.text())


@pytest.fixture
async def client(aiohttp_client: Any, config: Config, database: Any, stand: Stand) -> TestClient:  # noqa: F811
    shop_faqs()
    make_agent("小美")
    config = dataclasses.replace(config, metrics=MetricsConfig(enabled=True, token=TOKEN))
    GatedDispatcher.gate = threading.Event()
    dispatcher = GatedDispatcher(config, FaqStore(check_seconds=0, embedder=None))
    slow = ChannelConfig(name="slow", kind="web", secret="slow-secret", deadline_seconds=0.2)
    return await kefu_client(aiohttp_client, config, slow, mp_channel(stand.base, aes=False), run_sender=True,
                             dispatcher=dispatcher)


async def say(client: TestClient, channel: str, text: str, msg_id: str, who: dict[str, str] | None = None) -> Any:
    who = who or await (await client.post(f"/api/web/{channel}/session")).json()
    resp = await client.post(f"/api/web/{channel}/messages", json={**who, "msg_id": msg_id, "text": text})
    assert resp.status == 200, await resp.text()
    return who, await resp.json()


async def test_counters_move_by_exactly_what_happened(client: TestClient, stand: Stand) -> None:  # noqa: F811
    before = await scrape(client)

    who, answered = await say(client, "web", "发货要多久", "m1")  # an FAQ answer, exact phrasing
    assert answered["replies"] and not answered["duplicate"]
    _, again = await say(client, "web", "发货要多久", "m1", who)  # the platform's retry
    assert again["duplicate"]
    _, handed = await say(client, "web", "转人工", "m2")  # another customer asks for a human
    _, late = await say(client, "slow", SLOW, "m3")  # past the 0.2 s deadline
    assert late["late"] and not late["replies"]
    GatedDispatcher.gate.set()
    status, _ = await post(client, wechat("plain"), "/wechat/mp",
                           wechat("plain").text_xml("o_metrics", "怎么退货", "9001"))  # answered inline
    assert status == 200
    bridge = client.server.app[BRIDGE]
    await bridge.call(outbox.enqueue, "metrics:fail", "mp", "o_metrics", {"kind": "text", "text": "您好"})
    stand.sandbox.inject(40003, path="message/custom/send")  # the platform refuses this send
    assert await eventually(lambda: Outbox.get(Outbox.key == "metrics:fail").status == "failed")
    assert await eventually(lambda: Outbox.select().where(Outbox.channel == "slow").count() == 1)

    after = await scrape(client)

    def moved(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    assert moved("kefu_inbound_messages_total{channel=web,kind=text}") == 2
    assert moved("kefu_inbound_messages_total{channel=slow,kind=text}") == 1
    assert moved("kefu_inbound_messages_total{channel=mp,kind=text}") == 1
    assert moved("kefu_duplicates_dropped_total{channel=web}") == 1
    assert moved("kefu_replies_total{channel=web,stage=exact}") == 1
    assert moved("kefu_replies_total{channel=web,stage=handed_over}") == 1
    assert moved("kefu_replies_total{channel=slow,stage=abstained}") == 1
    assert moved("kefu_replies_total{channel=mp,stage=exact}") == 1
    assert moved("kefu_late_replies_total{channel=slow}") == 1
    assert moved("kefu_late_replies_total{channel=web}") == 0
    assert moved("kefu_reply_latency_seconds_count{channel=web}") == 2
    assert moved("kefu_platform_errors_total{errcode=40003}") == 1
    assert moved(f"kefu_token_refreshes_total{{app=mp:{APP_ID}}}") == 1
    # state read from the database
    assert after["kefu_outbox_backlog{channel=mp,status=failed}"] == 1
    assert after["kefu_agents_online{}"] == 1
    assert after["kefu_open_conversations{status=assigned}"] == 1
    assert after["kefu_queue_length{}"] == 0
    assert after["kefu_faq_index_faqs{}"] == 3


async def test_metrics_refuse_a_request_without_the_token(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": TOKEN}):
        resp = await client.get("/metrics", headers=headers)
        assert resp.status == 401
        assert "kefu_" not in await resp.text()


async def test_metrics_are_off_by_default(aiohttp_client: Any, config: Config, database: Any) -> None:
    plain = await kefu_client(aiohttp_client, config)
    resp = await plain.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 404


def test_admin_metrics_need_the_token(config: Config, database: Any) -> None:
    from admin.app import create_app

    app = create_app(dataclasses.replace(config, metrics=MetricsConfig(enabled=True, token=TOKEN)), testing=True)
    web = app.test_client()
    assert web.get("/metrics").status_code == 401
    resp = web.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status_code == 200
    assert b"kefu_queue_length 0.0" in resp.data and b"kefu_inbound_messages_total" in resp.data
    assert create_app(config, testing=True).test_client().get("/metrics").status_code == 404
