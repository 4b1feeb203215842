"""The checks before a campaign is saved or sent, each problem a sentence for the operator,
and the preview of what one customer would read.
"""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any, Mapping

from bot.campaigns.content import PLACEHOLDER_PATTERN, as_message, fill_all, placeholder_values
from bot.campaigns.cron import check_cron
from bot.campaigns.targets import CampaignError, targets
from bot.core import clock, settings
from bot.core.models import Campaign, Coupon, Customer
from bot.crm.coupons import coupon_code

def placeholders(campaign: Campaign) -> list[str]:
    """The {name} placeholders the campaign's content uses, in order, each once."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str):
            found.extend(n for n in PLACEHOLDER_PATTERN.findall(value) if n not in found)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for key, item in value.items():
                if key != "coupon_id":
                    walk(item)

    walk(campaign.content or {})
    return found


def problems(campaign: Campaign, now: datetime | None = None) -> list[str]:
    """Everything that would make the campaign misfire, each as a sentence for the operator:
    an unknown target, no content, a placeholder nothing fills (`{coupon}` without a coupon,
    a misspelt name), a coupon gone, a one-shot time already past, a wrong cron. The panel
    refuses to save such a campaign and `schedule` (panel and CLI) to send it."""
    return target_problems(campaign) + content_problems(campaign) + timing_problems(campaign, now)


def target_problems(campaign: Campaign) -> list[str]:
    """An unknown group, tag, level or segment."""
    try:
        targets(campaign)
    except CampaignError as exc:
        return [str(exc)]
    return []


def timing_problems(campaign: Campaign, now: datetime | None = None) -> list[str]:
    """A wrong cron line, or a one-shot time already past (said in the shop's time zone)."""
    if campaign.cron:
        try:
            check_cron(campaign.cron)
        except CampaignError as exc:
            return [str(exc)]
    elif campaign.run_at is not None and campaign.run_at <= (now or clock.now()):
        shown = campaign.run_at.astimezone(settings.shop_zone()).strftime("%Y-%m-%d %H:%M")
        return [f"发送时间 {shown} 已经过去：请改为将来的时间，或留空表示立即发送"]
    return []


PLACEHOLDER_NAMES = ("nickname", "level", "coupon")


def content_problems(campaign: Campaign) -> list[str]:
    """What in the content cannot be sent as written: nothing to send, a placeholder nothing
    fills (`{coupon}` without a coupon, a misspelt name), a coupon gone. A test send is
    refused for these too: filling in a stand-in would hide them."""
    found: list[str] = []
    content: Mapping[str, Any] = campaign.content or {}
    if as_message(campaign.content_kind, content) is None and not content.get("template"):
        found.append("活动没有可发送的内容")
    names = placeholders(campaign)
    unknown = [n for n in names if n not in PLACEHOLDER_NAMES]
    if unknown:
        found.append("无法填写的占位符：" + "、".join("{" + n + "}" for n in unknown)
                     + "（可用：" + "、".join("{" + n + "}" for n in PLACEHOLDER_NAMES) + "）")
    coupon_id = content.get("coupon_id")
    if "coupon" in names and not coupon_id:
        found.append("内容里有 {coupon}，但没有选择要发的券：请选择一张券，或删去 {coupon}")
    if coupon_id and Coupon.get_or_none((Coupon.id == int(coupon_id)) & (Coupon.active == True)) is None:  # noqa: E712
        found.append("所选的券已停用或不存在")
    return found
PREVIEW_NOTE = {"coupon": "每人一张，券码各不相同"}


def preview(campaign: Campaign, customer: Any = None) -> dict[str, Any]:
    """What one customer would read, without issuing anything: the first of the audience (or
    `customer`), each placeholder's value for them, and the filled text. A coupon shows a
    sample code of the real form (each recipient gets their own)."""
    if customer is None:
        try:
            first = targets(campaign).order_by(Customer.id).first()
        except CampaignError:
            first = None
        customer = Customer.get_by_id(first.id) if first is not None else None
    content: Mapping[str, Any] = campaign.content or {}
    sample = coupon_code(f"preview:{campaign.id}") if content.get("coupon_id") else ""
    person: Any = customer or SimpleNamespace(nickname="", name="", level=0)
    values = placeholder_values(person, sample)
    message = as_message(campaign.content_kind, content) or as_message("template", content.get("template") or {})
    return {"customer": customer,
            "values": {n: values.get(n, "{" + n + "}") for n in placeholders(campaign)},
            "message": fill_all(message, values) if message else None}
