"""WeCom customer contact (企业微信客户联系): the shop's external contacts as kefu customers.

Why: a customer who adds an agent's WeCom is the same person who follows the 公众号; the CRM
should see one customer. A sync walks every employee with customer contact
(`externalcontact/get_follow_user_list`), their contacts (`externalcontact/list`) and the
details (`externalcontact/batch/get_by_user`, cursor-paged; `externalcontact/get` for a
contact the batch did not give), and keeps one `WecomContact` per (channel, external_userid)
pointing at a Customer: the one with the same unionid when the platform gives it (a 公众号
customer), else the contact's own customer on the wecom channel.

The `change_external_contact` callback events keep it in step between syncs; the dispatcher
applies them inside its transaction, whose inbound-message key (one per event, see
adapters/wecom.py) drops the platform's retries, and each change is idempotent by itself.
An add with a `State` naming a contact-way code applies that code like a 公众号 channel code
(bot/crm/channel_codes.py: tags, group, coupon, once per customer and code).

Transport-free: the HTTP calls are injected (`Fetch`); nothing is ever deleted (a contact
nobody follows any more gets `removed_at`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from bot.crm import conversations
from bot.core import clock
from bot.crm import channel_codes
from bot.crm.channel_codes import CodeError, CodeSpec
from bot.core.db import insert_row
from bot.core.events import Inbound, Reply
from bot.core.models import ChannelCode, Customer, WecomContact
from bot.sending.outgoing import Outgoing

# (API path, JSON body or None for a GET, query parameters) -> the platform's JSON answer
Fetch = Callable[[str, "Mapping[str, Any] | None", "Mapping[str, str] | None"], Mapping[str, Any]]

FOLLOW_USERS = "/cgi-bin/externalcontact/get_follow_user_list"
LIST = "/cgi-bin/externalcontact/list"
GET = "/cgi-bin/externalcontact/get"
BATCH = "/cgi-bin/externalcontact/batch/get_by_user"
ADD_CONTACT_WAY = "/cgi-bin/externalcontact/add_contact_way"
BATCH_USERS = 100  # userid_list: at most 100 employees per call
BATCH_LIMIT = 100  # contacts per page, the platform's maximum
STATE_MAX = 30  # add_contact_way's state: at most 30 characters
CHANGE_EVENT = "change_external_contact"
# ChangeType -> the follow status it leaves (None: the contact is added or edited)
CHANGES: Mapping[str, str | None] = {
    "add_external_contact": None, "edit_external_contact": None,
    "del_external_contact": "deleted_by_staff",  # the employee removed the customer
    "del_follow_user": "deleted_by_customer",  # the customer removed the employee
    "transfer_fail": "transfer_failed",  # a handover to another employee did not happen
}


class SyncError(RuntimeError):
    """The platform refused a call (its errcode and message); what was synced stays."""


@dataclass
class SyncReport:
    follow_users: int = 0
    contacts: int = 0
    created: int = 0  # customers new to kefu
    merged: int = 0  # contacts joined to an existing customer by unionid


def checked_answer(fetch: Fetch, path: str, body: Mapping[str, Any] | None = None,
                   params: Mapping[str, str] | None = None) -> Mapping[str, Any]:
    """One WeCom API answer, or SyncError naming the path and the platform's errcode: the
    contact and the group syncs share it."""
    answer = fetch(path, body, params)
    errcode = int(answer.get("errcode") or 0)
    if errcode:
        raise SyncError(f"{path}: {errcode} {answer.get('errmsg', '')}".strip())
    return answer


def sync(channel: str, fetch: Fetch) -> SyncReport:
    """Every external contact of every follow user into the CRM (see the module's why)."""
    report = SyncReport()
    users = [str(u) for u in checked_answer(fetch, FOLLOW_USERS).get("follow_user") or ()]
    report.follow_users = len(users)
    listed: dict[str, set[str]] = {}  # external_userid -> follow users that list them
    for user in users:
        for ext in checked_answer(fetch, LIST, params={"userid": user}).get("external_userid") or ():
            listed.setdefault(str(ext), set()).add(user)
    seen: set[str] = set()
    for start in range(0, len(users), BATCH_USERS):
        cursor = ""
        while True:
            page = checked_answer(fetch, BATCH, {"userid_list": users[start:start + BATCH_USERS], "cursor": cursor,
                                          "limit": BATCH_LIMIT})
            for item in page.get("external_contact_list") or ():
                contact, follow = item.get("external_contact") or {}, item.get("follow_info") or {}
                _count(report, upsert(channel, contact, [follow]))
                seen.add(str(contact.get("external_userid") or ""))
            cursor = str(page.get("next_cursor") or "")
            if not cursor:
                break
    for ext in sorted(set(listed) - seen):  # listed but not in a batch page: ask for it alone
        got = checked_answer(fetch, GET, params={"external_userid": ext})
        _count(report, upsert(channel, got.get("external_contact") or {}, got.get("follow_user") or ()))
        seen.add(ext)
    report.contacts = len(seen)
    return report


def _count(report: SyncReport, outcome: str) -> None:
    if outcome == "created":
        report.created += 1
    elif outcome == "merged":
        report.merged += 1


def upsert(channel: str, contact: Mapping[str, Any], follows: Iterable[Mapping[str, Any]]) -> str:
    """One contact and the follow users given: "created" (a new customer), "merged" (joined
    to an existing customer by unionid), "updated" or "skipped" (no external_userid)."""
    ext = str(contact.get("external_userid") or "")[:128]
    if not ext:
        return "skipped"
    unionid = str(contact.get("unionid") or "")[:64]
    name = str(contact.get("name") or "")[:128]
    now = clock.now()
    row = WecomContact.get_or_none((WecomContact.channel == channel) & (WecomContact.external_userid == ext))
    outcome = "updated"
    if row is None:
        customer, outcome = _customer_for(channel, ext, unionid, name)
        row = WecomContact(channel=channel, external_userid=ext, customer=customer.id, follow_users={})
        if insert_row(row, ignore_conflict=True) is None:  # a concurrent event won the insert
            row = WecomContact.get((WecomContact.channel == channel) & (WecomContact.external_userid == ext))
            outcome = "updated"
    users = dict(row.follow_users or {})
    for follow in follows:
        user = str(follow.get("userid") or "")
        if user:
            users[user] = {**users.get(user, {}), "status": "active", "state": str(follow.get("state") or ""),
                           "remark": str(follow.get("remark") or ""), "added_at": follow.get("createtime")}
    if unionid:
        Customer.update(unionid=unionid).where((Customer.id == row.customer_id) & Customer.unionid.is_null()).execute()
    WecomContact.update(unionid=unionid or row.unionid, name=name or row.name, follow_users=users, synced_at=now,
                        removed_at=None if _followed(users) else row.removed_at).where(
        WecomContact.id == row.id).execute()
    return outcome


def _customer_for(channel: str, ext: str, unionid: str, name: str) -> tuple[Customer, str]:
    if unionid:
        same = Customer.select().where(Customer.unionid == unionid).order_by(Customer.id).first()
        if same is not None:
            return same, "merged"
    existed = Customer.select().where((Customer.channel == channel) & (Customer.external_id == ext)).exists()
    customer = conversations.upsert_customer(channel, ext, name)
    return customer, "updated" if existed else "created"


def _followed(users: Mapping[str, Mapping[str, Any]]) -> bool:
    return any(u.get("status") == "active" for u in users.values())


# -- change_external_contact events ------------------------------------------------------------


def is_change(inbound: Inbound) -> bool:
    return inbound.kind == "event" and inbound.event == CHANGE_EVENT


def changed(inbound: Inbound) -> tuple[Customer | None, list[Outgoing]]:
    """Apply one change_external_contact event (its fields in `inbound.raw`): the customer it
    concerns (None for an unknown ChangeType or no ExternalUserID) and what to send."""
    raw = inbound.raw
    change, ext, user = (str(raw.get(k) or "") for k in ("ChangeType", "ExternalUserID", "UserID"))
    if change not in CHANGES or not ext:
        return None, []
    status = CHANGES[change]
    if status is None:
        upsert(inbound.channel, {"external_userid": ext}, [{"userid": user, "state": raw.get("State") or ""}]
               if user else ())
    row = WecomContact.get_or_none((WecomContact.channel == inbound.channel) & (WecomContact.external_userid == ext))
    if row is None:  # a deletion of someone kefu never saw: keep a record of the contact
        upsert(inbound.channel, {"external_userid": ext}, ())
        row = WecomContact.get((WecomContact.channel == inbound.channel) & (WecomContact.external_userid == ext))
    customer = Customer.get_by_id(row.customer_id)
    if status is not None and user:
        users = dict(row.follow_users or {})
        users[user] = {**users.get(user, {}), "status": status, "reason": str(raw.get("FailReason") or "")}
        WecomContact.update(follow_users=users, removed_at=None if _followed(users) else clock.now()).where(
            WecomContact.id == row.id).execute()
    if change != "add_external_contact" or not raw.get("State"):
        return customer, []
    return customer, _contact_way_applied(inbound, customer, str(raw["State"]), str(raw.get("WelcomeCode") or ""))


def _contact_way_applied(inbound: Inbound, customer: Customer, state: str, welcome_code: str) -> list[Outgoing]:
    """A contact-way code's tags, group and coupon, once per customer; its welcome goes out
    by `externalcontact/send_welcome_msg` with the event's WelcomeCode (the adapter's sender
    reads kind "wecom_welcome"), the only way to greet a new external contact."""
    code = ChannelCode.get_or_none((ChannelCode.scene == state[:64]) & (ChannelCode.channel == inbound.channel))
    if code is None or channel_codes.is_expired(code):
        return []
    applied, issued = channel_codes.apply_once(code, customer, True)
    if not applied or not welcome_code:
        return []
    text = channel_codes.welcome_text(code, issued)
    return [Outgoing(inbound.channel, welcome_code, Reply(text=text, kind="wecom_welcome"), "bot", None, customer)]


# -- contact-way codes -------------------------------------------------------------------------


def create_contact_way(spec: CodeSpec, users: Iterable[str], post: Callable[[str, Mapping[str, Any]],
                                                                           Mapping[str, Any]]) -> ChannelCode:
    """A 联系我 code for `users` whose `state` kefu knows again in add_external_contact.
    Stored only when the platform gave a config_id; CodeError otherwise (nothing stored)."""
    channel_codes.check(spec, clock.now())
    members = [u for u in (str(u).strip() for u in users) if u]
    if not members:
        raise CodeError("请填写接待成员 (at least one employee userid)")
    state = f"kc_{secrets.token_hex(8)}"[:STATE_MAX]
    body = {"type": 1 if len(members) == 1 else 2, "scene": 2, "state": state, "user": members,
            "remark": spec.name.strip()[:30], "skip_verify": True}
    answer = post(ADD_CONTACT_WAY, body)
    errcode = int(answer.get("errcode") or 0)
    if errcode or not answer.get("config_id"):
        raise CodeError(f"企业微信拒绝创建联系我：{errcode} {answer.get('errmsg', '')}".strip())
    return channel_codes.store(spec, state, str(answer["config_id"]), str(answer.get("qr_code") or ""), True)
