"""The unionid of 公众号 followers, and the WeCom contact of the same person merged by it.

Why: a shop's 公众号 and its WeCom are two doors for one customer. When the 公众号 is bound
to a WeChat open platform, the platform gives each follower a `unionid` that WeCom gives
the same person as an external contact; kefu then keeps one customer for both (bot/crm/
wecom_contacts.py links a new WeCom contact to the customer with its unionid). A follower
seen first, though, has no unionid until kefu asks (`cgi-bin/user/info/batchget`, 100 a
call; the scheduler asks for new followers every 30 s, `jobs/mp_unionid.py`), and the WeCom
contact may already have a customer of its own by then: `merge` moves that contact, its
group memberships and tags onto the follower, as a sync would have made them had the
unionid been known. The contact's own customer row stays (nothing is deleted).

A follower asked once keeps what the platform said: its unionid, or "" when there is none
(an account not bound to an open platform), so nobody is asked twice.
Transport-free: the HTTP call is injected (`Post`, as in bot/crm/channel_codes.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import peewee

from bot.core.db import insert_row, transaction
from bot.core.models import Customer, CustomerTag, GroupMember, WecomContact

BATCHGET = "/cgi-bin/user/info/batchget"
BATCH = 100  # openids per call, the platform's maximum
INVALID_OPENID = 40003
NONE = ""  # asked: the platform gave no unionid

Post = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]


class UnionidError(RuntimeError):
    """The platform refused the call (its errcode and message); what was learnt stays."""


@dataclass
class UnionidReport:
    asked: int = 0  # followers asked about
    learned: int = 0  # of them with a unionid
    merged: int = 0  # WeCom contacts moved onto a follower


def pending(channel: str) -> peewee.Select:
    """The channel's followers never asked about, the newest first (a new subscriber is
    asked at the next run, whatever the backlog)."""
    return (Customer.select(Customer.id, Customer.external_id)
            .where((Customer.channel == channel) & Customer.unionid.is_null() & Customer.erased_at.is_null())
            .order_by(Customer.id.desc()))


def learn(channel: str, post: Post, batches: int = 10) -> UnionidReport:
    """Ask the platform about up to `batches` × 100 followers without a unionid; store what
    it says and merge each WeCom contact of the same person (see the module's why)."""
    report = UnionidReport()
    for _ in range(batches):
        rows = [(c.id, c.external_id) for c in pending(channel).limit(BATCH)]
        if not rows:
            break
        _ask(post, rows, report)
    return report


def _ask(post: Post, rows: Sequence[tuple[int, str]], report: UnionidReport) -> None:
    """One batchget; an openid the platform does not know refuses the whole call, so the
    batch is halved until that one is found (and stored as asked, without a unionid)."""
    answer = post(BATCHGET, {"user_list": [{"openid": openid, "lang": "zh_CN"} for _, openid in rows]})
    errcode = int(answer.get("errcode") or 0)
    if errcode == INVALID_OPENID and len(rows) > 1:
        half = len(rows) // 2
        _ask(post, rows[:half], report)
        _ask(post, rows[half:], report)
        return
    if errcode and errcode != INVALID_OPENID:
        raise UnionidError(f"{BATCHGET}: {errcode} {answer.get('errmsg', '')}".strip())
    users = {str(u.get("openid") or ""): u for u in answer.get("user_info_list") or () if isinstance(u, dict)}
    for customer_id, openid in rows:
        unionid = str(users.get(openid, {}).get("unionid") or NONE)[:64]
        report.asked += 1
        Customer.update(unionid=unionid).where((Customer.id == customer_id) & Customer.unionid.is_null()).execute()
        if unionid:
            report.learned += 1
            report.merged += merge(customer_id, unionid)


def merge(customer_id: int, unionid: str) -> int:
    """Move every WeCom contact with this unionid that has a customer of its own (made by a
    sync before the unionid was known) onto `customer_id`, with its group memberships and
    tags; returns how many contacts moved. A contact already on another person's customer
    (found by unionid earlier) is left."""
    moved = 0
    for contact in list(WecomContact.select().where((WecomContact.unionid == unionid)
                                                    & (WecomContact.customer != customer_id))):
        own = Customer.get_or_none((Customer.id == contact.customer_id) & (Customer.channel == contact.channel)
                                   & (Customer.external_id == contact.external_userid))
        if own is None:
            continue
        with transaction():
            WecomContact.update(customer=customer_id).where(WecomContact.id == contact.id).execute()
            for link in list(GroupMember.select().where(GroupMember.customer == own.id)):
                insert_row(GroupMember(group=link.group_id, customer=customer_id, joined_at=link.joined_at),
                           ignore_conflict=True)
            GroupMember.delete().where(GroupMember.customer == own.id).execute()
            for tagged in list(CustomerTag.select().where(CustomerTag.customer == own.id)):
                insert_row(CustomerTag(tag=tagged.tag_id, customer=customer_id), ignore_conflict=True)
            Customer.update(unionid=unionid).where((Customer.id == own.id) & Customer.unionid.is_null()).execute()
        moved += 1
    return moved
