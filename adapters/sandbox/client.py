"""A client that plays the WeChat server toward kefu: signed, encrypted callbacks.

Why: tests, the webhook benchmark and `kefu chat --channel mp` must send kefu exactly
what WeChat sends — the query signatures, the <Encrypt> envelope in safe mode (plus the
clear fields in compatible mode), WeCom's msg_signature-only variant — and behave like
WeChat when kefu is slow: wait 5 s, then post the same message again, up to 3 retries.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any, Mapping
from xml.sax.saxutils import escape

import aiohttp
import xmltodict
from wechatpy.crypto import PrpCrypto
from wechatpy.crypto import BaseWeChatCrypto
from wechatpy.enterprise.crypto import PrpCrypto as CorpPrpCrypto

from adapters.wechat_common import new_nonce, sha1_signature

MODES = ("plain", "compat", "safe")
WECHAT_TIMEOUT = 5.0
WECHAT_RETRIES = 3
_FROM_USER = re.compile(r"<FromUserName>(?:<!\[CDATA\[)?(.*?)(?:\]\]>)?</FromUserName>")
_msg_ids = itertools.count(int(time.time() * 1000) * 1000)


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


@dataclass
class Delivery:
    """What WeChat saw: the last HTTP status, the (decrypted) reply fields, attempts made."""

    status: int
    reply: dict[str, Any] | None
    attempts: int
    body: str = ""

    @property
    def text(self) -> str:
        return str((self.reply or {}).get("Content", ""))


class WeChatServer:
    """Plays WeChat for one channel.

    mode: plain | compat | safe (公众号); `enterprise=True` plays WeCom (always encrypted,
    `msg_signature` only, the crypto id is the corp_id).
    """

    def __init__(self, token: str, app_id: str = "", encoding_aes_key: str = "", mode: str = "safe",
                 enterprise: bool = False, account: str = "gh_kefu_demo", agent_id: str = "") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        if (mode != "plain" or enterprise) and not encoding_aes_key:
            raise ValueError("encrypted modes need the encoding_aes_key")
        self.token, self.app_id, self.mode, self.enterprise = token, app_id, mode, enterprise
        self.account, self.agent_id = account, agent_id
        self.prp: Any = None
        if encoding_aes_key:
            key = BaseWeChatCrypto(token, encoding_aes_key, app_id).key
            self.prp = CorpPrpCrypto(key) if enterprise else PrpCrypto(key)

    # -- messages ------------------------------------------------------------------------------

    def message_xml(self, user: str, msg_type: str, fields: Mapping[str, Any], msg_id: str | None = None,
                    create_time: int | None = None) -> str:
        parts = [f"<ToUserName>{_cdata(self.account)}</ToUserName>", f"<FromUserName>{_cdata(user)}</FromUserName>",
                 f"<CreateTime>{create_time or int(time.time())}</CreateTime>",
                 f"<MsgType>{_cdata(msg_type)}</MsgType>"]
        for name, value in fields.items():
            parts.append(f"<{name}>{_cdata(str(value)) if isinstance(value, str) else value}</{name}>")
        if msg_type != "event":
            parts.append(f"<MsgId>{msg_id or next(_msg_ids)}</MsgId>")
        if self.enterprise and self.agent_id:
            parts.append(f"<AgentID>{self.agent_id}</AgentID>")
        return "<xml>" + "".join(parts) + "</xml>"

    def text_xml(self, user: str, text: str, msg_id: str | None = None) -> str:
        return self.message_xml(user, "text", {"Content": text}, msg_id)

    def event_xml(self, user: str, event: str, event_key: str = "", create_time: int | None = None,
                  extra: Mapping[str, Any] | None = None) -> str:
        fields: dict[str, Any] = {"Event": event}
        if event_key:
            fields["EventKey"] = event_key
        fields.update(extra or {})
        return self.message_xml(user, "event", fields, create_time=create_time)

    # -- signing -------------------------------------------------------------------------------

    def sign(self, xml: str, timestamp: str | None = None, nonce: str | None = None) -> tuple[dict[str, str], bytes]:
        """The query and body WeChat would post for this message."""
        timestamp = timestamp or str(int(time.time()))
        nonce = nonce or new_nonce()
        params: dict[str, str] = {"timestamp": timestamp, "nonce": nonce}
        if not self.enterprise:
            params["signature"] = sha1_signature(self.token, timestamp, nonce)
            found = _FROM_USER.search(xml)
            params["openid"] = found.group(1) if found else ""
        if self.mode == "plain" and not self.enterprise:
            return params, xml.encode()
        encrypt = self.prp.encrypt(xml, self.app_id).decode()
        params["msg_signature"] = sha1_signature(self.token, timestamp, nonce, encrypt)
        if not self.enterprise:
            params["encrypt_type"] = "aes"
        inner = xml[len("<xml>"):-len("</xml>")] if self.mode == "compat" else \
            f"<ToUserName>{_cdata(self.account)}</ToUserName>"
        if self.enterprise and self.agent_id:
            inner += f"<AgentID>{escape(self.agent_id)}</AgentID>"
        return params, f"<xml>{inner}<Encrypt>{_cdata(encrypt)}</Encrypt></xml>".encode()

    def echo_params(self, echostr: str) -> dict[str, str]:
        """The GET query of the platform's URL check (WeCom encrypts echostr)."""
        timestamp, nonce = str(int(time.time())), new_nonce()
        if self.enterprise:
            encrypted = self.prp.encrypt(echostr, self.app_id).decode()
            return {"timestamp": timestamp, "nonce": nonce, "echostr": encrypted,
                    "msg_signature": sha1_signature(self.token, timestamp, nonce, encrypted)}
        return {"timestamp": timestamp, "nonce": nonce, "echostr": echostr,
                "signature": sha1_signature(self.token, timestamp, nonce)}

    def open_reply(self, body: str) -> dict[str, Any] | None:
        """The reply fields from kefu's answer; None for `success` or an empty body.
        An encrypted reply must carry a valid signature, or this raises ValueError."""
        if not body or body.strip() == "success":
            return None
        fields = dict(xmltodict.parse(body)["xml"])
        if "Encrypt" in fields:
            encrypt = fields["Encrypt"]
            expected = sha1_signature(self.token, fields.get("TimeStamp", ""), fields.get("Nonce", ""), encrypt)
            if expected != fields.get("MsgSignature"):
                raise ValueError("the reply's MsgSignature does not verify")
            fields = dict(xmltodict.parse(self.prp.decrypt(encrypt, self.app_id))["xml"])
        return fields

    # -- posting, the way WeChat does ------------------------------------------------------------

    async def deliver(self, session: aiohttp.ClientSession, url: str, xml: str, retries: int = WECHAT_RETRIES,
                      timeout: float = WECHAT_TIMEOUT) -> Delivery:
        """Post a message; without an answer in `timeout` seconds post it again (same
        MsgId, fresh signature), up to `retries` more times."""
        status, body = 0, ""
        for attempt in range(1, retries + 2):
            params, data = self.sign(xml)
            try:
                async with session.post(url, params=params, data=data,
                                        timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                    status, body = resp.status, await resp.text()
                if status == 200:
                    return Delivery(status, self.open_reply(body), attempt, body)
            except (asyncio.TimeoutError, aiohttp.ClientError):
                status = 0
        return Delivery(status, None, retries + 1, body)

    def deliver_sync(self, url: str, xml: str, retries: int = WECHAT_RETRIES,
                     timeout: float = WECHAT_TIMEOUT) -> Delivery:
        """The same as `deliver`, blocking (for `kefu chat`)."""
        status, body = 0, ""
        for attempt in range(1, retries + 2):
            params, data = self.sign(xml)
            request = urllib.request.Request(f"{url}?{urllib.parse.urlencode(params)}", data=data, method="POST",
                                             headers={"Content-Type": "text/xml; charset=utf-8"})
            try:
                with urllib.request.urlopen(request, timeout=timeout) as resp:
                    status, body = resp.status, resp.read().decode()
                return Delivery(status, self.open_reply(body), attempt, body)
            except urllib.error.HTTPError as exc:
                return Delivery(exc.code, None, attempt, exc.read().decode(errors="replace"))
            except (urllib.error.URLError, OSError):
                status = 0
        return Delivery(status, None, retries + 1, body)
