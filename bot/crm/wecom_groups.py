"""WeCom customer groups (企业微信客户群) as kefu's customer groups.

Why: the shop's daily deals go to its WeCom customer groups, so kefu's groups (what campaigns
and the admin target) should be those groups, not lists typed by hand. A sync walks every
chat (`externalcontact/groupchat/list`, cursor-paged) and reads each one
(`externalcontact/groupchat/get`): one `WecomGroupChat` per (channel, chat_id) linked to a
CustomerGroup whose GroupMember rows are the chat's external members, each matched to its
customer through WecomContact (an external member kefu never saw becomes a contact of its
own, like a sync of contacts would make it). Employees (type 1) are kept in `members` only.

The `change_external_chat` callback events keep it in step between syncs: create, update
(add_member / del_member with the members in MemChangeList; other details mark the chat for
the next sync, the event does not carry them) and dismiss. The dispatcher applies them in
its transaction, whose inbound-message key (adapters/wecom.py) drops the platform's retries;
each change is idempotent by itself. Nothing is deleted: a dismissed chat keeps its group.

Transport-free: the HTTP calls are injected (`Fetch`, as in bot/crm/wecom_contacts.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from bot.core import clock
from bot.crm import wecom_contacts
from bot.crm.wecom_contacts import Fetch
from bot.core.db import insert_row
from bot.core.events import Inbound
from bot.core.models import CustomerGroup, GroupMember, WecomContact, WecomGroupChat

LIST = "/cgi-bin/externalcontact/groupchat/list"
GET = "/cgi-bin/externalcontact/groupchat/get"
LIST_LIMIT = 1000  # chats per page, the platform's maximum
CHANGE_EVENT = "change_external_chat"
EXTERNAL = 2  # member type: an external contact (1 is an employee of the shop)
# an external_userid starts with one of these (an employee's userid does not): how an event's
# MemChangeList, which gives bare ids, tells customers from staff
EXTERNAL_PREFIXES = ("wm", "wo")
GROUP_NAME_MAX = 64  # CustomerGroup.name


@dataclass
class GroupSyncReport:
    groups: int = 0
    created: int = 0  # chats new to kefu
    members: int = 0  # external members over all chats


def sync(channel: str, fetch: Fetch) -> GroupSyncReport:
    """Every customer group of the shop into kefu's groups (see the module's why). A refused
    call raises wecom_contacts.SyncError; the chats read before it stay applied."""
    report = GroupSyncReport()
    chat_ids: list[str] = []
    cursor = ""
    while True:
        page = wecom_contacts.checked_answer(fetch, LIST, {"status_filter": 0, "cursor": cursor, "limit": LIST_LIMIT})
        chat_ids += [str(c.get("chat_id") or "") for c in page.get("group_chat_list") or () if c.get("chat_id")]
        cursor = str(page.get("next_cursor") or "")
        if not cursor:
            break
    for chat_id in chat_ids:
        chat = wecom_contacts.checked_answer(fetch, GET, {"chat_id": chat_id, "need_name": 1}).get("group_chat") or {}
        created, externals = apply_chat(channel, chat)
        report.groups += 1
        report.created += created
        report.members += externals
    return report


def apply_chat(channel: str, chat: Mapping[str, Any]) -> tuple[bool, int]:
    """One `groupchat/get` answer's group_chat: (whether the chat was new, its external members)."""
    chat_id = str(chat.get("chat_id") or "")[:64]
    if not chat_id:
        return False, 0
    link, created = _link(channel, chat_id, str(chat.get("name") or ""))
    members: dict[str, dict[str, Any]] = {}
    for member in chat.get("member_list") or ():
        userid = str(member.get("userid") or "")[:128]
        if userid:
            members[userid] = {"type": int(member.get("type") or 0), "join_time": member.get("join_time"),
                               "name": str(member.get("name") or "")[:128], "unionid": str(member.get("unionid") or "")}
    externals = [u for u, m in members.items() if m["type"] == EXTERNAL]
    wanted = {_customer_id(channel, u, members[u]["name"], members[u]["unionid"]) for u in externals}
    _add_members(link.group_id, wanted)
    GroupMember.delete().where((GroupMember.group == link.group_id) & GroupMember.customer.not_in(wanted)).execute()
    name = str(chat.get("name") or "")[:128]
    WecomGroupChat.update(name=name, owner=str(chat.get("owner") or "")[:64], members=members, status="active",
                          synced_at=clock.now(), dismissed_at=None).where(WecomGroupChat.id == link.id).execute()
    _rename(link.group_id, name, chat_id)
    return created, len(externals)


