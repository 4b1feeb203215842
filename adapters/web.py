"""The web chat channel: JSON over HTTP for the web widget and `kefu chat`.

API (documented in the README):
- `POST /api/web/{channel}/session` -> `{"user_id", "token"}`: a new visitor identity. The
  token is an HMAC of the user id, so nobody can write as another visitor.
- `POST /api/web/{channel}/messages` with `{"user_id", "token", "msg_id", "text"[, "nickname",
  "welcomed"]}` (`"welcomed": true`: the client showed the welcome, the bot does not repeat it)
  -> `{"replies": [{"id", "text", "cards": [{"title"}]}], "duplicate": bool}`. `msg_id` is the
  client's unique id for the message: sending it again returns the first reply and does
  nothing else. Late replies (and agent messages) arrive by polling:
- `GET /api/web/{channel}/messages?user_id=&token=&after=ID[&wait=S]` -> `{"messages": [...], "last_id", "role"}`:
  both directions, so a reload shows the whole conversation so far. With `wait` (1-30 s) and
  nothing new yet, the answer waits until something is (adapters/web_waiters.py) or S pass. Each message has `id`,
  `direction` ("in": written by this user, with the client's `msg_id`; "out": to them),
  `author` (customer, agent, bot, system), `text`, `cards`, `created_at`. `role` is "agent"
  when the identity is an agent's linked web account (the page then is not the customer's).
- `GET /api/web/{channel}/welcome` -> the welcome text and card questions.
- `GET /chat/{channel}`: the chat page; its script and style are `/static/chat.js` and
  `/static/chat.css`, so the page's Content-Security-Policy allows no inline script.

Bad input is refused before anything is stored: the body by `adapters.json_body` (415 when
not JSON, 413 when too large, 400 when malformed, too deep, or holding text no database
takes), each field here by its type and range (400; a bad token 403).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import html
import json
import re
import secrets
import time
from importlib import resources
from typing import Any, Mapping

from aiohttp import web
from peewee import fn

from adapters.bridge import CoreBridge
from adapters.json_body import json_error, read_object
from adapters.web_waiters import MAX_WAIT_SECONDS, Waiters
from adapters.wechat_common import content_text
from bot.core import settings
from bot.core.config import ChannelConfig
from bot.core.db import fetch_all
from bot.core.events import Inbound, Reply
from bot.core.models import Agent, Message
from bot.sending.results import SendResult

_dumps = functools.partial(json.dumps, ensure_ascii=False)
_USER_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
_AFTER = re.compile(r"[0-9]{1,19}")
MAX_ID = 2**63 - 1  # a message id is a 64-bit integer in every database
MAX_TEXT = 2000
# C0 and C1 control characters: a terminal (`kefu chat`, an agent's) would obey them; text keeps tab and newlines
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# the chat page's own files only: no inline script or style, no other origin, not framed
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
ASSETS = {"chat.js": "text/javascript", "chat.css": "text/css"}


class WebSender:
    """Web visitors poll the message table for their messages: a send is delivered by being
    there (`bot.sending.outbox.deliver_due` writes the row of a send that has none, e.g. a campaign)."""

    polled = True

    def send(self, recipient: str, content: Mapping[str, Any]) -> SendResult:
        return SendResult.ok()

    @staticmethod
    def text_of(content: Mapping[str, Any]) -> str:
        """What the chat page shows of an outbox content: the text (cards as numbered
        lines), a news item's titles and links, or a placeholder for media."""
        kind = content.get("kind") or "text"
        if kind == "news":
            return "\n".join(f"{a.get('title', '')} {a.get('url', '')}".strip()
                             for a in content.get("articles") or () if isinstance(a, Mapping))
        if kind == "image":
            return "[图片]"
        if kind == "template":  # WeChat template data: {"first": {"value": ...}, "keyword1": ...}
            data = content.get("data") or {}
            return "\n".join(str(v.get("value", "")) for v in data.values() if isinstance(v, Mapping))
        return content_text(content)


