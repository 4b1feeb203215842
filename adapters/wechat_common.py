"""What the WeChat-family callbacks (公众号, 企业微信, 微信客服) have in common.

Why one module: the three channels verify the same SHA1 signatures, refuse the same hostile
XML, turn the same XML shapes into a `bot.core.events.Inbound`, and render the same passive
replies. Each channel module keeps only what differs (URL, crypto id, send API).

Rules kept here:
- signatures are compared in constant time (`hmac.compare_digest`), before any parsing;
- a body with a DTD or entity declaration is refused before it reaches an XML parser
  (no entity expansion, no external fetch), as is anything larger than `MAX_XML_BYTES`;
- parsing never raises on an unknown kind: it becomes `kind="unknown"` with the fields in
  `raw`; only XML that is not a WeChat message at all is an error (`BadRequest`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from typing import Any, Mapping

import xmltodict
import wechatpy
import wechatpy.enterprise
from wechatpy.crypto.base import BasePrpCrypto
from wechatpy.replies import TextReply

from bot.core.events import Card, Inbound, Reply

log = logging.getLogger("kefu.wechat")

MAX_XML_BYTES = 64 * 1024
# WeChat's text limit for passive replies and custom/app/kf sends (bytes of UTF-8).
TEXT_LIMIT_BYTES = 2048
_HOSTILE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
MEDIA_KINDS = ("image", "voice", "video", "shortvideo", "location", "link", "file")
# Platform reports, not customer messages: stored for the record, never answered.
REPORT_EVENTS = ("templatesendjobfinish", "masssendjobfinish")


class BadRequest(Exception):
    """The body is not an acceptable WeChat message: answer 400, store nothing."""


class BadSignature(Exception):
    """The request is not from WeChat: answer 403, store nothing."""


def sha1_signature(*parts: str) -> str:
    """WeChat's signature: SHA1 of the sorted parts concatenated."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def verify_signature(expected_parts: tuple[str, ...], given: str | None) -> None:
    if not given or not hmac.compare_digest(sha1_signature(*expected_parts).encode(), given.encode()):
        raise BadSignature("signature mismatch")


def check_xml(body: bytes) -> None:
    """Refuse oversized bodies and any DTD/entity declaration before parsing."""
    if len(body) > MAX_XML_BYTES:
        raise BadRequest(f"body larger than {MAX_XML_BYTES} bytes")
    if _HOSTILE.search(body):
        raise BadRequest("XML with a DTD or entity declaration is refused")


def parse_xml(body: bytes | str) -> dict[str, Any]:
    """The `<xml>` element as a dict of strings; BadRequest for anything else."""
    data = body.encode() if isinstance(body, str) else body
    check_xml(data)
    try:
        parsed = xmltodict.parse(data, disable_entities=True)
    except Exception as exc:  # ExpatError, ValueError: not XML
        raise BadRequest(f"malformed XML: {exc}") from None
    root = parsed.get("xml") if isinstance(parsed, dict) else None
    if not isinstance(root, dict):
        raise BadRequest("the root element must be <xml> with fields")
    return dict(root)


def parse_message(body: bytes | str, enterprise: bool = False) -> tuple[Any, dict[str, Any]]:
    """Parse a (decrypted) message with wechatpy: the message object and its raw fields."""
    data = body.encode() if isinstance(body, str) else body
    check_xml(data)
    parser = wechatpy.enterprise.parse_message if enterprise else wechatpy.parse_message
    try:
        message = parser(data.decode())
    except Exception as exc:  # ExpatError, KeyError (no <xml>/<MsgType>), TypeError, UnicodeError
        raise BadRequest(f"not a WeChat message: {type(exc).__name__}") from None
    fields = getattr(message, "_data", None)
    if not isinstance(fields, dict):
        raise BadRequest("not a WeChat message")
    return message, dict(fields)


def decrypt(prp: BasePrpCrypto, encrypt: str, app_id: str) -> bytes:
    """The plaintext XML inside an <Encrypt> element; BadRequest when it does not decrypt
    or names another app."""
    try:
        return prp.decrypt(encrypt, app_id).encode()
    except Exception as exc:  # bad base64/padding, InvalidAppIdException, InvalidCorpIdException
        raise BadRequest(f"cannot decrypt: {type(exc).__name__}") from None


