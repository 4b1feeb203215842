"""The WeCom (企业微信) self-built app channel: callbacks at `/wecom/{channel}`, replies
passively or through `message/send`.

WeCom always encrypts: `msg_signature` over (token, timestamp, nonce, Encrypt), AES with
the corp_id as the crypto id; the URL check (GET) sends an encrypted `echostr` that must be
answered decrypted. Dedup and deadline rules are the Official Account's (`CallbackChannel`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, Callable, Mapping

from wechatpy.enterprise.crypto import PrpCrypto, WeChatCrypto

from adapters.api_client import ApiReply, WeChatApi, classify
from adapters.bridge import CoreBridge
from adapters.wechat_callback import CallbackChannel
from adapters.wechat_common import (check_xml, decrypt, encrypt_reply, envelope_encrypt, new_nonce, parse_message,
                                    parse_xml, to_inbound, verify_signature)
from adapters.wechat_mp import send_text_parts
from adapters.wecom_group_msg import send_group_msg
from bot.campaigns.group_messages import GROUP_MSG
from bot.core.config import ChannelConfig
from bot.core.events import Inbound
from bot.sending.results import SendResult


SEND_WELCOME = "/cgi-bin/externalcontact/send_welcome_msg"


class WeComCrypto:
    """msg_signature checks and AES for a WeCom callback (corp_id is the crypto id)."""

    def __init__(self, token: str, encoding_aes_key: str, corp_id: str) -> None:
        self.token, self.corp_id = token, corp_id
        self.crypto = WeChatCrypto(token, encoding_aes_key, corp_id)
        self.prp = PrpCrypto(self.crypto.key)

    def echo(self, query: Mapping[str, str]) -> str:
        echostr = query.get("echostr", "")
        verify_signature((self.token, query.get("timestamp", ""), query.get("nonce", ""), echostr),
                         query.get("msg_signature"))
        return decrypt(self.prp, echostr, self.corp_id).decode()

    def open(self, query: Mapping[str, str], body: bytes) -> bytes:
        check_xml(body)
        encrypt = envelope_encrypt(parse_xml(body))
        verify_signature((self.token, query.get("timestamp", ""), query.get("nonce", ""), encrypt),
                         query.get("msg_signature"))
        return decrypt(self.prp, encrypt, self.corp_id)

    def encrypt(self, xml: str, query: Mapping[str, str]) -> str:
        return encrypt_reply(self.crypto.key, self.token, self.corp_id, xml, query.get("nonce") or new_nonce(),
                             query.get("timestamp") or None)


def wecom_secret(channel: ChannelConfig) -> str:
    return channel.app_secret or channel.secret


class WeComChannel(CallbackChannel):
    kind = "wecom"
    prefix = "/wecom"

    def __init__(self, channel: ChannelConfig, bridge: CoreBridge) -> None:
        super().__init__(channel, bridge)
        self.crypto = WeComCrypto(channel.token, channel.encoding_aes_key, channel.corp_id)
        self.api = WeChatApi.for_wecom(channel.api_base, channel.corp_id, wecom_secret(channel),
                                       channel.agent_id or "app", bridge.call)
        self._sender = WeComSender(self.api, channel.agent_id, channel.rate_per_second)

    def _verify_get(self, query: Mapping[str, str]) -> str:
        return self.crypto.echo(query)

    def _open(self, query: Mapping[str, str], body: bytes) -> tuple[Inbound, bool]:
        event, fields = parse_message(self.crypto.open(query, body), enterprise=True)
        return chat_change(contact_change(to_inbound(self.name, event, fields)), fields), True

    def _encrypt(self, xml: str, query: Mapping[str, str]) -> str:
        return self.crypto.encrypt(xml, query)

    def sender(self) -> "WeComSender":
        return self._sender

    async def close(self) -> None:
        await self.api.close()


def contact_change(inbound: Inbound) -> Inbound:
    """A `change_external_contact` event (from `sys`; wechatpy has no class for it, its fields
    stay in `raw`) keyed by what it changes: ChangeType, employee, contact and CreateTime, so
    two changes in one second are two events and the platform's retry is the same one."""
    if inbound.kind != "event" or inbound.event != "change_external_contact":
        return inbound
    raw = inbound.raw
    key = ":".join(str(raw.get(k) or "") for k in ("ChangeType", "UserID", "ExternalUserID", "CreateTime"))
    return dataclasses.replace(inbound, user_id=str(raw.get("ExternalUserID") or inbound.user_id),
                               msg_id=f"xc:{key}"[:128])


