"""The owners' confirmations of group campaigns (bot/campaigns/group_messages.py), and their sends
left in doubt.

Why apart from the run: WeCom calls nobody back when an owner sends a group message's task,
so kefu asks (the scheduler every 5 minutes, `kefu wecom groupmsg`, the panel's button):
`get_groupmsg_task` says whether the owner has sent it, then `get_groupmsg_send_result` what
each chat got: sent, or failed (status 3: the chat already got another group message). A
chat the owner left out when sending is failed too (the platform lists sent chats only).
A send a crash left in doubt is looked up in `get_groupmsg_list_v2` (`settle_in_doubt`).
Transport-free: the HTTP calls are injected (`Fetch`, as in bot/crm/wecom_contacts.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from bot.campaigns.group_messages import sync_outcomes
from bot.core import clock
from bot.core.models import Outbox, WecomGroupSend
from bot.crm import wecom_contacts
from bot.crm.wecom_contacts import Fetch
from bot.sending import outbox

TASK = "/cgi-bin/externalcontact/get_groupmsg_task"
SEND_RESULT = "/cgi-bin/externalcontact/get_groupmsg_send_result"
LIST_V2 = "/cgi-bin/externalcontact/get_groupmsg_list_v2"
SETTLE_AFTER = timedelta(minutes=10)  # an attempt this old that WeCom has no task for never reached it
LIST_SPAN = timedelta(days=30)  # get_groupmsg_list_v2 looks at most a month back
PAGE = 1000
OWNER_SENT = 2  # get_groupmsg_task status: 0 not sent, 2 sent
CHAT_SENT, ALREADY_RECEIVED = 1, 3  # get_groupmsg_send_result statuses
CHAT_FAILURES = {2: "客户不是好友，平台未发送", 3: "该群已收到其他群发消息（平台：每个客户群每天一条），平台未发送"}
NOT_CHOSEN = "群主发送时没有选择该群"


@dataclass
class TrackReport:
    asked: int = 0  # owners' tasks looked at
    sent: int = 0  # chats now sent
    failed: int = 0  # chats now failed
    waiting: int = 0  # chats still waiting for their owner


def track(channel: str, fetch: Fetch, job_key: str | None = None) -> TrackReport:
    """Settle the sends in doubt (`settle_in_doubt`), then ask the platform about every chat
    waiting for its owner (of one run, or all): a task the owner sent gives each chat its
    outcome. A refused call raises wecom_contacts.SyncError; what was learnt before it stays."""
    report = TrackReport()
    settle_in_doubt(channel, fetch)
    for (handed,) in WecomGroupSend.select(WecomGroupSend.job_key).where(
            (WecomGroupSend.channel == channel) & (WecomGroupSend.status == "handed")).distinct().tuples():
        sync_outcomes(handed)  # a run already done whose sends were sent again
    where = (WecomGroupSend.channel == channel) & (WecomGroupSend.status == "waiting") & (WecomGroupSend.msgid != "")
    if job_key:
        where &= WecomGroupSend.job_key == job_key
    tasks: dict[tuple[str, str], list[WecomGroupSend]] = {}
    for row in WecomGroupSend.select().where(where).order_by(WecomGroupSend.id):
        tasks.setdefault((row.msgid, row.owner), []).append(row)
    for (msgid, owner), rows in tasks.items():
        report.asked += 1
        if not _owner_sent(fetch, msgid, owner):
            report.waiting += len(rows)
            continue
        results = _chat_results(fetch, msgid, owner)
        now = clock.now()
        for row in rows:
            status, sent_at = results.get(row.chat_id, (None, None))
            if status == CHAT_SENT:
                update = {"status": "sent", "reason": "", "sent_at": sent_at or now}
                report.sent += 1
            else:
                update = {"status": "failed", "reason": CHAT_FAILURES.get(status or 0, NOT_CHOSEN)}
                if status != ALREADY_RECEIVED:  # the group received nothing today from this run
                    update["daily_key"] = None
                report.failed += 1
            WecomGroupSend.update(**update, updated_at=now).where(
                (WecomGroupSend.id == row.id) & (WecomGroupSend.status == "waiting")).execute()
    return report


def settle_in_doubt(channel: str, fetch: Fetch, now: datetime | None = None) -> tuple[int, int]:
    """An owner's send a crash left in doubt (the call may or may not have reached WeCom) is
    looked up instead of being left to the operator: `get_groupmsg_list_v2` since the attempt,
    a message with the same text that kefu does not know yet, whose `get_groupmsg_task` names
    this owner, is that send (its chats now wait for the owner). None found once the attempt
    is `SETTLE_AFTER` old: WeCom never got it, and it goes to the senders again. Returns
    (settled as sent, sent again)."""
    now = now or clock.now()
    settled = resent = 0
    keys = {k for (k,) in WecomGroupSend.select(WecomGroupSend.outbox_key).where(
        (WecomGroupSend.channel == channel) & (WecomGroupSend.status == "in_doubt")).distinct().tuples() if k}
    for row in Outbox.select().where(Outbox.key.in_(list(keys)) & (Outbox.status == outbox.IN_DOUBT)):
        since = (row.attempted_at or row.created_at) - timedelta(minutes=1)
        if now - since > LIST_SPAN:
            continue  # beyond what the platform lists: the operator decides
        content = dict(row.content or {})
        msgid = _find_task(fetch, row.recipient, str(content.get("text") or ""), since, now)
        job_key = WecomGroupSend.get(WecomGroupSend.outbox_key == row.key).job_key
        if msgid:
            Outbox.update(status="sent", sent_at=now, content={**content, "msg_id": msgid},
                          last_error="settled: WeCom has the owner's task (get_groupmsg_list_v2)").where(
                (Outbox.id == row.id) & (Outbox.status == outbox.IN_DOUBT)).execute()
            settled += 1
        elif now - since >= SETTLE_AFTER:
            if outbox.resend_in_doubt([row.key]):
                Outbox.update(last_error="sent again: WeCom has no task from the attempt (get_groupmsg_list_v2)").where(
                    Outbox.id == row.id).execute()
                resent += 1
        sync_outcomes(job_key)
    return settled, resent


def _find_task(fetch: Fetch, owner: str, text: str, since: datetime, until: datetime) -> str:
    """The msgid of a group message created in [since, until] with this text, unknown to
    kefu, whose task is this owner's; "" when there is none."""
    known = {m for (m,) in WecomGroupSend.select(WecomGroupSend.msgid).where(WecomGroupSend.msgid != "").tuples()}
    cursor = ""
    while True:
        page = wecom_contacts.checked_answer(fetch, LIST_V2, {
            "chat_type": "group", "start_time": int(since.timestamp()), "end_time": int(until.timestamp()),
            "filter_type": 0, "limit": 100, "cursor": cursor})
        for message in page.get("group_msg_list") or ():
            msgid = str(message.get("msgid") or "")
            if msgid and msgid not in known and str((message.get("text") or {}).get("content") or "") == text \
                    and _has_task(fetch, msgid, owner):
                return msgid
        cursor = str(page.get("next_cursor") or "")
        if not cursor:
            return ""


