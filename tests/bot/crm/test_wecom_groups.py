"""WeCom customer groups end to end through the stand-in: a sync mirrors every chat (cursor
paging included) into kefu's groups with external members matched to their customers through
WecomContact; change_external_chat events (create, add_member, del_member, dismiss), a retried
one applied once; a refused call keeps what was synced; `kefu wecom sync` syncs groups too."""

from __future__ import annotations

import asyncio

import pytest

from adapters.sandbox import wecom_contacts as stand_contacts
from adapters.sandbox import wecom_groups as stand_groups
from adapters.wecom import blocking_fetch
from bot.crm import wecom_contacts, wecom_groups
from bot.core.models import Customer, CustomerGroup, GroupMember, Message, WecomContact, WecomGroupChat
from tests.adapters.wechat_kit import post, stand, wecom_channel, wecom_server
from tests.bot.crm.test_wecom_contacts import client, wecom_sync_command  # kefu with the wecom channel on the stand-in

__all__ = ["client", "stand"]


def chat(chat_id: str) -> WecomGroupChat:
    return WecomGroupChat.get((WecomGroupChat.channel == "corp") & (WecomGroupChat.chat_id == chat_id))


def member_ids(chat_id: str) -> set[str]:
    """The external_userids of the kefu group's members."""
    customers = [m.customer_id for m in GroupMember.select().where(GroupMember.group == chat(chat_id).group_id)]
    return {c.external_userid for c in WecomContact.select().where(WecomContact.customer.in_(customers))}


async def sync(stand) -> wecom_groups.GroupSyncReport:
    return await asyncio.to_thread(wecom_groups.sync, "corp", blocking_fetch(wecom_channel(stand.base)))


async def test_sync_mirrors_chats_into_groups_with_members_matched_to_customers(stand, database) -> None:
    known = Customer.create(channel="mp", external_id="o-1", unionid="u-1")
    stand_contacts.seed_contact(stand.sandbox, "wm-a", "张三", ["alice"], unionid="u-1")
    await asyncio.to_thread(wecom_contacts.sync, "corp", blocking_fetch(wecom_channel(stand.base)))
    CustomerGroup.create(name="直播群")  # a hand-made group with the chat's name stays as it is
    stand_groups.seed_chat(stand.sandbox, "wr-live", "直播群", "alice", ["wm-a", "wm-b"])
    for n in range(1001):  # more than one page of groupchat/list
        stand_groups.seed_chat(stand.sandbox, f"wr-{n:04}", f"群{n}", "bob", [])
    report = await sync(stand)
    assert (report.groups, report.created, report.members) == (1002, 1002, 2)
    lists = [c for c in stand.sandbox.calls if c.path.endswith("groupchat/list")]
    assert [c.body["cursor"] for c in lists] == ["", "1000"]
    live = chat("wr-live")
    assert live.owner == "alice" and live.members["alice"]["type"] == 1 and live.group.name == "直播群 · wr-live"
    assert member_ids("wr-live") == {"wm-a", "wm-b"}
    assert GroupMember.get(GroupMember.customer == known.id).group_id == live.group_id  # matched via unionid
    stand_groups.members_changed(stand.sandbox, "wr-live", "del_member", ["wm-b"])
    again = await sync(stand)
    assert again.created == 0 and member_ids("wr-live") == {"wm-a"}
    assert CustomerGroup.select().count() == 1003 and Customer.get_or_none(Customer.external_id == "wm-b")


async def test_a_refused_call_is_an_error_and_keeps_what_was_synced(stand, database) -> None:
    stand_groups.seed_chat(stand.sandbox, "wr-1", "会员群", "alice", ["wm-a"])
    await sync(stand)
    stand.sandbox.inject(40058, "groupchat/get")
    with pytest.raises(wecom_contacts.SyncError, match="40058"):
        await sync(stand)
    assert member_ids("wr-1") == {"wm-a"} and chat("wr-1").status == "active"


async def send_change(client, server, fields: dict, at: int) -> tuple[int, str]:
    return await post(client, server, "/wecom/corp", server.event_xml("sys", "change_external_chat",
                                                                      create_time=at, extra=fields))


async def test_chat_change_events_keep_the_group_in_step_and_a_retry_applies_once(client, stand) -> None:
    server = wecom_server()
    stand_groups.seed_chat(stand.sandbox, "wr-9", "新品群", "alice", [])
    for _ in range(2):  # WeCom retries the same event
        assert (await send_change(client, server, stand_groups.change_fields("create", "wr-9"), 3000))[0] == 200
    assert WecomGroupChat.select().count() == 1 and chat("wr-9").synced_at is None
    add = stand_groups.members_changed(stand.sandbox, "wr-9", "add_member", ["wm-x", "wm-y", "carol"])
    for _ in range(3):
        assert (await send_change(client, server, add, 3001))[0] == 200
    assert Message.select().where(Message.external_id.startswith("xg:update:add_member:wr-9")).count() == 1
    assert member_ids("wr-9") == {"wm-x", "wm-y"} and chat("wr-9").members["carol"]["type"] == 1
    await send_change(client, server, stand_groups.members_changed(stand.sandbox, "wr-9", "del_member", ["wm-x"]),
                      3001)  # the same second as the add: another event (its own member version)
    assert member_ids("wr-9") == {"wm-y"} and "wm-x" not in chat("wr-9").members
    await send_change(client, server, stand_groups.change_fields("dismiss", "wr-9"), 3002)
    assert chat("wr-9").status == "dismissed" and chat("wr-9").dismissed_at is not None
    assert member_ids("wr-9") == {"wm-y"}  # nothing stored is lost
    assert Message.select().where(Message.direction == "out").count() == 0  # nobody was answered


async def test_kefu_wecom_sync_syncs_the_groups_too(stand, database, database_url, tmp_path) -> None:
    stand_groups.seed_chat(stand.sandbox, "wr-1", "会员群", "alice", ["wm-a"])
    invoke = wecom_sync_command(tmp_path, database_url, stand)
    done = await asyncio.to_thread(invoke)
    assert done.exit_code == 0, done.output
    assert "1 customer groups (1 new), 1 customer members" in done.output
    assert member_ids("wr-1") == {"wm-a"}
    stand.sandbox.inject(40058, "groupchat/list")
    refused = await asyncio.to_thread(invoke)
    assert refused.exit_code == 1 and "40058" in refused.output and "kept" in refused.output