def envelope_encrypt(fields: Mapping[str, Any]) -> str:
    encrypt = fields.get("Encrypt")
    if not isinstance(encrypt, str) or not encrypt:
        raise BadRequest("encrypted mode but no <Encrypt> element")
    return encrypt


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def to_inbound(channel: str, message: Any, fields: Mapping[str, Any]) -> Inbound:
    """A wechatpy message (or event) and its raw fields as a frozen Inbound."""
    user_id = _text(fields.get("FromUserName"))
    if not user_id:
        raise BadRequest("no FromUserName")
    msg_type = _text(fields.get("MsgType")).lower()
    msg_id = _text(fields.get("MsgId")) or _text(fields.get("MsgID"))
    raw = {k: v for k, v in fields.items() if isinstance(v, str)}
    kind, text, event, event_key = "unknown", "", "", ""
    media: dict[str, str] = {}
    if msg_type == "text":
        kind, text = "text", _text(fields.get("Content"))
    elif msg_type in ("image",):
        kind, media = "image", {"media_id": _text(fields.get("MediaId")), "url": _text(fields.get("PicUrl"))}
    elif msg_type == "voice":
        kind = "voice"
        media = {"media_id": _text(fields.get("MediaId")), "format": _text(fields.get("Format")),
                 "recognition": _text(fields.get("Recognition"))}
    elif msg_type in ("video", "shortvideo"):
        kind, media = msg_type, {"media_id": _text(fields.get("MediaId")),
                                 "thumb_media_id": _text(fields.get("ThumbMediaId"))}
    elif msg_type == "location":
        kind = "location"
        media = {"x": _text(fields.get("Location_X")), "y": _text(fields.get("Location_Y")),
                 "scale": _text(fields.get("Scale")), "label": _text(fields.get("Label"))}
    elif msg_type == "link":
        kind = "link"
        media = {"title": _text(fields.get("Title")), "description": _text(fields.get("Description")),
                 "url": _text(fields.get("Url"))}
    elif msg_type == "file":
        kind, media = "file", {"media_id": _text(fields.get("MediaId")), "title": _text(fields.get("Title"))}
    elif msg_type == "event":
        kind = "event"
        # wechatpy normalizes `subscribe` + qrscene_ into subscribe_scan; the core wants the
        # subscription itself (welcome message), the scene stays in event_key and raw.
        event = (getattr(message, "event", "") or _text(fields.get("Event"))).lower()
        if event.startswith("subscribe_scan"):
            event = "subscribe"
        event_key = _text(fields.get("EventKey"))
        if event == "subscribe" and event_key.startswith("qrscene_"):
            event_key = event_key[len("qrscene_"):]
    if not msg_id:
        msg_id = f"{user_id}:{_text(fields.get('CreateTime'))}"
    return Inbound(channel=channel, user_id=user_id, msg_id=msg_id, kind=kind, text=text, media=media,
                   event=event, event_key=event_key, raw=raw)


def is_report(inbound: Inbound) -> bool:
    return inbound.kind == "event" and inbound.event in REPORT_EVENTS


def split_text(text: str, limit: int = TEXT_LIMIT_BYTES) -> list[str]:
    """Cut text into parts of at most `limit` UTF-8 bytes, at line ends when possible."""
    if len(text.encode()) <= limit:
        return [text]
    parts: list[str] = []
    current = ""
    for line in text.splitlines(keepends=True):
        while len(line.encode()) > limit:  # a single long line: cut by characters
            room = limit - len(current.encode())
            if room <= 0:
                parts.append(current)
                current, room = "", limit
            cut = _fit(line, room)
            current += line[:cut]
            line = line[cut:]
            parts.append(current)
            current = ""
        if len((current + line).encode()) > limit:
            parts.append(current)
            current = ""
        current += line
    if current:
        parts.append(current)
    return [p for p in (p.rstrip("\n") for p in parts) if p]


def _fit(text: str, room: int) -> int:
    """How many leading characters of `text` fit in `room` bytes (at least 1)."""
    size = 0
    for i, ch in enumerate(text):
        size += len(ch.encode())
        if size > room:
            return max(i, 1)
    return len(text)


def content_text(content: Mapping[str, Any]) -> str:
    """The plain text of an outbox content dict (cards as numbered lines)."""
    cards = tuple(Card(str(c.get("title", "")), str(c.get("payload", "")))
                  for c in content.get("cards") or () if isinstance(c, Mapping))
    return Reply(text=str(content.get("text") or ""), cards=cards).rendered_text()


def reply_text(reply: Reply) -> str:
    return reply.rendered_text()


def fits_passive(reply: Reply) -> bool:
    return reply.kind == "text" and len(reply_text(reply).encode()) <= TEXT_LIMIT_BYTES


def render_passive(reply: Reply, to_user: str, from_user: str, agent_id: str | None = None) -> str:
    """The passive-reply XML for one text reply (wechatpy renders it)."""
    kwargs: dict[str, Any] = {"source": from_user, "target": to_user, "content": reply_text(reply),
                              "time": int(time.time())}
    xml = TextReply(**kwargs).render()
    if agent_id:
        xml = xml.replace("</xml>", f"<AgentID>{int(agent_id)}</AgentID>\n</xml>")
    return xml


def new_nonce() -> str:
    return secrets.token_hex(8)
