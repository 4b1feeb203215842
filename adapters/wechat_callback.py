"""The callback flow shared by the Official Account and WeCom channels.

Why: both receive signed (and usually AES-encrypted) XML, must answer within WeChat's 5 s
or be retried, and reply passively in the HTTP body. One flow, two sets of parameters:

    verify signature -> refuse hostile/oversized XML -> decrypt -> parse (wechatpy)
    -> Inbound -> bridge.dispatch (races the channel deadline)
    -> in time: first reply in the body (encrypted when the request was), further replies
       through the outbox; late or nothing to say: "success" (the outbox has it).

A bad signature is 403 and a bad body 400, both before anything is stored. Platform
reports (TEMPLATESENDJOBFINISH, MASSSENDJOBFINISH) are stored once as system messages for
the campaign jobs to read, and never answered.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from adapters.bridge import CoreBridge
from adapters.wechat_common import (MAX_XML_BYTES, BadRequest, BadSignature, fits_passive, is_report,
                                    render_passive)
from bot.sending import outbox
from bot.core import clock
from bot.core.config import ChannelConfig
from bot.core.db import insert_new, transaction
from bot.core.events import Inbound, Reply
from bot.core.models import Message

log = logging.getLogger("kefu.wechat")


class CallbackChannel:
    """Subclasses provide `kind`, `prefix`, `_verify_get` and `_open` (verify + parse)."""

    kind = ""
    prefix = ""

    def __init__(self, channel: ChannelConfig, bridge: CoreBridge) -> None:
        self.name = channel.name
        self.config = channel
        self.bridge = bridge

    # -- what differs per platform -------------------------------------------------------

    def _verify_get(self, query: Any) -> str:
        raise NotImplementedError

    def _open(self, query: Any, body: bytes) -> tuple[Inbound, bool]:
        """Verify and parse a callback: the Inbound and whether the reply is encrypted."""
        raise NotImplementedError

    def _encrypt(self, xml: str, query: Any) -> str:
        raise NotImplementedError

    def _reply_extra(self) -> str | None:
        return None

    # -- routes ----------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        path = f"{self.prefix}/{self.name}"
        return [web.get(path, self.handle_get), web.post(path, self.handle_post)]

    async def handle_get(self, request: web.Request) -> web.Response:
        """The platform's URL check: echo `echostr` (decrypted on WeCom) when signed."""
        try:
            echo = self._verify_get(request.query)
        except BadSignature:
            return web.Response(status=403, text="bad signature")
        except BadRequest as exc:
            return web.Response(status=400, text=str(exc))
        return web.Response(text=echo)

    async def handle_post(self, request: web.Request) -> web.Response:
        try:
            body = await _read_limited(request)
            inbound, encrypted = self._open(request.query, body)
        except BadSignature:
            return web.Response(status=403, text="bad signature")
        except BadRequest as exc:
            log.warning("channel %s: refused a callback: %s", self.name, exc)
            return web.Response(status=400, text="bad request")
        reply = await self.answer(inbound)
        if reply is None:
            return web.Response(text="success")
        xml = render_passive(reply, to_user=inbound.user_id, from_user=str(inbound.raw.get("ToUserName", "")))
        if encrypted:
            xml = self._encrypt(xml, request.query)
        return web.Response(text=xml, content_type="application/xml", charset="utf-8")

    async def answer(self, inbound: Inbound) -> Reply | None:
        """Hand the message to the core within the deadline; the passive reply, if any."""
        if is_report(inbound):
            await self.bridge.call(store_report, inbound)
            return None
        result = await self.bridge.dispatch(inbound, self.config.deadline_seconds)
        if result is None or not result.replies:
            return None
        first: Reply | None = result.replies[0]
        rest = list(result.replies[1:])
        if first is not None and not fits_passive(first):  # too long for one passive reply
            rest.insert(0, first)
            first = None
        if rest:
            await self.bridge.call(queue_replies, rest)
        return first


async def _read_limited(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_XML_BYTES:
        raise BadRequest("body too large")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BadRequest("body too large") from None
    if len(body) > MAX_XML_BYTES:
        raise BadRequest("body too large")
    if not body.strip():
        raise BadRequest("empty body")
    return body


def queue_replies(replies: list[Reply]) -> int:
    """Replies beyond the passive one go through the outbox, keyed by their message."""
    queued = 0
    with transaction():
        for reply in replies:
            message_id = reply.meta.get("message_id")
            row = Message.get_or_none(Message.id == message_id) if message_id else None
            if row is None:
                continue
            content = row.payload or {"kind": row.kind, "text": row.text}
            queued += outbox.enqueue(f"msg:{row.id}", row.channel, row.peer_id, content, message=row)
    return queued


def store_report(inbound: Inbound) -> bool:
    """A platform report (job finished): one system message, deduplicated like any other."""
    return insert_new(
        Message.insert(
            channel=inbound.channel, external_id=inbound.stored_key[1], direction="in", author="system",
            peer_id=inbound.user_id, kind="event", text=inbound.event, payload=dict(inbound.raw),
            state="done", created_at=clock.now(),
        ).on_conflict_ignore()
    ) is not None
