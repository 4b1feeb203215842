"""The workbench's live stream (issue 22): each agent is pushed their own conversations'
lines and inbox, never another agent's; a forged, expired, mis-named or revoked token opens
nothing; an agent's reply reaches the customer's poll without waiting for the sender's tick."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from adapters import workbench_stream
from adapters.server import create_app
from admin import users
from bot.conversation import workbench, workbench_token
from bot.core.config import Config
from bot.core.models import AdminUser, Agent, Conversation, Customer
from bot.conversation.workbench_token import SALT, panel_secret
from tests.factories import make_agent, shop_faqs

PASSWORD = "stream-pass-1234"


@pytest.fixture
async def client(aiohttp_client: Any, config: Config, database: Any) -> TestClient:
    shop_faqs()
    return await aiohttp_client(create_app(config, run_sender=True))


def desk(name: str) -> tuple[Agent, AdminUser]:
    agent = make_agent(name, f"agent-{name}")
    return agent, users.create_user(f"u-{name}", PASSWORD, "agent", agent_id=agent.id)


class Stream:
    """An open event stream, read event by event."""

    def __init__(self, response: ClientResponse) -> None:
        self.response = response
        self.seen: list[tuple[str, dict[str, Any]]] = []

    async def next(self, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        event, data = "", ""
        while True:
            line = (await asyncio.wait_for(self.response.content.readline(), timeout)).decode()
            if line == "":
                raise EOFError("stream closed")
            line = line.rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif line == "" and event:
                self.seen.append((event, json.loads(data)))
                return self.seen[-1]

    async def until(self, wanted: Any, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            event = await self.next(max(0.05, deadline - time.monotonic()))
            if wanted(*event):
                return event


async def open_stream(client: TestClient, config: Config, user: AdminUser) -> Stream:
    token = workbench_token.issue(panel_secret(config), AdminUser.get_by_id(user.id))
    response = await client.get(workbench_stream.PATH, params={"token": token})
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    stream = Stream(response)
    assert (await stream.next())[0] == "hello"
    return stream


async def say(client: TestClient, who: dict[str, str], text: str, msg_id: str) -> dict[str, Any]:
    resp = await client.post("/api/web/web/messages", json={**who, "msg_id": msg_id, "text": text})
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def visitor(client: TestClient) -> dict[str, str]:
    return await (await client.post("/api/web/web/session")).json()


def conversation_ids(events: list[tuple[str, dict[str, Any]]]) -> set[int]:
    """Every conversation an agent was told anything about (lines, or their own inbox)."""
    found = {d["conversation"] for e, d in events if e == "message"}
    found |= {d["row"]["id"] for e, d in events if e == "row"}
    return found | {row["id"] for e, d in events if e == "inbox" for row in d["mine"]}


async def test_each_agent_is_pushed_only_their_own_conversation(client: TestClient, config: Config) -> None:
    (mei, mei_user), (qiang, qiang_user) = desk("mei"), desk("qiang")
    mei_stream, qiang_stream = await open_stream(client, config, mei_user), await open_stream(client, config, qiang_user)
    first, second = await visitor(client), await visitor(client)
    await say(client, first, "转人工", "a1")  # round robin: mei, then qiang
    await say(client, second, "转人工", "b1")
    mine = Conversation.get(Conversation.customer == Customer.get(Customer.external_id == first["user_id"]).id)
    theirs = Conversation.get(Conversation.customer == Customer.get(Customer.external_id == second["user_id"]).id)
    assert (mine.agent_id, theirs.agent_id) == (mei.id, qiang.id)

    await mei_stream.until(lambda e, d: e == "inbox" and [r["id"] for r in d["mine"]] == [mine.id])
    await say(client, first, '<img src=x onerror="alert(1)">还在吗', "a2")
    _, line = await mei_stream.until(lambda e, d: e == "message" and d["message"]["author"] == "customer"
                                     and "还在吗" in d["message"]["text"])
    assert line["conversation"] == mine.id
    assert line["message"]["text"] == '<img src=x onerror="alert(1)">还在吗'  # data, drawn as text by the page
    await qiang_stream.until(lambda e, d: e == "inbox" and [r["id"] for r in d["mine"]] == [theirs.id])
    await say(client, second, "你好", "b2")
    await qiang_stream.until(lambda e, d: e == "message" and d["message"]["text"] == "你好")
    _, line = await qiang_stream.until(lambda e, d: e == "row")  # only that inbox line, its unread count
    assert line["row"]["id"] == theirs.id and line["row"]["last"] == "你好" and line["row"]["unread"] >= 1

    assert conversation_ids(mei_stream.seen) == {mine.id}
    assert conversation_ids(qiang_stream.seen) == {theirs.id}
    assert all(mine.id != r["id"] for e, d in qiang_stream.seen if e == "inbox" for r in d["queue"])


async def test_a_workbench_reply_reaches_the_customers_poll_without_the_senders_tick(
        client: TestClient, config: Config) -> None:
    mei, mei_user = desk("mei")
    stream = await open_stream(client, config, mei_user)
    who = await visitor(client)
    handoff = await say(client, who, "转人工", "a1")
    conversation = Conversation.get(Conversation.agent == mei.id)
    await stream.until(lambda e, d: e == "inbox" and d["mine"])
    began = time.monotonic()
    assert workbench.reply(conversation, mei, "您好，我来帮您", "client-0001")
    await stream.until(lambda e, d: e == "message" and d["message"]["author"] == "agent")
    while True:  # the sender is woken by the stream's look, not left to its next poll
        resp = await client.get("/api/web/web/messages", params={**who, "after": handoff["replies"][-1]["id"]})
        texts = [m["text"] for m in (await resp.json())["messages"]]
        if "您好，我来帮您" in texts:
            break
        assert time.monotonic() - began < 5, texts
        await asyncio.sleep(0.02)


class PastSigner(TimestampSigner):
    """Signs as if it were two minutes ago."""

    def get_timestamp(self) -> int:
        return int(time.time()) - 120


async def test_forged_expired_misnamed_and_missing_tokens_open_nothing(client: TestClient, config: Config) -> None:
    (mei, mei_user), (_, qiang_user) = desk("mei"), desk("qiang")
    secret = panel_secret(config)
    good = workbench_token.issue(secret, mei_user)
    claims = {"u": mei_user.id, "a": mei.id, "v": 0}
    refused = {
        "missing": "",
        "garbage": "not-a-token",
        "other secret": URLSafeTimedSerializer("someone else's key", salt=SALT).dumps(claims),
        "other salt": URLSafeTimedSerializer(secret, salt="flask-session").dumps(claims),
        "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "expired": URLSafeTimedSerializer(secret, salt=SALT, signer=PastSigner).dumps(claims),
        # even signed by us: qiang's user naming mei's agent, or an agent's user claiming to be an admin
        "another agent's id": URLSafeTimedSerializer(secret, salt=SALT).dumps({"u": qiang_user.id, "a": mei.id, "v": 0}),
        "agent as admin": URLSafeTimedSerializer(secret, salt=SALT).dumps({"u": mei_user.id, "a": None, "v": 0}),
        "too long": "A" * 2000,
    }
    for why, token in refused.items():
        resp = await client.get(workbench_stream.PATH, params={"token": token})
        assert resp.status == 403, why
        assert "error" in await resp.json(), why
    AdminUser.update(session_version=AdminUser.session_version + 1).where(AdminUser.id == mei_user.id).execute()
    resp = await client.get(workbench_stream.PATH, params={"token": good})  # signed out since it was issued
    assert resp.status == 403


async def test_signing_out_ends_an_open_stream(client: TestClient, config: Config,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workbench_stream, "REVALIDATE_SECONDS", 0.2)
    _, mei_user = desk("mei")
    stream = await open_stream(client, config, mei_user)
    AdminUser.update(session_version=AdminUser.session_version + 1).where(AdminUser.id == mei_user.id).execute()
    event, data = await stream.until(lambda e, d: e == "end")
    assert data == {"reason": "signed_out"}
    with pytest.raises(EOFError):
        await stream.next()


async def test_a_deactivated_agent_gets_no_stream(client: TestClient, config: Config) -> None:
    mei, mei_user = desk("mei")
    token = workbench_token.issue(panel_secret(config), mei_user)
    Agent.update(active=False).where(Agent.id == mei.id).execute()
    assert (await client.get(workbench_stream.PATH, params={"token": token})).status == 403
