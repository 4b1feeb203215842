"""Who a campaign reaches: its target (a group, a tag, a member level, a saved filter or
everyone) as a query of customer ids, and the error every campaign refusal raises.

Why apart: the panel counts an audience, the checks validate a target and a run plans
from it, and all three must read a target the same way.
"""

from __future__ import annotations

import peewee

from bot.core.models import Campaign, Customer, CustomerGroup, CustomerTag, GroupMember, Segment, Tag
from bot.crm import segments

TARGET_KINDS = ("group", "tag", "level", "segment", "all")
CONTENT_KINDS = ("text", "image", "news", "template")
GROUP_KINDS = ("快闪群", "直播群", "普通群", "会员群", "兴趣群")
LEVEL_NAMES = {0: "普通会员", 1: "VIP1", 2: "VIP2", 3: "VIP3", 4: "VIP4"}


class CampaignError(Exception):
    """A campaign cannot do what was asked (wrong state, unknown target)."""


# --- targets ---------------------------------------------------------------------------------


def _group(value: str) -> CustomerGroup:
    group = CustomerGroup.get_or_none(CustomerGroup.id == int(value)) if value.isdigit() else None
    group = group or CustomerGroup.get_or_none(CustomerGroup.name == value)
    if group is None:
        raise CampaignError(f"没有这个客户群：{value}")
    return group


def _tag(value: str) -> Tag:
    tag = Tag.get_or_none(Tag.id == int(value)) if value.isdigit() else None
    tag = tag or Tag.get_or_none(Tag.name == value)
    if tag is None:
        raise CampaignError(f"没有这个标签：{value}")
    return tag


def _level(value: str) -> int:
    text = value.strip().upper().removeprefix("VIP")
    if not text.isdigit() or int(text) not in LEVEL_NAMES:
        raise CampaignError(f"会员等级应为 0-4 或 VIP1-VIP4：{value}")
    return int(text)


def targets(campaign: Campaign) -> peewee.Select:
    """A query whose rows start with the target customers' ids (not yet ordered or limited)."""
    kind, value = campaign.target_kind, (campaign.target_value or "").strip()
    base = Customer.select(Customer.id)
    if kind == "group":
        return base.join(GroupMember).where(GroupMember.group == _group(value).id)
    if kind == "tag":
        return base.join(CustomerTag).where(CustomerTag.tag == _tag(value).id)
    if kind == "level":
        return base.where(Customer.level == _level(value))
    if kind == "segment":
        segment = Segment.get_or_none(Segment.id == int(value)) if value.isdigit() else None
        segment = segment or Segment.get_or_none(Segment.name == value)
        if segment is None:
            raise CampaignError(f"没有这个客户筛选：{value}")
        try:
            return base.where(segments.condition(segment))  # the same filter the admin counts
        except segments.SegmentError as exc:
            raise CampaignError(f"客户筛选「{segment.name}」有误：{exc}") from None
    if kind == "all":
        return base.where(Customer.id > 0)
    raise CampaignError(f"未知的发送对象类型：{kind}")


def audience_size(campaign: Campaign) -> int:
    return targets(campaign).count()