class WebChannel:
    kind = "web"

    def __init__(self, channel: ChannelConfig, secret: str, bridge: CoreBridge) -> None:
        self.name = channel.name
        self.config = channel
        self.bridge = bridge
        self._key = secret.encode()
        self.waiters = Waiters(channel.name, self._newest)
        self._roles = RoleCache(channel.name)

    async def close(self) -> None:
        self.waiters.close()

    # -- identity -----------------------------------------------------------------------

    def token_for(self, user_id: str) -> str:
        return hmac.new(self._key, f"{self.name}:{user_id}".encode(), hashlib.sha256).hexdigest()[:40]

    def _verify(self, user_id: Any, token: Any) -> str:
        if not isinstance(user_id, str) or not _USER_ID.match(user_id):
            raise json_error(400, "user_id must be 1-128 characters of letters, digits, _ . : -")
        if not isinstance(token, str) or not token.isascii() or not hmac.compare_digest(token, self.token_for(user_id)):
            raise json_error(403, "bad token for this user_id")
        return user_id

    # -- routes -------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        base = f"/api/web/{self.name}"
        return [
            web.post(f"{base}/session", self.new_session),
            web.post(f"{base}/messages", self.post_message),
            web.get(f"{base}/messages", self.poll),
            web.get(f"{base}/welcome", self.welcome),
            web.get(f"/chat/{self.name}", self.page),
        ]

    def sender(self) -> WebSender:
        return WebSender()

    async def new_session(self, request: web.Request) -> web.Response:
        user_id = "v_" + secrets.token_hex(8)
        return web.json_response(dumps=_dumps, data={"user_id": user_id, "token": self.token_for(user_id)})

    async def post_message(self, request: web.Request) -> web.Response:
        body = await read_object(request)
        user_id = self._verify(body.get("user_id"), body.get("token"))
        msg_id, text = body.get("msg_id"), body.get("text")
        if not isinstance(msg_id, str) or not 1 <= len(msg_id) <= 64 or _CONTROL.search(msg_id):
            raise json_error(400, "msg_id must be 1-64 characters (no control characters), unique per message")
        if not isinstance(text, str) or not text.strip():
            raise json_error(400, "text must be a non-empty string")
        if len(text) > MAX_TEXT:
            raise json_error(400, f"text is longer than {MAX_TEXT} characters")
        if _TEXT_CONTROL.search(text):
            raise json_error(400, "text must not contain control characters (other than tab and newlines)")
        nickname = body.get("nickname")
        if nickname is None:
            nickname = ""
        elif not isinstance(nickname, str) or _CONTROL.search(nickname):
            raise json_error(400, "nickname must be a string without control characters (the first 64 are kept)")
        welcomed = body.get("welcomed")
        if welcomed is not None and not isinstance(welcomed, bool):
            raise json_error(400, "welcomed must be true or false")
        raw: dict[str, Any] = {"msg_id": msg_id}
        if welcomed:  # the client showed the welcome card: the bot need not repeat it
            raw["welcomed"] = True
        inbound = Inbound(channel=self.name, user_id=user_id, msg_id=f"{user_id}:{msg_id}", kind="text",
                          text=text, nickname=nickname[:64], raw=raw)
        result = await self.bridge.dispatch(inbound, self.config.deadline_seconds)
        replies = [] if result is None else result.replies
        return web.json_response(dumps=_dumps, data={
            "replies": [reply_json(r) for r in replies],
            "duplicate": bool(result and result.duplicate),
            "late": result is None,
        })

    async def poll(self, request: web.Request) -> web.Response:
        user_id = self._verify(request.query.get("user_id"), request.query.get("token"))
        after_text = request.query.get("after", "0")
        if not _AFTER.fullmatch(after_text) or int(after_text) > MAX_ID:
            raise json_error(400, f"after must be a message id: an integer from 0 to {MAX_ID}")
        after = int(after_text)
        wait_text = request.query.get("wait", "0")
        if not wait_text.isdigit() or len(wait_text) > 2 or int(wait_text) > MAX_WAIT_SECONDS:
            raise json_error(400, f"wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS}")
        mark = self.waiters.mark()  # before the read: a delivery after it is not missed
        rows = await self.bridge.call(_history_since, self.name, user_id, after)
        if not rows and int(wait_text):  # a waiting poll: answered as soon as something is theirs

            async def read() -> list[dict[str, Any]]:
                return await self.bridge.call(_history_since, self.name, user_id, after)

            rows = await self.waiters.until_new(user_id, after, int(wait_text), read, mark)
        role = await self._roles.role(user_id, self.bridge)
        return web.json_response(dumps=_dumps, data={"messages": rows, "last_id": max([after] + [r["id"] for r in rows]),
                                                     "role": role})

    async def _newest(self, user_ids: list[str]) -> dict[str, int]:
        return await self.bridge.call(_newest_visible, self.name, user_ids)

    async def welcome(self, request: web.Request) -> web.Response:
        text, cards = await self.bridge.call(_welcome)
        return web.json_response(dumps=_dumps, data={"text": text, "cards": [{"title": c} for c in cards]})

    async def page(self, request: web.Request) -> web.Response:
        page = _static("chat.html").replace("__CHANNEL__", html.escape(self.name))
        # X-Frame-Options, nosniff and the referrer policy: adapters.server.security_headers
        return web.Response(text=page, content_type="text/html", charset="utf-8",
                            headers={"Content-Security-Policy": PAGE_CSP})


