"""The WeChat Official Account (公众号) channel: callbacks at `/wechat/{channel}`, replies
passively or through the customer-service message API.

Modes (chosen in the 公众号 console, seen per request):
- plaintext: `signature` over (token, timestamp, nonce); the body is the message;
- compatible and safe: `encrypt_type=aes` plus `msg_signature` over (token, timestamp,
  nonce, Encrypt); the message is inside <Encrypt> (compatible mode also carries it in
  clear, which we ignore: only the signed ciphertext is trusted); the reply is encrypted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

from wechatpy.crypto import PrpCrypto, WeChatCrypto

from adapters.api_client import ApiError, ApiReply, WeChatApi, classify
from adapters.bridge import CoreBridge
from adapters.wechat_callback import CallbackChannel
from adapters.wechat_common import (BadRequest, check_xml, content_text, decrypt, encrypt_reply, envelope_encrypt,
                                    new_nonce, parse_message, parse_xml, split_text, to_inbound, verify_signature)
from bot.core.config import ChannelConfig
from bot.core.events import Inbound
from bot.sending.results import SendResult


class OfficialAccountChannel(CallbackChannel):
    kind = "wechat_mp"
    prefix = "/wechat"

    def __init__(self, channel: ChannelConfig, bridge: CoreBridge) -> None:
        super().__init__(channel, bridge)
        self.token = channel.token
        self.crypto: WeChatCrypto | None = None
        self.prp: PrpCrypto | None = None
        if channel.encoding_aes_key:
            self.crypto = WeChatCrypto(channel.token, channel.encoding_aes_key, channel.app_id)
            self.prp = PrpCrypto(self.crypto.key)
        self.api = WeChatApi.for_mp(channel.api_base, channel.app_id, channel.app_secret, bridge.call)
        self._sender = OfficialAccountSender(self.api, channel.rate_per_second)

    def _verify_get(self, query: Mapping[str, str]) -> str:
        verify_signature((self.token, query.get("timestamp", ""), query.get("nonce", "")), query.get("signature"))
        return query.get("echostr", "")

    def _open(self, query: Mapping[str, str], body: bytes) -> tuple[Inbound, bool]:
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        verify_signature((self.token, timestamp, nonce), query.get("signature"))
        check_xml(body)
        encrypted = query.get("encrypt_type", "raw").lower() == "aes"
        if encrypted:
            if self.prp is None:
                raise BadRequest("an encrypted callback but no encoding_aes_key is configured")
            encrypt = envelope_encrypt(parse_xml(body))
            verify_signature((self.token, timestamp, nonce, encrypt), query.get("msg_signature"))
            body = decrypt(self.prp, encrypt, self.config.app_id)
        event, fields = parse_message(body)
        return to_inbound(self.name, event, fields), encrypted

    def _encrypt(self, xml: str, query: Mapping[str, str]) -> str:
        assert self.crypto is not None
        return encrypt_reply(self.crypto.key, self.token, self.config.app_id, xml, query.get("nonce") or new_nonce(),
                             query.get("timestamp") or None)

    def sender(self) -> "OfficialAccountSender":
        return self._sender

    async def close(self) -> None:
        await self.api.close()


def blocking_post(channel: ChannelConfig) -> Callable[[str, Mapping[str, Any]], dict[str, Any]]:
    """A synchronous `post(path, body) -> answer` on the 公众号 API, for callers outside the
    event loop (the panel creating a 渠道活码, bot/crm/channel_codes.py). It shares the
    access_token with the running kefu through the database (bot.sending.tokens), so it never
    invalidates the server's token. Raises ApiError when the platform cannot be reached."""

    def post(path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            api = WeChatApi.for_mp(channel.api_base, channel.app_id, channel.app_secret, asyncio.to_thread)
            try:
                return dict((await api.post(path, body)).data)
            finally:
                await api.close()
        return asyncio.run(call())
    return post


# content kinds that are one platform message each: never split
UNSPLIT_KINDS = frozenset({"image", "news", "template", "mass"})


@dataclass(frozen=True)
class SendPlan:
    """What one attempt at an outbox content puts on the platform, worked out once.

    Why: the pre-send check (bot/sending/send_window.py) needs to know how many platform messages a
    send makes (微信客服 counts each part of a split text), and the sender needs the parts
    themselves; cutting the text once and handing the same plan to both keeps them from
    disagreeing and saves the second split. `messages` is what the check counts;
    `parts` is every part of a text (empty for a content that is not split), and `start`
    how many of them the platform accepted in an earlier attempt (`parts_sent`)."""

    messages: int
    parts: tuple[str, ...] = ()
    start: int = 0


def plan(content: Mapping[str, Any]) -> SendPlan:
    """The plan for `content`: a text is cut at the platform's limit and resumes after the
    parts already accepted; anything else (and the 微信客服 welcome) is one message.
    Raises ValueError for a stored `parts_sent` that is not a whole number."""
    if str(content.get("kind") or "text") in UNSPLIT_KINDS or content.get("welcome_code"):
        return SendPlan(1)
    return text_plan(content)


def text_plan(content: Mapping[str, Any]) -> SendPlan:
    """`content` as a text cut at the platform's limit, whatever its kind (a channel that
    sends every kind as text, like the WeCom app, uses this directly)."""
    start = _parts_sent(content)
    parts = tuple(split_text(content_text(content)))
    return SendPlan(max(len(parts) - start, 0), parts, start)


def _parts_sent(content: Mapping[str, Any]) -> int:
    """The parts an earlier attempt got accepted (written by `bot.sending.outbox.record`)."""
    value = content.get("parts_sent") or 0
    try:
        start = int(value)
    except (TypeError, ValueError):
        start = -1
    if start < 0:
        raise ValueError(f"parts_sent must be a whole number of parts, got {value!r}")
    return start


class OfficialAccountSender:
    """Outbox rows to the 公众号 send APIs.

    content kinds: text (split at the platform's limit, resuming after the parts already
    accepted), image (`media_id`), news (`articles`), template (`template_id`, `data`, `url`),
    mass (`recipient` is `tag:<id>` or `all`; `msgtype` + its body, e.g. text/mpnews).

    text, image and news are customer-service messages (`message/custom/send`), allowed
    only within 48 hours of the recipient's last interaction: the delivery checks that
    before calling `send` (`channel_kind`, `plan`; see bot/sending/send_window.py). Template and
    mass sends are not limited.
    """

    channel_kind = "wechat_mp"  # which platform rules bot/sending/send_window.py applies

    def __init__(self, api: WeChatApi, rate_per_second: float = 0.0) -> None:
        self.api = api
        self.rate_per_second = rate_per_second

    plan = staticmethod(plan)  # the parts of a send: counted by the check, then passed back to `send`

    async def send(self, recipient: str, content: Mapping[str, Any], planned: SendPlan | None = None) -> SendResult:
        kind = str(content.get("kind") or "text")
        if kind == "template":
            payload = {"touser": recipient, "template_id": content.get("template_id", ""),
                       "data": content.get("data") or {}}
            if content.get("url"):
                payload["url"] = content["url"]
            return classify(await self.api.post("/cgi-bin/message/template/send", payload))
        if kind == "mass":
            return await self._mass(recipient, content)
        if kind == "image":
            return classify(await self.api.post("/cgi-bin/message/custom/send", {
                "touser": recipient, "msgtype": "image", "image": {"media_id": content.get("media_id", "")}}))
        if kind == "news":
            return classify(await self.api.post("/cgi-bin/message/custom/send", {
                "touser": recipient, "msgtype": "news", "news": {"articles": list(content.get("articles") or [])}}))
        return await send_text_parts(content, lambda part: self.api.post("/cgi-bin/message/custom/send", {
            "touser": recipient, "msgtype": "text", "text": {"content": part}}), planned)

    async def _mass(self, recipient: str, content: Mapping[str, Any]) -> SendResult:
        """A mass send: to a list of openids (`touser` in the content, `message/mass/send`,
        2 to 10,000 of them) or to a tag / everyone (`sendall`). With a `clientmsgid` the
        platform deduplicates: a repeat is answered 45065 with the job it already has,
        which is the send having succeeded (a retry after a crash is safe)."""
        msgtype = str(content.get("msgtype") or "text")
        inner = {"content": content_text(content)} if msgtype == "text" else dict(content.get(msgtype) or {})
        body: dict[str, Any] = {"msgtype": msgtype, msgtype: inner, "send_ignore_reprint": 0}
        if content.get("clientmsgid"):
            body["clientmsgid"] = str(content["clientmsgid"])
        if content.get("touser"):
            body["touser"] = list(content["touser"])
            path = "/cgi-bin/message/mass/send"
        else:
            body["filter"] = ({"is_to_all": False, "tag_id": int(recipient[4:])} if recipient.startswith("tag:")
                              else {"is_to_all": True})
            path = "/cgi-bin/message/mass/sendall"
        reply = await self.api.post(path, body)
        job = str(reply.data.get("msg_id") or "")
        if reply.ok or reply.errcode == MASS_DUPLICATE:
            return SendResult("sent", platform_id=job)
        if reply.errcode == MASS_TOO_SOON:
            return SendResult("retry", f"{reply.errcode} {reply.errmsg}", retry_after=60.0)
        return classify(reply)


# message/mass/send answers about clientmsgid: 45065 the platform already has a job with it
# (the answer names that job), 45066 the same clientmsgid was retried within a minute
MASS_DUPLICATE = 45065
MASS_TOO_SOON = 45066


async def send_text_parts(content: Mapping[str, Any], post: Callable[[str], Awaitable[ApiReply]],
                          planned: SendPlan | None = None) -> SendResult:
    """Send a text in parts at the platform's limit, resuming after the parts an earlier
    attempt got accepted; on failure report how far it got. `planned`: the plan the
    pre-send check already counted (the text is then not cut a second time)."""
    if planned is None or not planned.parts:  # no plan, or one for another kind: cut it here
        planned = text_plan(content)
    for index in range(planned.start, len(planned.parts)):
        try:
            result = classify(await post(planned.parts[index]))
        except ApiError as exc:
            result = SendResult("retry", str(exc))
        if result.outcome != "sent":
            return SendResult(result.outcome, result.error, result.retry_after,
                              parts_sent=index if len(planned.parts) > 1 else None)
    return SendResult.ok()
