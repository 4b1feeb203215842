"""What the WeChat-family callbacks (公众号, 企业微信, 微信客服) have in common.

Why one module: the three channels verify the same SHA1 signatures, refuse the same hostile
XML, turn the same XML shapes into a `bot.core.events.Inbound`, and render the same passive
replies. Each channel module keeps only what differs (URL, crypto id, send API).

Rules kept here:
- signatures are compared in constant time (`hmac.compare_digest`), before any parsing;
- a body with a DTD or entity declaration is refused before it reaches an XML parser
  (no entity expansion, no external fetch), as is anything larger than `MAX_XML_BYTES`;
- parsing never raises on an unknown kind: it becomes `kind="unknown"` with the fields in
  `raw`; only XML that is not a WeChat message at all is an error (`BadRequest`);
- the XML is read by the standard library's C parser (`xml.etree.ElementTree`) into the
  dict shape xmltodict gives (text stripped, empty as None, nested elements as dicts,
  repeated ones as lists), and events are named as wechatpy names them: xmltodict and
  wechatpy's message classes were a fifth of the event loop's busy time under load.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
import re
import secrets
import struct
import time
from typing import Any, Mapping
import xml.etree.ElementTree as ElementTree

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from wechatpy.crypto.base import BasePrpCrypto

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
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, ValueError) as exc:  # not XML, not UTF-8
        raise BadRequest(f"malformed XML: {exc}") from None
    value = _value(root) if root.tag == "xml" else None
    if not isinstance(value, dict):
        raise BadRequest("the root element must be <xml> with fields")
    return value


def _value(element: ElementTree.Element) -> Any:
    """An element as xmltodict gives it: a leaf's text stripped (None when empty), else a
    dict of its children (a repeated child as a list) and attributes (`@name`)."""
    children = list(element)
    if not children and not element.attrib:
        return (element.text or "").strip() or None
    out: dict[str, Any] = {f"@{k}": v for k, v in element.attrib.items()}
    for child in children:
        value = _value(child)
        if child.tag not in out:
            out[child.tag] = value
        elif isinstance(out[child.tag], list):
            out[child.tag].append(value)
        else:
            out[child.tag] = [out[child.tag], value]
    text = (element.text or "").strip()
    if text:
        out["#text"] = text
    return out


def parse_message(body: bytes | str, enterprise: bool = False) -> tuple[str, dict[str, Any]]:
    """A (decrypted) message: its event's name as wechatpy names it ("" when it is not an
    event) and its fields. On the 公众号, a `subscribe` with a `qrscene_` key is
    `subscribe_scan` with the prefix off the key (`subscribe_scan_product` for a product
    code), as wechatpy rewrites it; WeCom's events keep their names."""
    fields = parse_xml(body)
    msg_type = fields.get("MsgType")
    if not isinstance(msg_type, str):
        raise BadRequest("not a WeChat message: no MsgType")
    msg_type = msg_type.lower()
    event = fields.get("Event")
    if "Event" in fields and not isinstance(event, str):
        raise BadRequest("not a WeChat message: an empty Event")
    if enterprise:
        if msg_type != "event":
            return "", fields
        if event is None:
            raise BadRequest("not a WeChat message: an event without Event")
        return event.lower(), fields
    if msg_type != "event" and not msg_type.startswith("device_"):
        return "", fields
    name = event.lower() if isinstance(event, str) else ""
    if msg_type.startswith("device_"):
        name = f"device_{name}" if name else msg_type
    key = fields.get("EventKey")
    if name == "subscribe" and isinstance(key, str) and key:
        if key.startswith(("scanbarcode|", "scanimage|")):
            name = fields["Event"] = "subscribe_scan_product"
        elif key.startswith("qrscene_"):
            name = fields["Event"] = "subscribe_scan"
            fields["EventKey"] = key[len("qrscene_"):]
    return name, fields


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


def to_inbound(channel: str, event_name: str, fields: Mapping[str, Any]) -> Inbound:
    """A parsed message (`parse_message`: its event's name, its fields) as a frozen Inbound."""
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
        event = (event_name or _text(fields.get("Event"))).lower()
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


def cdata(value: str) -> str:
    """`value` as CDATA: a "]]>" inside is split across two sections (left whole, it would end
    the section and break the XML: an FAQ answer may say anything)."""
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def render_passive(reply: Reply, to_user: str, from_user: str, agent_id: str | None = None) -> str:
    """The passive-reply XML for one text reply (the platforms' `text` reply)."""
    agent = f"<AgentID>{int(agent_id)}</AgentID>\n" if agent_id else ""
    return (f"<xml>\n<ToUserName>{cdata(to_user)}</ToUserName>\n<FromUserName>{cdata(from_user)}</FromUserName>\n"
            f"<CreateTime>{int(time.time())}</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n"
            f"<Content>{cdata(reply_text(reply))}</Content>\n{agent}</xml>")


def encrypt_reply(key: bytes, token: str, app_id: str, xml: str, nonce: str, timestamp: str | None = None) -> str:
    """A passive reply in safe mode, in the platforms' documented format: AES-256-CBC (the key's
    first 16 bytes the IV) over 16 random bytes, the reply's length in 4 bytes (network
    order), the reply and the app (or corp) id, padded as PKCS#7 to 32 bytes; base64; signed
    over (token, timestamp, nonce, ciphertext). The 16 bytes only vary the first block, as
    wechatpy's letters do; `random`'s, since a read of the kernel's source per reply showed
    in the event loop's profile."""
    body = xml.encode()
    plain = random.randbytes(16) + struct.pack(">I", len(body)) + body + app_id.encode()
    pad = 32 - len(plain) % 32
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    sealed = encryptor.update(plain + bytes([pad]) * pad) + encryptor.finalize()
    encrypt = base64.b64encode(sealed).decode()
    timestamp = timestamp or str(int(time.time()))
    return (f"<xml>\n<Encrypt>{cdata(encrypt)}</Encrypt>\n"
            f"<MsgSignature>{cdata(sha1_signature(token, timestamp, nonce, encrypt))}</MsgSignature>\n"
            f"<TimeStamp>{timestamp}</TimeStamp>\n<Nonce>{cdata(nonce)}</Nonce>\n</xml>")


def new_nonce() -> str:
    return secrets.token_hex(8)