def asset_routes() -> list[web.RouteDef]:
    """The chat page's script and style, once per server (every web channel's page uses them)."""
    return [web.get(f"/static/{name}", functools.partial(_asset, name)) for name in ASSETS]


async def _asset(name: str, request: web.Request) -> web.Response:
    return web.Response(text=_static(name), content_type=ASSETS[name], charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


@functools.cache
def _static(name: str) -> str:
    return resources.files("adapters").joinpath(f"static/{name}").read_text(encoding="utf-8")


def reply_json(reply: Reply) -> dict[str, Any]:
    return {
        "id": reply.meta.get("message_id"),
        "text": reply.text,
        "cards": [{"title": c.title} for c in reply.cards],
    }


def _history_since(channel: str, user_id: str, after: int) -> list[dict[str, Any]]:
    """Both directions of this visitor's messages after `after` (what they wrote and what
    was sent to them: a reload shows it all)."""
    rows = fetch_all(Message, '"channel" = ? AND "peer_id" = ? AND "id" > ? AND "state" != ? ORDER BY "id" LIMIT 100',
                     (channel, user_id, after, "pending"))  # fixed SQL: every poll that has news reads this
    prefix = f"{user_id}:"
    history = [{
        "id": m.id, "direction": m.direction, "author": m.author, "text": m.text,
        "msg_id": m.external_id[len(prefix):] if m.direction == "in" and m.external_id.startswith(prefix) else None,
        "cards": [{"title": c.get("title", "")} for c in (m.payload or {}).get("cards") or ()],
        "created_at": m.created_at.isoformat(),
    } for m in rows]
    return history


def _newest_visible(channel: str, user_ids: list[str]) -> dict[str, int]:
    """Each visitor's newest message id that a poll shows (adapters/web_waiters.py's sweep)."""
    found = (Message.select(Message.peer_id, fn.MAX(Message.id).alias("newest"))
             .where((Message.channel == channel) & Message.peer_id.in_(user_ids) & (Message.state != "pending"))
             .group_by(Message.peer_id).tuples())
    return {peer: int(newest) for peer, newest in found}


class RoleCache:
    """Whose web identity is an agent's ("agent": the page is not the customer's), as the
    poll answers it: one query per `SECONDS` for the channel, not one per poll. An agent
    linked or unlinked shows within that time; the role decides only which page is drawn,
    never what is read or sent (that is the token and the relay's own checks)."""

    SECONDS = 10.0

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self._agents: frozenset[str] = frozenset()
        self._read_at = float("-inf")

    async def role(self, user_id: str, bridge: CoreBridge) -> str:
        now = time.monotonic()
        if now - self._read_at >= self.SECONDS:
            self._agents = await bridge.call(_agent_identities, self.channel)
            self._read_at = now
        return "agent" if user_id in self._agents else "customer"


def _agent_identities(channel: str) -> frozenset[str]:
    return frozenset(a.im_user_id for a in Agent.select(Agent.im_user_id).where(
        (Agent.channel == channel) & (Agent.active == True)))  # noqa: E712


def _welcome() -> tuple[str, list[str]]:
    return settings.get("welcome_message"), list(settings.get("card_questions") or [])[:9]
