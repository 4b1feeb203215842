"""Channel codes (渠道活码): a 公众号 QR code per place a customer meets the shop.

Why: a code on the parcel card, the live-stream screen or the counter tells the shop where
a follower came from and greets them for that place. The platform gives the code's scene
back in the `subscribe` event (`EventKey=qrscene_<scene>`, a new follower) and in the `SCAN`
event (an existing follower); kefu applies the code — tags, group, welcome, coupon —
exactly once per customer and code: UNIQUE(code, customer) in `ChannelCodeScan`, inside
the dispatcher's transaction, whose inbound-message key already drops WeChat's retries.

Creating one asks the platform (`qrcode/create`) first and stores the row only when it
answered a ticket: a refused or failed call saves nothing. The call itself is injected
(`PlatformPost`), so this module stays transport-free. An expiry within the platform's 30
days makes a temporary code (`QR_STR_SCENE` with `expire_seconds`, WeChat stops it too);
a later or no expiry a permanent one (`QR_LIMIT_STR_SCENE`, kefu refuses it after expiry).
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Callable, Iterable, Mapping

import peewee
import segno

from bot.core import clock, settings
from bot.crm.coupons import issue_coupon
from bot.crm.groups import add_ids
from bot.core.db import insert_row
from bot.core.events import Inbound, Reply
from bot.core.models import ChannelCode, ChannelCodeScan, Conversation, Coupon, Customer, CustomerGroup, CustomerTag, IssuedCoupon, Order, Tag
from bot.sending.outgoing import Outgoing

# (API path, JSON body) -> the platform's JSON answer (errcode 0 or absent: success)
PlatformPost = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]

QRCODE_PATH = "/cgi-bin/qrcode/create"
TEMPORARY_MAX = timedelta(days=30)  # the platform's longest expire_seconds (2,592,000)
SCENE_EVENTS = ("subscribe", "scan")
PAID = ("paid", "shipped", "delivered")
WINDOWS = (7, 30)


class CodeError(ValueError):
    """A code cannot be created as asked; the message says why, for the operator."""


@dataclass(frozen=True)
class CodeSpec:
    """What the operator asks for."""

    name: str
    channel: str
    tags: tuple[str, ...] = ()
    group_id: int | None = None
    welcome: str = ""
    coupon_id: int | None = None
    expires_at: datetime | None = None


def parse_tags(text: str) -> tuple[str, ...]:
    """Tag names from the operator's comma-separated text (，、 too), blanks and repeats dropped."""
    names: list[str] = []
    for part in text.replace("，", ",").replace("、", ",").split(","):
        name = part.strip()[:32]
        if name and name not in names:
            names.append(name)
    return tuple(names)


def qrcode_request(scene: str, expires_at: datetime | None, now: datetime) -> dict[str, Any]:
    """The qrcode/create body: temporary when the expiry is within the platform's 30 days."""
    if expires_at is not None and expires_at - now <= TEMPORARY_MAX:
        seconds = max(int((expires_at - now).total_seconds()), 60)
        return {"expire_seconds": seconds, "action_name": "QR_STR_SCENE",
                "action_info": {"scene": {"scene_str": scene}}}
    return {"action_name": "QR_LIMIT_STR_SCENE", "action_info": {"scene": {"scene_str": scene}}}


def create(spec: CodeSpec, post: PlatformPost) -> ChannelCode:
    """Ask the platform for the code and store it. Raises CodeError (nothing stored) for a
    blank or taken name, a past expiry, a missing group or coupon, or the platform's refusal."""
    now = clock.now()
    check(spec, now)  # raises CodeError before anything is asked of the platform
    scene = f"kc_{secrets.token_hex(8)}"
    body = qrcode_request(scene, spec.expires_at, now)
    answer = post(QRCODE_PATH, body)
    errcode = int(answer.get("errcode") or 0)
    if errcode or not answer.get("ticket"):
        raise CodeError(f"微信拒绝创建二维码：{errcode} {answer.get('errmsg', '')}".strip())
    return store(spec, scene, str(answer["ticket"]), str(answer.get("url") or ""), "expire_seconds" not in body)