def _has_task(fetch: Fetch, msgid: str, owner: str) -> bool:
    return _owner_status(fetch, msgid, owner) is not None


def _owner_sent(fetch: Fetch, msgid: str, owner: str) -> bool:
    return _owner_status(fetch, msgid, owner) == OWNER_SENT


def _owner_status(fetch: Fetch, msgid: str, owner: str) -> int | None:
    """The owner's task status in the message (get_groupmsg_task), None without one."""
    cursor = ""
    while True:
        page = wecom_contacts.checked_answer(fetch, TASK, {"msgid": msgid, "limit": PAGE, "cursor": cursor})
        for task in page.get("task_list") or ():
            if str(task.get("userid") or "") == owner:
                return int(task.get("status") or 0)
        cursor = str(page.get("next_cursor") or "")
        if not cursor:
            return None


def _chat_results(fetch: Fetch, msgid: str, owner: str) -> dict[str, tuple[int, datetime | None]]:
    results: dict[str, tuple[int, datetime | None]] = {}
    cursor = ""
    while True:
        page = wecom_contacts.checked_answer(fetch, SEND_RESULT, {"msgid": msgid, "userid": owner, "limit": PAGE,
                                                                  "cursor": cursor})
        for item in page.get("send_list") or ():
            chat_id, stamp = str(item.get("chat_id") or ""), item.get("send_time")
            at = datetime.fromtimestamp(int(stamp), timezone.utc) if str(stamp or "").isdigit() else None
            results[chat_id] = (int(item.get("status") or 0), at)
        cursor = str(page.get("next_cursor") or "")
        if not cursor:
            return results

