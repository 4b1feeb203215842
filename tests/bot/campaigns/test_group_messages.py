"""Group campaigns to WeCom customer groups end to end through the stand-in: from creation to
per-group results with one owner who never confirms; fail_list; the platform's once-a-day
rule kept by kefu (a second run the same day is refused per group, no call made) and by the
stand-in (a group that got another group message is failed, status 3); pause, cancel; a
send cut short stays in doubt and is not repeated."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from adapters.sandbox import wecom_groupmsg as stand_msg
from adapters.sandbox import wecom_groups as stand_groups
from adapters.wecom import blocking_fetch
from bot.campaigns import group_message_tracking as tracking
from bot.campaigns import group_messages, runs
from bot.core import clock
from bot.core.models import Campaign, CustomerGroup, Outbox, WecomGroupChat, WecomGroupSend
from bot.crm import wecom_groups
from bot.sending import outbox
from tests.adapters.wechat_kit import eventually, stand, wecom_channel
from tests.bot.crm.test_wecom_contacts import client

__all__ = ["client", "stand"]

KINDS = {"corp": "wecom"}
TEXT = "今晚8点直播间，全场满199减30"
LINK = {"title": "直播预告", "url": "https://shop.example/live", "desc": "点我预约"}


async def seed_and_sync(stand) -> None:
    stand_groups.seed_chat(stand.sandbox, "wr-a1", "直播群1", "alice", ["wm-1", "wm-2"])
    stand_groups.seed_chat(stand.sandbox, "wr-a2", "直播群2", "alice", ["wm-3"])
    stand_groups.seed_chat(stand.sandbox, "wr-b1", "会员群", "bob", ["wm-4"])
    stand_groups.seed_chat(stand.sandbox, "wr-c1", "新品群", "carol", ["wm-5"])
    await asyncio.to_thread(wecom_groups.sync, "corp", blocking_fetch(wecom_channel(stand.base)))


def group_campaign(name: str = "直播预告", target: str = "", **content) -> Campaign:
    return Campaign.create(name=name, target_kind=group_messages.TARGET, target_value=target, content_kind="text",
                           content={"text": TEXT, "link": LINK, **content})


def states(campaign: Campaign) -> dict[str, str]:
    key = Campaign.get_by_id(campaign.id).run_key
    return {r.chat_id: r.status for r in WecomGroupSend.select().where(WecomGroupSend.job_key == key)}


def template_calls(stand) -> list:
    return [c for c in stand.sandbox.calls if c.path.endswith("add_msg_template") and c.errcode == 0]


async def run_until_with_platform(campaign: Campaign) -> str:
    """Start the run and drive it until every chat is with the platform (the server's
    sender delivers the owners' outbox rows meanwhile)."""
    runs.schedule(campaign)
    assert runs.start_run(campaign.id)
    outcome = await asyncio.to_thread(runs.drive, campaign.id, KINDS)
    assert outcome in ("sending", "done")
    assert await eventually(lambda: runs.drive(campaign.id, KINDS) == "done")
    return Campaign.get_by_id(campaign.id).run_key


async def track(stand, job_key: str | None = None) -> tracking.TrackReport:
    return await asyncio.to_thread(tracking.track, "corp", blocking_fetch(wecom_channel(stand.base)), job_key)


async def test_a_group_campaign_from_creation_to_per_group_results_with_an_owner_who_never_confirms(
        client, stand) -> None:
    await seed_and_sync(stand)
    campaign = group_campaign()
    assert runs.problems(campaign) == [] and runs.audience_size(campaign) == 5
    key = await run_until_with_platform(campaign)
    assert Campaign.get_by_id(campaign.id).status == "done"  # with the platform: the owners' part is theirs
    calls = template_calls(stand)
    assert sorted((c.body["sender"], tuple(c.body["chat_id_list"])) for c in calls) == [
        ("alice", ("wr-a1", "wr-a2")), ("bob", ("wr-b1",)), ("carol", ("wr-c1",))]
    assert all(c.body["chat_type"] == "group" and c.body["text"] == {"content": TEXT}
               and c.body["attachments"] == [{"msgtype": "link", "link": LINK}] for c in calls)
    assert set(states(campaign).values()) == {"waiting"}
    assert runs.progress(Campaign.get_by_id(campaign.id))["waiting"] == 4

    for owner in ("alice", "bob"):  # carol never sends hers
        stand_msg.confirm(stand.sandbox, stand_msg.messages_from(stand.sandbox, owner)[0])
    report = await track(stand)
    assert (report.asked, report.sent, report.failed, report.waiting) == (3, 3, 0, 1)
    assert states(campaign) == {"wr-a1": "sent", "wr-a2": "sent", "wr-b1": "sent", "wr-c1": "waiting"}
    progress = runs.progress(Campaign.get_by_id(campaign.id))
    assert (progress["sent"], progress["waiting"], progress["failed"], progress["total"]) == (3, 1, 0, 4)

    # nothing is asked twice: driving and tracking again change nothing and call nothing new
    assert runs.drive(campaign.id, KINDS) == "not running"
    assert len(template_calls(stand)) == 3
    assert (await track(stand)).sent == 0 and states(campaign)["wr-c1"] == "waiting"
    assert Outbox.select().where(Outbox.key.startswith(f"groupmsg:{key}:")).count() == 3


async def test_an_owner_who_sends_to_only_some_groups_and_the_platforms_fail_list(client, stand) -> None:
    await seed_and_sync(stand)
    stand_groups.state(stand.sandbox)["chats"]["wr-a2"]["owner"] = "dave"  # handed over in WeCom since the sync
    campaign = group_campaign(target="")
    await run_until_with_platform(campaign)
    assert states(campaign)["wr-a2"] == "failed"
    assert WecomGroupSend.get(WecomGroupSend.chat_id == "wr-a2").reason == group_messages.FAIL_LIST
    msgid = stand_msg.messages_from(stand.sandbox, "bob")[0]
    message = stand_msg.state(stand.sandbox)["messages"][msgid]
    message["chats"] = []  # bob sends the task but leaves his group out
    stand_msg.confirm(stand.sandbox, msgid)
    await track(stand)
    row = WecomGroupSend.get(WecomGroupSend.chat_id == "wr-b1")
    assert row.status == "failed" and row.reason == tracking.NOT_CHOSEN


async def test_one_group_message_per_group_per_day(client, stand, ) -> None:
    await seed_and_sync(stand)
    first = group_campaign("早场", target=str(WecomGroupChat.get(WecomGroupChat.chat_id == "wr-a1").group_id))
    await run_until_with_platform(first)
    stand_msg.confirm(stand.sandbox, stand_msg.messages_from(stand.sandbox, "alice")[0])
    await track(stand)
    assert states(first) == {"wr-a1": "sent"}

    second = group_campaign("晚场")  # every group, the same shop day
    assert group_messages.limited_today(second) == ["直播群1"]
    await run_until_with_platform(second)
    assert states(second) == {"wr-a1": "skipped", "wr-a2": "waiting", "wr-b1": "waiting", "wr-c1": "waiting"}
    assert WecomGroupSend.get((WecomGroupSend.job_key == Campaign.get_by_id(second.id).run_key)
                              & (WecomGroupSend.chat_id == "wr-a1")).reason == group_messages.LIMIT_REASON
    assert ["wr-a1"] not in [c.body["chat_id_list"] for c in template_calls(stand)[1:]]
    assert all("wr-a1" not in c.body["chat_id_list"] for c in template_calls(stand)[1:])

    # the stand-in keeps the platform's rule too: a group that got another group message
    # today (sent from WeCom itself, not through kefu) fails at the owner's send, status 3
    other = stand_msg._add(stand.sandbox, {"chat_type": "group", "sender": "bob", "chat_id_list": ["wr-b1"],
                                           "text": {"content": "店长自己发的"}}, {})
    stand_msg.confirm(stand.sandbox, other["msgid"])
    stand_msg.confirm(stand.sandbox, stand_msg.messages_from(stand.sandbox, "bob")[0])
    await track(stand)
    row = WecomGroupSend.get((WecomGroupSend.job_key == Campaign.get_by_id(second.id).run_key)
                             & (WecomGroupSend.chat_id == "wr-b1"))
    assert row.status == "failed" and row.reason == tracking.CHAT_FAILURES[3]

    # a campaign whose every group already had today's message is refused before sending, and
    # accepted for tomorrow; the next shop day the group may have one again
    only = group_campaign("只发直播群1", target=str(WecomGroupChat.get(WecomGroupChat.chat_id == "wr-a1").group_id))
    assert group_messages.ALL_LIMITED in runs.problems(only)
    with pytest.raises(runs.CampaignError, match="今天都已有一条群发"):
        runs.schedule(only)
    only.run_at = clock.now() + timedelta(days=1)
    assert runs.problems(only) == []
    fake = clock.FakeClock(clock.now() + timedelta(days=1))
    previous = clock.set_clock(fake)
    try:
        only.run_at = None  # now, the next day
        assert group_messages.limited_today(group_campaign("次日")) == [] and runs.problems(only) == []
    finally:
        clock.set_clock(previous)


async def test_content_a_group_message_cannot_carry_is_refused_before_sending(stand, database) -> None:
    stand_groups.seed_chat(stand.sandbox, "wr-a1", "直播群1", "alice", ["wm-1"])
    await asyncio.to_thread(wecom_groups.sync, "corp", blocking_fetch(wecom_channel(stand.base)))
    personal = group_campaign(text="{nickname}，您好", link={})
    assert any("{nickname}" in p for p in runs.problems(personal))
    assert any("不能用" in p for p in runs.problems(personal))
    empty = group_campaign(text="", link={})
    assert any("没有可发送的内容" in p for p in runs.problems(empty))
    CustomerGroup.create(name="手工群")
    handmade = group_campaign(target="手工群")
    assert any("不是企业微信客户群" in p for p in runs.problems(handmade))


async def one_chat_run_started(stand) -> Campaign:
    """A run started to one synced chat, with no sender running."""
    stand_groups.seed_chat(stand.sandbox, "wr-a1", "直播群1", "alice", ["wm-1"])
    await asyncio.to_thread(wecom_groups.sync, "corp", blocking_fetch(wecom_channel(stand.base)))
    campaign = group_campaign()
    runs.schedule(campaign)
    assert runs.start_run(campaign.id)
    return campaign


async def test_a_cancelled_run_sends_nothing_it_had_not_sent(stand, database) -> None:
    campaign = await one_chat_run_started(stand)
    assert runs.drive(campaign.id, KINDS) == "sending"  # no sender runs here: the row waits in the outbox
    runs.cancel(campaign.id)
    assert states(campaign) == {"wr-a1": "skipped"}
    assert Outbox.get(Outbox.key.startswith("groupmsg:")).status == "cancelled"
    assert WecomGroupSend.get().daily_key is None  # it never reached the platform: the day is free again


async def test_a_send_cut_short_is_in_doubt_and_never_repeated(stand, database) -> None:
    campaign = await one_chat_run_started(stand)
    runs.drive(campaign.id, KINDS)
    rows = outbox.claim(lease_seconds=0.0)  # a sender claims the owner's row, records its attempt, dies
    assert outbox.mark_attempts(rows, lease_seconds=0.0)
    await asyncio.sleep(0.01)
    outbox.claim()  # the next claim settles the lapsed one: a campaign send is in doubt
    assert Outbox.get().status == "in_doubt"
    assert runs.drive(campaign.id, KINDS) == "done"
    assert states(campaign) == {"wr-a1": "in_doubt"}
    assert template_calls(stand) == []

    # kefu looks it up instead of guessing: WeCom has no task from the attempt, so once the
    # attempt is old enough it goes to the senders again (never before: it may still appear)
    fetch = blocking_fetch(wecom_channel(stand.base))
    assert await asyncio.to_thread(tracking.settle_in_doubt, "corp", fetch) == (0, 0)
    later = clock.now() + tracking.SETTLE_AFTER + timedelta(minutes=2)
    assert await asyncio.to_thread(tracking.settle_in_doubt, "corp", fetch, later) == (0, 1)
    assert Outbox.get().status == "pending" and states(campaign) == {"wr-a1": "handed"}


async def test_a_send_in_doubt_that_reached_wecom_is_found_and_not_sent_again(stand, database) -> None:
    campaign = await one_chat_run_started(stand)
    runs.drive(campaign.id, KINDS)
    rows = outbox.claim(lease_seconds=0.0)
    assert outbox.mark_attempts(rows, lease_seconds=0.0)
    # the call reached WeCom (another message of the same owner, same day, was there before)
    earlier = stand_msg._add(stand.sandbox, {"chat_type": "group", "sender": "alice", "chat_id_list": ["wr-a1"],
                                             "text": {"content": "别的活动"}}, {})
    reached = stand_msg._add(stand.sandbox, {"chat_type": "group", "sender": "alice", "chat_id_list": ["wr-a1"],
                                             "text": {"content": TEXT}}, {})
    await asyncio.sleep(0.01)
    outbox.claim()  # the sender died before storing the answer: in doubt
    runs.drive(campaign.id, KINDS)
    report = await track(stand)
    assert states(campaign) == {"wr-a1": "waiting"} and report.waiting == 1
    row = WecomGroupSend.get()
    assert row.msgid == reached["msgid"] != earlier["msgid"]
    assert Outbox.get().status == "sent" and template_calls(stand) == [] and len(stand_msg.state(stand.sandbox)["messages"]) == 2


async def test_the_scheduler_job_and_kefu_wecom_groupmsg_read_the_owners_sends(client, stand, database_url,
                                                                               tmp_path) -> None:
    from click.testing import CliRunner

    from bot.cli import main
    from jobs.group_messages import track_all
    from tests.adapters.wechat_kit import AES_KEY, CORP_ID, MP_TOKEN
    from tests.bot.ops.conftest import write_config

    await seed_and_sync(stand)
    await run_until_with_platform(group_campaign())
    stand_msg.confirm(stand.sandbox, stand_msg.messages_from(stand.sandbox, "alice")[0])
    assert await asyncio.to_thread(track_all, [wecom_channel(stand.base)]) == {"corp": 2}
    stand_msg.confirm(stand.sandbox, stand_msg.messages_from(stand.sandbox, "bob")[0])
    corp = {"name": "corp", "kind": "wecom", "token": MP_TOKEN, "corp_id": CORP_ID, "agent_id": "1000002",
            "app_secret": "corp-secret", "encoding_aes_key": AES_KEY, "api_base": stand.base}
    config = write_config(tmp_path, database_url, "[[channels]]\n" + "".join(f'{k} = "{v}"\n' for k, v in corp.items()))
    done = await asyncio.to_thread(CliRunner().invoke, main, ["wecom", "groupmsg", "--config", str(config)])
    assert done.exit_code == 0, done.output
    assert "2 owners' tasks, 1 groups sent, 0 failed, 1 still waiting for their owner" in done.output
    stand.sandbox.inject(40058, "get_groupmsg_task")
    refused = await asyncio.to_thread(CliRunner().invoke, main, ["wecom", "groupmsg", "--config", str(config)])
    assert refused.exit_code == 1 and "40058" in refused.output


async def test_the_stand_ins_own_routes_seed_a_chat_list_tasks_and_confirm(stand) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http:
        seeded = await http.post(f"{stand.base}/sandbox/wecom/chats",
                                 json={"chat_id": "wr-1", "name": "直播群", "owner": "alice", "externals": ["wm-1"]})
        assert seeded.status == 200
        assert (await http.post(f"{stand.base}/sandbox/wecom/chats", json={"name": "x"})).status == 400
        task = stand_msg._add(stand.sandbox, {"chat_type": "group", "sender": "alice", "text": {"content": "hi"}}, {})
        assert task["fail_list"] == []  # no chat_id_list: every chat the sender owns
        listed = await (await http.get(f"{stand.base}/sandbox/groupmsg")).json()
        assert [(m["msgid"], m["chats"], m["task"]["status"]) for m in listed] == [(task["msgid"], ["wr-1"], 0)]
        done = await http.post(f"{stand.base}/sandbox/groupmsg/confirm", json={"msgid": task["msgid"]})
        assert await done.json() == {"wr-1": 1}
        assert (await http.post(f"{stand.base}/sandbox/groupmsg/confirm", json={"msgid": "nope"})).status == 404