def check(spec: CodeSpec, now: datetime) -> str:
    """The code's name once the operator's request holds; CodeError (why) when it does not.
    Shared by the 公众号 codes and WeCom contact-way codes (bot/crm/wecom_contacts.py)."""
    name = spec.name.strip()
    if not name:
        raise CodeError("请填写活码名称 (a name is required)")
    if ChannelCode.select().where(ChannelCode.name == name[:64]).exists():
        raise CodeError(f"已有同名活码：{name} (the name is taken)")
    if spec.expires_at is not None and spec.expires_at <= now:
        raise CodeError("过期时间已过 (the expiry is in the past)")
    if spec.group_id is not None and CustomerGroup.get_or_none(CustomerGroup.id == spec.group_id) is None:
        raise CodeError("所选分组不存在 (no such group)")
    if spec.coupon_id is not None and Coupon.get_or_none((Coupon.id == spec.coupon_id)
                                                        & (Coupon.active == True)) is None:  # noqa: E712
        raise CodeError("所选优惠券不存在或已停用 (no such active coupon)")
    return name


def store(spec: CodeSpec, scene: str, ticket: str, url: str, permanent: bool) -> ChannelCode:
    """The code as the platform granted it: `scene` is what its events carry back."""
    code = ChannelCode(name=spec.name.strip()[:64], channel=spec.channel, scene=scene, permanent=permanent,
                       expires_at=spec.expires_at, tags=list(spec.tags), group=spec.group_id,
                       welcome=spec.welcome.strip(), coupon=spec.coupon_id, ticket=ticket[:256], url=url[:256],
                       created_at=clock.now())
    code.save()
    return code


def png(code: ChannelCode, scale: int = 8) -> bytes:
    """The code's image: its platform URL as a QR code (segno), a white border around it."""
    if not code.url:
        raise CodeError("该活码没有二维码地址 (the code has no URL)")
    out = io.BytesIO()
    segno.make(code.url, error="m").save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


def is_expired(code: ChannelCode, now: datetime | None = None) -> bool:
    return code.expires_at is not None and code.expires_at <= (now or clock.now())


# -- scanned -----------------------------------------------------------------------------------


def scanned(inbound: Inbound, customer: Customer, conversation: Conversation | None) -> list[Outgoing] | None:
    """What a subscribe/SCAN event with a channel code's scene does; None when the event
    names no code of ours (the ordinary event handling goes on: a plain welcome).

    An expired code is refused: None for a subscribe (a plain follower's welcome), nothing
    for a SCAN. The first scan by a customer applies the code (tags, group, coupon) and
    answers its welcome; a later scan only counts."""
    if inbound.kind != "event" or inbound.event not in SCENE_EVENTS or not inbound.event_key:
        return None
    code = ChannelCode.get_or_none((ChannelCode.scene == inbound.event_key[:64])
                                   & (ChannelCode.channel == inbound.channel))
    if code is None:
        return None
    now = clock.now()
    if is_expired(code, now):
        return None if inbound.event == "subscribe" else []
    applied, issued = apply_once(code, customer, inbound.event == "subscribe")
    if not applied:
        return None if inbound.event == "subscribe" else []
    return [Outgoing(inbound.channel, inbound.user_id, Reply(text=welcome_text(code, issued)), "bot",
                     conversation, customer)]


