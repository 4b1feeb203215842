"""公众号 followers' unionid through the stand-in: a follower who subscribed is asked once
(user/info/batchget), and the WeCom contact of the same person, synced before anyone knew,
is merged onto the follower with its group memberships and tags; a follower the platform
gives no unionid (or does not know) is not asked again; a refused call changes nothing."""

from __future__ import annotations

import asyncio

import pytest

from adapters.sandbox import mp_users as stand_users
from adapters.sandbox import wecom_contacts as stand_contacts
from adapters.sandbox import wecom_groups as stand_groups
from adapters.wechat_mp import blocking_post
from adapters.wecom import blocking_fetch
from bot.crm import mp_unionid, wecom_contacts, wecom_groups
from bot.core.models import Customer, CustomerTag, GroupMember, Tag, WecomContact, WecomGroupChat
from jobs.mp_unionid import learn_all
from tests.adapters.wechat_kit import kefu_client, mp_channel, post, stand, wechat, wecom_channel

__all__ = ["stand"]


@pytest.fixture
async def client(aiohttp_client, config, database, stand):
    return await kefu_client(aiohttp_client, config, mp_channel(stand.base), wecom_channel(stand.base))


def follower(openid: str) -> Customer:
    return Customer.get((Customer.channel == "mp") & (Customer.external_id == openid))


async def test_a_new_follower_is_asked_once_and_merged_with_their_wecom_contact(client, stand) -> None:
    fetch = blocking_fetch(wecom_channel(stand.base))
    stand_contacts.seed_contact(stand.sandbox, "wm-a", "张三", ["alice"], unionid="u-1")
    stand_groups.seed_chat(stand.sandbox, "wr-1", "直播群", "alice", ["wm-a"])
    await asyncio.to_thread(wecom_contacts.sync, "corp", fetch)
    await asyncio.to_thread(wecom_groups.sync, "corp", fetch)
    own = WecomContact.get(WecomContact.external_userid == "wm-a").customer  # nobody knew the follower yet
    CustomerTag.create(customer=own, tag=Tag.create(name="直播粉"))

    for openid in ("o-1", "o-2", "o-ghost"):  # they follow the 公众号
        status, _ = await post(client, wechat(), "/wechat/mp", wechat().event_xml(openid, "subscribe"))
        assert status == 200
    stand_users.seed_user(stand.sandbox, "o-1", unionid="u-1")
    stand_users.seed_user(stand.sandbox, "o-2")  # an account not bound to an open platform: no unionid
    # o-ghost: an openid the platform does not know (refuses the whole batch: halved until found)

    assert await asyncio.to_thread(learn_all, [mp_channel(stand.base)]) == {"mp": 1}
    me = follower("o-1")
    assert (me.unionid, follower("o-2").unionid, follower("o-ghost").unionid) == ("u-1", "", "")
    assert WecomContact.get(WecomContact.external_userid == "wm-a").customer_id == me.id
    group = WecomGroupChat.get(WecomGroupChat.chat_id == "wr-1").group_id
    assert [m.customer_id for m in GroupMember.select().where(GroupMember.group == group)] == [me.id]
    assert CustomerTag.select().where(CustomerTag.customer == me.id).count() == 1
    assert Customer.get_by_id(own.id).unionid == "u-1"  # the contact's own row stays, nothing deleted

    asked = len([c for c in stand.sandbox.calls if c.path.endswith("batchget")])
    again = await asyncio.to_thread(mp_unionid.learn, "mp", blocking_post(mp_channel(stand.base)))
    assert (again.asked, len([c for c in stand.sandbox.calls if c.path.endswith("batchget")])) == (0, asked)
    await asyncio.to_thread(wecom_groups.sync, "corp", fetch)  # a later sync agrees with the merge
    assert [m.customer_id for m in GroupMember.select().where(GroupMember.group == group)] == [me.id]


async def test_a_refused_call_changes_nothing(client, stand) -> None:
    await post(client, wechat(), "/wechat/mp", wechat().event_xml("o-1", "subscribe"))
    stand_users.seed_user(stand.sandbox, "o-1", unionid="u-1")
    stand.sandbox.inject(45009, "user/info/batchget")
    with pytest.raises(mp_unionid.UnionidError, match="45009"):
        await asyncio.to_thread(mp_unionid.learn, "mp", blocking_post(mp_channel(stand.base)))
    assert follower("o-1").unionid is None
    assert (await asyncio.to_thread(mp_unionid.learn, "mp", blocking_post(mp_channel(stand.base)))).learned == 1


async def test_the_stand_in_plays_user_info_too(stand) -> None:
    import aiohttp

    stand_users.seed_user(stand.sandbox, "o-1", unionid="u-1")
    async with aiohttp.ClientSession() as http:
        token = (await (await http.get(f"{stand.base}/cgi-bin/token", params={
            "grant_type": "client_credential", "appid": "wx1", "secret": "s"})).json())["access_token"]
        info = await (await http.get(f"{stand.base}/cgi-bin/user/info", params={
            "access_token": token, "openid": "o-1", "lang": "zh_CN"})).json()
        unknown = await (await http.get(f"{stand.base}/cgi-bin/user/info", params={
            "access_token": token, "openid": "o-x"})).json()
    assert (info["unionid"], info["subscribe"], unknown["errcode"]) == ("u-1", 1, 40003)
