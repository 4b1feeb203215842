"""JSON logs: one object per line; the request id of a webhook request is on the lines it
causes in the core's threads; no configured secret or issued token appears anywhere in a
whole run's log (DEBUG level: everything kefu would write)."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import time
from typing import Any, Iterator

import pytest

from adapters.server import BRIDGE
from bot.sending import outbox
from bot.core.config import Config, LogConfig, MetricsConfig, OrdersConfig
from bot.ops.redact import configured_secrets
from bot.core.runtime import setup_logging
from tests.adapters.wechat_kit import Stand, eventually, kefu_client, mp_channel, post, stand, wechat  # noqa: F401
from tests.factories import make_agent, shop_faqs


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


async def test_request_id_follows_and_no_secret_is_logged(aiohttp_client: Any, config: Config, database: Any,
                                                         stand: Stand, log_stream: io.StringIO) -> None:  # noqa: F811
    config = dataclasses.replace(config, log=LogConfig(level="DEBUG", format="json"),
                                 metrics=MetricsConfig(enabled=True, token="metrics-secret-0123456789"),
                                 orders=OrdersConfig(secret="orders-secret-0123"))
    setup_logging(config)
    logging.getLogger().handlers[0].setStream(log_stream)  # type: ignore[attr-defined]
    shop_faqs()
    make_agent("小美")
    channel = mp_channel(stand.base, aes=True)
    client = await kefu_client(aiohttp_client, config, channel, run_sender=True)
    full = dataclasses.replace(config, channels=(*config.channels, channel))

    who = await (await client.post("/api/web/web/session")).json()
    resp = await client.post("/api/web/web/messages", json={**who, "msg_id": "log-1", "text": "发货要多久"},
                             headers={"X-Request-Id": "nginx-req-0001"})
    assert resp.status == 200 and resp.headers["X-Request-Id"] == "nginx-req-0001"
    resp = await client.post("/api/web/web/messages", json={**who, "msg_id": "log-2", "text": "转人工"})
    second = resp.headers["X-Request-Id"]
    status, _ = await post(client, wechat("safe"), "/wechat/mp", wechat("safe").text_xml("o_log", "怎么退货", "77"))
    assert status == 200
    await client.get("/metrics", headers={"Authorization": "Bearer metrics-secret-0123456789"})
    stand.sandbox.expire_tokens()  # a token refresh in the run as well
    await client.server.app[BRIDGE].call(outbox.enqueue, "log:send", "mp", "o_log", {"kind": "text", "text": "hi"})
    from bot.core.models import Outbox

    assert await eventually(lambda: Outbox.get(Outbox.key == "log:send").status == "sent")
    await client.close()

    text = log_stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is one JSON object
    messages = {str(line.get("msg_id")).rsplit(":", 1)[-1]: line for line in lines if line.get("event") == "message"}
    assert "log-1" in messages, (list(messages), text[-1500:])
    assert messages["log-1"]["request_id"] == "nginx-req-0001"  # in the core's thread
    assert messages["log-2"]["request_id"] == second and len(second) == 16
    assert messages["77"]["request_id"] not in ("", "nginx-req-0001", second)
    leaked = [s for s in configured_secrets(full) + list(stand.sandbox.token_apps) if s in text]
    assert not leaked, f"secrets in the log: {leaked}"
    assert len(configured_secrets(full)) >= 6


async def test_a_late_reply_is_sent_under_the_request_id_of_its_message(aiohttp_client: Any, config: Config,
                                                                       database: Any, stand: Stand, dispatcher: Any,
                                                                       log_stream: io.StringIO) -> None:  # noqa: F811
    setup_logging(dataclasses.replace(config, log=LogConfig(level="INFO", format="json")))
    logging.getLogger().handlers[0].setStream(log_stream)  # type: ignore[attr-defined]
    shop_faqs()
    original = dispatcher.decide  # each message, alone or in a batch

    def slow(inbound: Any, slot: Any = None) -> Any:  # the answer is ready after the 0.3 s deadline
        time.sleep(0.6)
        return original(inbound, slot)

    dispatcher.decide = slow
    client = await kefu_client(aiohttp_client, config, mp_channel(stand.base, aes=False, deadline=0.3),
                               run_sender=True, dispatcher=dispatcher)
    server = wechat("plain")
    params, body = server.sign(server.text_xml("o_late", "怎么退货", "late-1"))
    resp = await client.post("/wechat/mp", params=params, data=body, headers={"X-Request-Id": "nginx-late-0001"})
    assert resp.status == 200 and await resp.text() == "success"  # late: the reply goes through the outbox
    from bot.core.models import Outbox

    assert await eventually(lambda: Outbox.select().where(Outbox.status == "sent").count() == 1)
    await client.close()

    lines = [json.loads(line) for line in log_stream.getvalue().splitlines() if line.strip()]
    sends = [line for line in lines if line.get("event") == "send"]
    assert [(s["status"], s["request_id"]) for s in sends] == [("sent", "nginx-late-0001")], lines
    sent = stand.sandbox.sends("custom/send")
    assert len(sent) == 1 and sent[0].body["touser"] == "o_late"


def test_fresh_request_ids_are_unique_and_a_forked_child_gets_its_own_prefix() -> None:
    import os
    import re

    from bot.core.logs import new_request_id

    ids = [new_request_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids) and all(re.fullmatch(r"[0-9a-f]{16}", i) for i in ids)
    assert new_request_id("bad id!") != "bad id!" and new_request_id("nginx-req-0002") == "nginx-req-0002"
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports and leaves at once
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    theirs = os.read(read, 64).decode()
    os.waitpid(child, 0)
    os.close(read)
    assert len(theirs) == 16 and theirs[:8] != ids[0][:8]  # (a 1 in 4 billion clash would fail it)