def apply_once(code: ChannelCode, customer: Customer, new_follower: bool) -> tuple[bool, IssuedCoupon | None]:
    """Apply `code` to `customer` the first time (True and the coupon issued, if any); a later
    scan or add only counts (False). UNIQUE(code, customer) decides, whatever retries."""
    now = clock.now()
    row = ChannelCodeScan(code=code.id, customer=customer.id, new_follower=new_follower, scans=1, first_at=now,
                          last_at=now)
    if insert_row(row, ignore_conflict=True) is None:  # applied before: count the scan, nothing else
        ChannelCodeScan.update(scans=ChannelCodeScan.scans + 1, last_at=now).where(
            (ChannelCodeScan.code == code.id) & (ChannelCodeScan.customer == customer.id)).execute()
        return False, None
    issued = _apply(code, customer)
    if issued is not None:
        ChannelCodeScan.update(issued_coupon=issued.id).where(ChannelCodeScan.id == row.id).execute()
    return True, issued


def _apply(code: ChannelCode, customer: Customer) -> IssuedCoupon | None:
    """Tags, group and coupon of `code` for `customer` (each idempotent on its own key)."""
    add_tags(customer.id, code.tags or ())
    if code.group_id is not None:
        add_ids(code.group_id, [customer.id])
    if code.coupon_id is not None:
        return issue_coupon(code.coupon_id, customer.id, f"code:{code.id}:{customer.id}")
    return None


def add_tags(customer_id: int, names: Iterable[str]) -> None:
    """Tag a customer by tag names, creating tags that do not exist yet."""
    for name in names:
        tag, _ = Tag.get_or_create(name=str(name)[:32])
        CustomerTag.insert(customer=customer_id, tag=tag.id).on_conflict_ignore().execute()


def welcome_text(code: ChannelCode, issued: IssuedCoupon | None) -> str:
    """The code's welcome (the shop's welcome message when it has none) and the coupon."""
    text = code.welcome or str(settings.get("welcome_message") or "")
    if issued is not None:
        coupon = Coupon.get_by_id(issued.coupon_id)
        text += f"\n送您一张优惠券「{coupon.name}」，券码 {issued.code}，{coupon.valid_days} 天内有效。"
    return text


# -- figures -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    """A code's results: scans (every scan), customers it reached, new followers, coupons
    issued and used, and orders and revenue of its customers within 7 and 30 days of
    their first scan (paid, shipped or delivered orders)."""

    scans: int
    customers: int
    new_followers: int
    coupons_issued: int
    coupons_used: int
    orders: Mapping[int, int]
    revenue: Mapping[int, Decimal]


def figures(code: ChannelCode | int) -> Figures:
    code_id = code if isinstance(code, int) else code.id
    base = ChannelCodeScan.select().where(ChannelCodeScan.code == code_id)
    scans, customers, followers = base.select(
        peewee.fn.COALESCE(peewee.fn.SUM(ChannelCodeScan.scans), 0), peewee.fn.COUNT(ChannelCodeScan.id),
        peewee.fn.COALESCE(peewee.fn.SUM(peewee.Case(None, [(ChannelCodeScan.new_follower == True, 1)], 0)), 0),  # noqa: E712
    ).tuples().get()
    issued = base.where(ChannelCodeScan.issued_coupon.is_null(False))
    used = (issued.join(IssuedCoupon, on=(ChannelCodeScan.issued_coupon == IssuedCoupon.id))
            .where(IssuedCoupon.used_at.is_null(False)))
    orders = {days: 0 for days in WINDOWS}
    revenue = {days: Decimal(0) for days in WINDOWS}
    rows = (Order.select(Order.amount, Order.created_at, ChannelCodeScan.first_at)
            .join(ChannelCodeScan, on=(Order.customer == ChannelCodeScan.customer))
            .where((ChannelCodeScan.code == code_id) & Order.status.in_(PAID)
                   & (Order.created_at >= ChannelCodeScan.first_at))
            .tuples())
    for amount, created_at, first_at in rows.iterator():
        for days in WINDOWS:
            if created_at < first_at + timedelta(days=days):
                orders[days] += 1
                revenue[days] += Decimal(amount or 0)
    return Figures(int(scans), int(customers), int(followers), issued.count(), used.count(), orders, revenue)