def chat_change(inbound: Inbound, fields: Mapping[str, Any]) -> Inbound:
    """A `change_external_chat` event (WeCom customer groups, bot/crm/wecom_groups.py) keyed
    by ChangeType, UpdateDetail, ChatId, CreateTime and CurMemVer, so a retry is the same
    event and two member changes in one second are not. Its MemChangeList (<Item>s, which
    `raw` drops as not text) joins `raw` as ids separated by commas; before WeCom 4.8.0 it
    was one text of ids separated by commas, which is read the same."""
    if inbound.kind != "event" or inbound.event != "change_external_chat":
        return inbound
    listed = fields.get("MemChangeList")
    items = listed.get("Item") if isinstance(listed, dict) else None
    if isinstance(listed, str):  # the older form: <MemChangeList><![CDATA[id1,id2]]></MemChangeList>
        items = [i.strip() for i in listed.split(",") if i.strip()]
    ids = [items] if isinstance(items, str) else [str(i) for i in items or () if isinstance(i, str)]
    raw = {**inbound.raw, "MemChangeList": ",".join(ids)}
    key = ":".join(str(raw.get(k) or "") for k in ("ChangeType", "UpdateDetail", "ChatId", "CreateTime", "CurMemVer"))
    return dataclasses.replace(inbound, user_id=str(raw.get("ChatId") or inbound.user_id), raw=raw,
                               msg_id=f"xg:{key}"[:128])


class WeComSender:
    """Outbox rows to `message/send` (text split at the limit; image by media_id)."""

    def __init__(self, api: WeChatApi, agent_id: str, rate_per_second: float = 0.0) -> None:
        self.api = api
        self.agent_id = int(agent_id) if str(agent_id).isdigit() else 0
        self.rate_per_second = rate_per_second

    async def send(self, recipient: str, content: Mapping[str, Any]) -> SendResult:
        if content.get("kind") == "wecom_welcome":  # a new external contact: the add event's WelcomeCode
            return classify(await self.api.post(SEND_WELCOME, {"welcome_code": recipient,
                                                               "text": {"content": content.get("text", "")}}))
        if content.get("kind") == GROUP_MSG:  # a group campaign: the owner's task (adapters/wecom_group_msg.py)
            return await send_group_msg(self.api, recipient, content)
        base = {"touser": recipient, "agentid": self.agent_id}
        if content.get("kind") == "image":
            return _invalid_user(await self.api.post("/cgi-bin/message/send", {
                **base, "msgtype": "image", "image": {"media_id": content.get("media_id", "")}}))

        async def post(part: str) -> ApiReply:
            reply = await self.api.post("/cgi-bin/message/send", {**base, "msgtype": "text", "text": {"content": part}})
            return _as_invalid_user(reply)

        return await send_text_parts(content, post)


def _as_invalid_user(reply: ApiReply) -> ApiReply:
    """`message/send` answers errcode 0 with `invaliduser` set when nobody received it."""
    if reply.ok and reply.data.get("invaliduser"):
        return ApiReply(40003, f"invalid user {reply.data['invaliduser']}", reply.data)
    return reply


def _invalid_user(reply: ApiReply) -> SendResult:
    return classify(_as_invalid_user(reply))


def blocking_fetch(channel: ChannelConfig) -> Callable[[str, Mapping[str, Any] | None, Mapping[str, str] | None],
                                                       dict[str, Any]]:
    """A synchronous `fetch(path, body, params) -> answer` on the WeCom API (POST with a body,
    GET without), for callers outside the event loop: `kefu wecom sync` and contact-way
    codes (bot/crm/wecom_contacts.py). The access_token is shared through the database
    (bot.sending.tokens), never invalidating the server's. Raises ApiError when unreachable."""

    def fetch(path: str, body: Mapping[str, Any] | None, params: Mapping[str, str] | None) -> dict[str, Any]:
        async def call() -> dict[str, Any]:
            api = WeChatApi.for_wecom(channel.api_base, channel.corp_id, wecom_secret(channel),
                                      channel.agent_id or "app", asyncio.to_thread)
            try:
                reply = await api.call("GET" if body is None else "POST", path, body, params)
                return dict(reply.data)
            finally:
                await api.close()
        return asyncio.run(call())
    return fetch
