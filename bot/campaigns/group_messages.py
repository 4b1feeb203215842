"""Group campaigns to WeCom customer groups (群发到客户群): the run — plan, hand over, outcomes.

Why: the shop's daily deals go to its WeCom customer groups, and WeCom does not let an app
post into them. `externalcontact/add_msg_template` with chat_type "group" gives each group
owner a task that the owner sends from WeCom (or never does). So a group campaign's run:
- `plan`: one `WecomGroupSend` per targeted chat, UNIQUE(job_key, chat_id), written before
  anything is asked of the platform; a re-run continues, never doubles;
- `hand_over`: per owner (at most 2000 chats a call), one outbox row keyed
  `groupmsg:{run}:{owner}:{n}` written in the same transaction that marks the chats handed.
  From there the outbox does what it does for every send (claim, attempt recorded before
  the call, retries, a crash leaves it in doubt, never repeated blindly); the WeCom sender
  (adapters/wecom_group_msg.py) makes the call and returns the task's msgid and fail_list.
  A send in doubt is looked up in `get_groupmsg_list_v2` rather than left to the operator
  (`group_message_tracking.settle_in_doubt`);
- `sync_outcomes`: the outbox's result onto the chats: waiting for the owner (msgid kept),
  failed (fail_list, or the call refused), in doubt, skipped;
- the owners' confirmations and the sends in doubt: bot/campaigns/group_message_tracking.py.
The run is done when every chat is with the platform (waiting) or has its outcome: an owner
who never confirms keeps their groups at "等待群主确认" without holding the campaign.

The platform's limit: one group message per customer group per day. kefu keeps it on its
side: the run that plans a chat first on a shop day takes its `daily_key`
(channel:chat_id:day, UNIQUE); a later run the same day records the chat as skipped with
the reason, and does not ask the platform (which would refuse it at the owner's send).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Iterable, Mapping

import peewee

from bot.campaigns.errors import CampaignError
from bot.core import clock, settings
from bot.core.db import insert_new, is_postgres, transaction
from bot.core.models import Campaign, Customer, CustomerGroup, GroupMember, Outbox, WecomGroupChat, WecomGroupSend
from bot.sending import outbox

log = logging.getLogger("kefu.group_messages")

TARGET = "wecom_group"  # Campaign.target_kind; target_value: a kefu group id or name, or "" for every chat
GROUP_MSG = "wecom_group_msg"  # the outbox content's kind
ADD_MSG_TEMPLATE = "/cgi-bin/externalcontact/add_msg_template"
MAX_CHATS = 2000  # chat_id_list per call, the platform's maximum
MAX_TEXT_BYTES = 4000
OPEN = ("pending", "handed")  # not yet with the platform
LIMIT_REASON = "该客户群今天已有一条群发（企业微信：每个客户群每天只能收到一条），本次不发送"
FAIL_LIST = "平台拒绝：该群不属于群主或已解散（fail_list）"
NO_OWNER = "该群没有群主"
PERSONAL = ("{nickname}", "{level}", "{coupon}")


class GroupMessageError(CampaignError):
    """A group campaign cannot be sent as asked (a CampaignError: every caller of the
    campaign's target says it the same way)."""


# --- what a group campaign targets and sends -------------------------------------------------


def chats(campaign: Campaign) -> peewee.Select:
    """The WeCom customer groups a group campaign targets: the one kefu group named by
    `target_value` (id or name), or every active chat when it is empty."""
    query = WecomGroupChat.select().where(WecomGroupChat.status == "active")
    value = (campaign.target_value or "").strip()
    if not value:
        return query
    group = CustomerGroup.get_or_none(CustomerGroup.id == int(value)) if value.isdigit() else None
    group = group or CustomerGroup.get_or_none(CustomerGroup.name == value)
    if group is None or not WecomGroupChat.select().where(WecomGroupChat.group == group.id).exists():
        raise GroupMessageError(f"不是企业微信客户群：{value}（请先同步客户群：kefu wecom sync）")
    return query.where(WecomGroupChat.group == group.id)


def audience(campaign: Campaign) -> peewee.Select:
    """The customers in the targeted groups (what the campaign's count shows)."""
    groups = chats(campaign).select(WecomGroupChat.group)
    return Customer.select(Customer.id).where(Customer.id.in_(
        GroupMember.select(GroupMember.customer).where(GroupMember.group.in_(groups))))


def content_problems(campaign: Campaign) -> list[str]:
    """Why the content cannot go to customer groups: every group gets the same message, so
    no per-customer placeholder and no coupon; text within the platform's 4000 bytes; some
    text, image or link."""
    content: Mapping[str, Any] = campaign.content or {}
    found: list[str] = []
    message = as_message(content)
    if not message.get("text") and not message.get("attachments"):
        found.append("活动没有可发送的内容（文字、图片或链接）")
    text = str(content.get("text") or "")
    used = [p for p in PERSONAL if p in text]
    if used:
        found.append("群发到客户群时每个群收到同一条消息，不能用 " + "、".join(used))
    if content.get("coupon_id"):
        found.append("群发到客户群不能每人发券：请不选券")
    if len(text.encode()) > MAX_TEXT_BYTES:
        found.append(f"文字超过企业微信的 {MAX_TEXT_BYTES} 字节上限")
    return found


def as_message(content: Mapping[str, Any]) -> dict[str, Any]:
    """The campaign's content as the outbox row's body (text, attachments: image, link)."""
    attachments: list[dict[str, Any]] = []
    if content.get("media_id") or content.get("url"):
        image = {"media_id": content["media_id"]} if content.get("media_id") else {"pic_url": content["url"]}
        attachments.append({"msgtype": "image", "image": image})
    link = content.get("link") if isinstance(content.get("link"), dict) else None
    if link and link.get("url") and link.get("title"):
        attachments.append({"msgtype": "link", "link": {k: str(link[k]) for k in ("title", "url", "picurl", "desc")
                                                        if link.get(k)}})
    return {"kind": GROUP_MSG, "text": str(content.get("text") or ""), "attachments": attachments}


def platform_id(msgid: str, fail_list: Iterable[str]) -> str:
    """add_msg_template's answer as the outbox row's platform id: the msgid, and the chats
    of its fail_list after a tab (the outbox keeps one id per send)."""
    failed = ",".join(fail_list)
    return f"{msgid}\t{failed}" if failed else msgid


def parse_platform_id(value: str) -> tuple[str, set[str]]:
    msgid, _, failed = (value or "").partition("\t")
    return msgid, {c for c in failed.split(",") if c}


def shop_day(now: datetime | None = None) -> str:
    return (now or clock.now()).astimezone(settings.shop_zone()).strftime("%Y-%m-%d")


# --- a run: plan, hand over, outcomes ---------------------------------------------------------


def plan(campaign: Campaign) -> int:
    """A WecomGroupSend for every targeted chat not yet in the run; returns how many were
    added. A chat that already has today's group message is added as skipped (LIMIT_REASON)."""
    job_key, day, added = campaign.run_key, shop_day(), 0
    have = {c for (c,) in WecomGroupSend.select(WecomGroupSend.chat_id).where(
        WecomGroupSend.job_key == job_key).tuples()}
    for chat in list(chats(campaign).order_by(WecomGroupChat.id)):
        if chat.chat_id in have:
            continue
        row = {"job_key": job_key, "campaign": campaign.id, "channel": chat.channel, "chat_id": chat.chat_id,
               "owner": chat.owner or "", "created_at": clock.now(), "updated_at": clock.now()}
        with transaction():
            if not chat.owner:
                inserted = insert_new(WecomGroupSend.insert(**row, status="skipped", reason=NO_OWNER)
                                      .on_conflict_ignore())
            else:
                inserted = insert_new(WecomGroupSend.insert(**row, daily_key=f"{chat.channel}:{chat.chat_id}:{day}")
                                      .on_conflict_ignore())
                if inserted is None and not WecomGroupSend.select().where(
                        (WecomGroupSend.job_key == job_key) & (WecomGroupSend.chat_id == chat.chat_id)).exists():
                    inserted = insert_new(WecomGroupSend.insert(**row, status="skipped", reason=LIMIT_REASON)
                                          .on_conflict_ignore())
        added += inserted is not None
    return added


def hand_over(campaign: Campaign) -> int:
    """The run's pending chats into one outbox row per owner (and per 2000 chats), in one
    transaction with their `handed` mark; returns how many rows were written."""
    message = as_message(campaign.content or {})
    written = 0
    with transaction():
        query = (WecomGroupSend.select().where((WecomGroupSend.job_key == campaign.run_key)
                                               & (WecomGroupSend.status == "pending")).order_by(WecomGroupSend.id))
        if is_postgres():
            query = query.for_update("FOR UPDATE SKIP LOCKED")
        by_owner: dict[tuple[str, str], list[WecomGroupSend]] = {}
        for row in query:
            by_owner.setdefault((row.channel, row.owner), []).append(row)
        now = clock.now()
        for (channel, owner), rows in by_owner.items():
            prefix = f"groupmsg:{campaign.run_key}:{owner}:"
            n = Outbox.select().where(Outbox.key.startswith(prefix)).count()
            for start in range(0, len(rows), MAX_CHATS):
                part = rows[start:start + MAX_CHATS]
                n += 1
                key = f"{prefix}{n}"
                outbox.enqueue(key, channel, owner, {**message, "chat_id_list": [r.chat_id for r in part]},
                               request_id="")
                WecomGroupSend.update(status="handed", outbox_key=key, updated_at=now).where(
                    WecomGroupSend.id.in_([r.id for r in part])).execute()
                written += 1
    return written


def sync_outcomes(job_key: str) -> int:
    """The outbox's results onto the run's handed (or in doubt) chats; returns rows changed."""
    changed = 0
    now = clock.now()
    with transaction():
        rows = list(WecomGroupSend.select(WecomGroupSend.id, WecomGroupSend.chat_id, WecomGroupSend.status,
                                          WecomGroupSend.reason, WecomGroupSend.msgid, Outbox.status, Outbox.content,
                                          Outbox.last_error)
                    .join(Outbox, on=(Outbox.key == WecomGroupSend.outbox_key))
                    .where((WecomGroupSend.job_key == job_key) & WecomGroupSend.status.in_(("handed", "in_doubt")))
                    .tuples())
        for row_id, chat_id, was, was_reason, was_msgid, sent_status, content, last_error in rows:
            status, reason, msgid = was, was_reason, was_msgid
            if sent_status == "sent":
                msgid, failed = parse_platform_id(str((content or {}).get("msg_id") or ""))
                status, reason = ("failed", FAIL_LIST) if chat_id in failed else ("waiting", "")
            elif sent_status in ("failed", "window_closed", "limit_reached"):
                status, reason = "failed", f"平台拒绝：{last_error}"[:255]
            elif sent_status == "cancelled":
                status, reason = "skipped", "已取消"
            elif sent_status == "in_doubt":
                status, reason = "in_doubt", "已交给平台，但发送进程中断，平台是否收到未知"
            elif sent_status in ("pending", "sending"):
                status, reason = "handed", ""
            if (status, reason, msgid) != (was, was_reason, was_msgid):
                update = {"status": status, "reason": reason, "msgid": msgid[:64], "updated_at": now}
                if status in ("failed", "skipped"):  # the group received nothing: its day is free again
                    update["daily_key"] = None
                changed += WecomGroupSend.update(**update).where(WecomGroupSend.id == row_id).execute()
    return changed


def withdraw(job_key: str) -> int:
    """Cancel what the run has not handed to the platform: pending chats are skipped and
    outbox rows no sender has taken are cancelled. Returns how many chats were stopped."""
    now = clock.now()
    with transaction():
        keys = WecomGroupSend.select(WecomGroupSend.outbox_key).where(
            (WecomGroupSend.job_key == job_key) & (WecomGroupSend.status == "handed"))
        Outbox.update(status="cancelled", last_error="cancelled").where(
            (Outbox.status == "pending") & Outbox.key.in_(keys)).execute()
        stopped = WecomGroupSend.update(status="skipped", reason="已取消", daily_key=None, updated_at=now).where(
            (WecomGroupSend.job_key == job_key) & (WecomGroupSend.status == "pending")).execute()
    sync_outcomes(job_key)
    return stopped


def drive(campaign_id: int) -> str:
    """Carry a running group campaign forward (the group form of `bot.campaigns.runs.drive`):
    plan, hand over, copy outcomes; done (or back to scheduled for a repeat) once no chat is
    still on kefu's side. Returns done | sending | the campaign's state."""
    campaign = Campaign.get_or_none(Campaign.id == campaign_id)
    if campaign is None or campaign.status != "running" or not campaign.run_key:
        return "not running"
    try:
        plan(campaign)
    except GroupMessageError as exc:
        log.warning("campaign %s: %s", campaign_id, exc)
    if Campaign.get_by_id(campaign_id).status != "running":  # paused or cancelled meanwhile
        return Campaign.get_by_id(campaign_id).status
    hand_over(campaign)
    sync_outcomes(campaign.run_key)
    if WecomGroupSend.select().where((WecomGroupSend.job_key == campaign.run_key)
                                     & WecomGroupSend.status.in_(OPEN)).exists():
        return "sending"
    to = "scheduled" if campaign.cron else "done"
    Campaign.update(status=to).where((Campaign.id == campaign_id) & (Campaign.status == "running")).execute()
    return "done"


def progress(campaign: Campaign) -> dict[str, int]:
    """The run's chats by status (queued: pending or handed), plus total."""
    counts = dict.fromkeys(("queued", "waiting", "sent", "failed", "in_doubt", "skipped"), 0)
    if not campaign.run_key:
        return {}
    sync_outcomes(campaign.run_key)
    for status, n in (WecomGroupSend.select(WecomGroupSend.status, peewee.fn.COUNT(WecomGroupSend.id))
                      .where(WecomGroupSend.job_key == campaign.run_key).group_by(WecomGroupSend.status).tuples()):
        counts["queued" if status in OPEN else status] += n
    counts["total"] = sum(counts.values())
    return counts


def limited_today(campaign: Campaign) -> list[str]:
    """The names of the targeted chats that already have today's group message (from any
    run, this campaign's earlier one included): a run now would skip them."""
    taken = WecomGroupSend.select(WecomGroupSend.chat_id).where(WecomGroupSend.daily_key.endswith(f":{shop_day()}"))
    return [c.name or c.chat_id for c in chats(campaign).where(WecomGroupChat.chat_id.in_(taken))]


ALL_LIMITED = "所选的客户群今天都已有一条群发（企业微信：每个客户群每天只能收到一条）：请把发送时间改到明天或以后"


def limit_problems(campaign: Campaign, now: datetime | None = None) -> list[str]:
    """Refused before sending: a one-shot run today when every targeted group already has
    today's group message (nothing would go). Some of them only: said on the confirm page
    (`limited_today`), the others are sent."""
    now = now or clock.now()
    if campaign.cron or shop_day(campaign.run_at or now) != shop_day(now):
        return []
    try:
        total = chats(campaign).count()
        limited = limited_today(campaign)
    except GroupMessageError:
        return []  # said by the target's own check
    return [ALL_LIMITED] if total and len(limited) == total else []
