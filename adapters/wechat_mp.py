"""The WeChat Official Account (公众号) channel: callbacks at `/wechat/{channel}`, replies
passively or through the customer-service message API.

Modes (chosen in the 公众号 console, seen per request):
- plaintext: `signature` over (token, timestamp, nonce); the body is the message;
- compatible and safe: `encrypt_type=aes` plus `msg_signature` over (token, timestamp,
  nonce, Encrypt); the message is inside <Encrypt> (compatible mode also carries it in
  clear, which we ignore: only the signed ciphertext is trusted); the reply is encrypted.
"""

from __future__ import annotations

from typing import Any, Mapping

from wechatpy.crypto import PrpCrypto, WeChatCrypto

from adapters.api_client import ApiError, WeChatApi, classify
from adapters.bridge import CoreBridge
from adapters.wechat_callback import CallbackChannel
from adapters.wechat_common import (BadRequest, check_xml, content_text, decrypt, envelope_encrypt, new_nonce,
                                    parse_message, parse_xml, split_text, to_inbound, verify_signature)
from bot.config import ChannelConfig
from bot.events import Inbound
from bot.outbox import SendResult


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
        message, fields = parse_message(body)
        return to_inbound(self.name, message, fields), encrypted

    def _encrypt(self, xml: str, query: Mapping[str, str]) -> str:
        assert self.crypto is not None
        return self.crypto.encrypt_message(xml, query.get("nonce") or new_nonce(), query.get("timestamp") or None)

    def sender(self) -> "OfficialAccountSender":
        return self._sender

    async def close(self) -> None:
        await self.api.close()


def platform_messages(content: Mapping[str, Any]) -> int:
    """How many send calls `content` makes from where it resumes: a text one per part not
    yet accepted (`parts_sent`), anything else one."""
    if str(content.get("kind") or "text") in ("image", "news", "template", "mass") or content.get("welcome_code"):
        return 1
    return max(len(split_text(content_text(content))) - int(content.get("parts_sent") or 0), 0)


class OfficialAccountSender:
    """Outbox rows to the 公众号 send APIs.

    content kinds: text (split at the platform's limit, resuming after the parts already
    accepted), image (`media_id`), news (`articles`), template (`template_id`, `data`, `url`),
    mass (`recipient` is `tag:<id>` or `all`; `msgtype` + its body, e.g. text/mpnews).

    text, image and news are customer-service messages (`message/custom/send`), allowed
    only within 48 hours of the customer's last interaction: the delivery checks that
    before calling `send` (`channel_kind`, `platform_messages`; see bot/send_window.py).
    Template and mass sends are not limited.
    """

    channel_kind = "wechat_mp"  # which platform rules bot/send_window.py applies

    def __init__(self, api: WeChatApi, rate_per_second: float = 0.0) -> None:
        self.api = api
        self.rate_per_second = rate_per_second

    platform_messages = staticmethod(platform_messages)  # send calls a content makes, for the check

    async def send(self, recipient: str, content: Mapping[str, Any]) -> SendResult:
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
            "touser": recipient, "msgtype": "text", "text": {"content": part}}))

    async def _mass(self, recipient: str, content: Mapping[str, Any]) -> SendResult:
        msgtype = str(content.get("msgtype") or "text")
        inner = {"content": content_text(content)} if msgtype == "text" else dict(content.get(msgtype) or {})
        body: dict[str, Any] = {"msgtype": msgtype, msgtype: inner}
        if recipient.startswith("tag:"):
            body["filter"] = {"is_to_all": False, "tag_id": int(recipient[4:])}
        else:
            body["filter"] = {"is_to_all": True}
        return classify(await self.api.post("/cgi-bin/message/mass/sendall", body))


async def send_text_parts(content: Mapping[str, Any], post: Any) -> SendResult:
    """Send a text in parts at the platform's limit; on failure report how far it got."""
    parts = split_text(content_text(content))
    start = int(content.get("parts_sent") or 0)
    for index in range(start, len(parts)):
        try:
            result = classify(await post(parts[index]))
        except ApiError as exc:
            result = SendResult("retry", str(exc))
        if result.outcome != "sent":
            return SendResult(result.outcome, result.error, result.retry_after,
                              parts_sent=index if len(parts) > 1 else None)
    return SendResult.ok()