def _link(channel: str, chat_id: str, name: str) -> tuple[WecomGroupChat, bool]:
    """The chat's link and kefu group, created on first sight (a concurrent event may win)."""
    where = (WecomGroupChat.channel == channel) & (WecomGroupChat.chat_id == chat_id)
    link = WecomGroupChat.get_or_none(where)
    if link is not None:
        return link, False
    group = CustomerGroup.create(name=_free_name(name, chat_id), kind="普通群",
                                 description=f"企业微信客户群 {chat_id}")
    row = WecomGroupChat(channel=channel, chat_id=chat_id, group=group.id, name=name[:128], members={})
    if insert_row(row, ignore_conflict=True) is None:
        group.delete_instance()
        return WecomGroupChat.get(where), False
    return row, True


def _free_name(name: str, chat_id: str, group_id: int | None = None) -> str:
    """The chat's name as a kefu group name, with the chat's id when another group has it."""
    base = name.strip() or "企微客户群"
    taken = CustomerGroup.select().where(CustomerGroup.name == base[:GROUP_NAME_MAX])
    if group_id is not None:
        taken = taken.where(CustomerGroup.id != group_id)
    if not taken.exists():
        return base[:GROUP_NAME_MAX]
    suffix = f" · {chat_id[-12:]}"
    return base[:GROUP_NAME_MAX - len(suffix)] + suffix


def _rename(group_id: int, name: str, chat_id: str) -> None:
    if name.strip():
        CustomerGroup.update(name=_free_name(name, chat_id, group_id)).where(CustomerGroup.id == group_id).execute()


def _customer_id(channel: str, external_userid: str, name: str = "", unionid: str = "") -> int:
    """The customer of an external member: its WecomContact's, made now if kefu never saw it."""
    where = (WecomContact.channel == channel) & (WecomContact.external_userid == external_userid)
    row = WecomContact.get_or_none(where)
    if row is None:
        wecom_contacts.upsert(channel, {"external_userid": external_userid, "name": name, "unionid": unionid}, ())
        row = WecomContact.get(where)
    return int(row.customer_id)


def _add_members(group_id: int, customer_ids: Iterable[int]) -> None:
    for customer_id in customer_ids:
        insert_row(GroupMember(group=group_id, customer=customer_id), ignore_conflict=True)


# -- change_external_chat events ------------------------------------------------------------------


def is_change(inbound: Inbound) -> bool:
    return inbound.kind == "event" and inbound.event == CHANGE_EVENT


def changed(inbound: Inbound) -> WecomGroupChat | None:
    """Apply one change_external_chat event (fields in `inbound.raw`; MemChangeList as ids
    joined by commas, see adapters/wecom.py): the chat's link, None without a ChatId or for
    an unknown ChangeType."""
    raw = inbound.raw
    chat_id = str(raw.get("ChatId") or "")[:64]
    change, detail = str(raw.get("ChangeType") or ""), str(raw.get("UpdateDetail") or "")
    if not chat_id or change not in ("create", "update", "dismiss"):
        return None
    link, _ = _link(inbound.channel, chat_id, "")
    if change == "dismiss":
        WecomGroupChat.update(status="dismissed", dismissed_at=clock.now()).where(
            WecomGroupChat.id == link.id).execute()
        return link
    ids = [i for i in (s.strip()[:128] for s in str(raw.get("MemChangeList") or "").split(",")) if i]
    members = dict(link.members or {})
    if change == "update" and detail == "add_member":
        for userid in ids:
            external = userid.startswith(EXTERNAL_PREFIXES)
            members[userid] = {**members.get(userid, {}), "type": EXTERNAL if external else 1,
                               "join_time": raw.get("CreateTime")}
        _add_members(link.group_id, [_customer_id(inbound.channel, u) for u in ids if u.startswith(EXTERNAL_PREFIXES)])
    elif change == "update" and detail == "del_member":
        for userid in ids:
            members.pop(userid, None)
        known = [int(r.customer_id) for r in WecomContact.select(WecomContact.customer).where(
            (WecomContact.channel == inbound.channel) & WecomContact.external_userid.in_(ids))]
        if known:
            GroupMember.delete().where((GroupMember.group == link.group_id) & GroupMember.customer.in_(known)).execute()
    else:  # create, or a change of name, owner, notice…: only groupchat/get tells what it is now
        WecomGroupChat.update(synced_at=None).where(WecomGroupChat.id == link.id).execute()
        return link
    WecomGroupChat.update(members=members).where(WecomGroupChat.id == link.id).execute()
    return link
