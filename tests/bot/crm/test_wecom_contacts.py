"""WeCom customer contact end to end through the stand-in: a sync creates customers and
merges one with a 公众号 customer by unionid (cursor paging included); each
change_external_contact event, a retried one applied once; a contact-way state applied once."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from adapters.sandbox import wecom_contacts as stand_contacts
from adapters.wecom import blocking_fetch
from bot.crm import wecom_contacts
from bot.crm.channel_codes import CodeSpec
from bot.core.models import ChannelCodeScan, Coupon, Customer, CustomerTag, IssuedCoupon, Message, Tag, WecomContact
from tests.adapters.wechat_kit import eventually, kefu_client, post, stand, wecom_channel, wecom_server

__all__ = ["stand"]


@pytest.fixture
async def client(aiohttp_client, config, database, stand):
    return await kefu_client(aiohttp_client, config, wecom_channel(stand.base), run_sender=True)


def contact(ext: str) -> WecomContact:
    return WecomContact.get((WecomContact.channel == "corp") & (WecomContact.external_userid == ext))


async def sync(stand) -> wecom_contacts.SyncReport:
    return await asyncio.to_thread(wecom_contacts.sync, "corp", blocking_fetch(wecom_channel(stand.base)))


async def test_sync_creates_customers_and_merges_by_unionid(stand, database) -> None:
    mp_customer = Customer.create(channel="mp", external_id="o-openid-1", unionid="u-1")
    stand_contacts.seed_contact(stand.sandbox, "wm-a", "张三", ["alice"], unionid="u-1")
    for n in range(150):  # more than one page of batch/get_by_user
        stand_contacts.seed_contact(stand.sandbox, f"wm-{n:03}", f"客户{n}", ["bob"])
    report = await sync(stand)
    assert (report.follow_users, report.contacts, report.created, report.merged) == (2, 151, 150, 1)
    assert contact("wm-a").customer_id == mp_customer.id  # one person, one customer
    assert not Customer.select().where(Customer.external_id == "wm-a").exists()
    assert contact("wm-007").customer.channel == "corp" and contact("wm-007").follow_users["bob"]["status"] == "active"
    batches = [c for c in stand.sandbox.calls if c.path.endswith("batch/get_by_user")]
    assert [c.body["cursor"] for c in batches] == ["", "100"]
    again = await sync(stand)  # nothing new the second time
    assert (again.created, again.merged, Customer.select().count()) == (0, 0, 151)


async def test_a_refused_call_is_an_error_and_keeps_what_was_synced(stand, database) -> None:
    stand_contacts.seed_contact(stand.sandbox, "wm-a", "张三", ["alice"])
    await sync(stand)
    stand.sandbox.inject(84061, "batch/get_by_user")
    with pytest.raises(wecom_contacts.SyncError, match="84061"):
        await sync(stand)
    assert contact("wm-a").follow_users["alice"]["status"] == "active"


async def send_change(client, server, fields: dict[str, str], at: int) -> tuple[int, str]:
    return await post(client, server, "/wecom/corp", server.event_xml("sys", "change_external_contact",
                                                                      create_time=at, extra=fields))


async def test_change_events_keep_the_crm_in_step_and_a_retry_applies_once(client, stand) -> None:
    server = wecom_server()
    add = stand_contacts.change_fields("add_external_contact", "alice", "wm-x")
    for _ in range(3):  # WeCom retries the same event
        assert (await send_change(client, server, add, 1000))[0] == 200
    assert Message.select().where(Message.external_id.startswith("xc:add_external_contact")).count() == 1
    customer = contact("wm-x").customer
    assert customer.channel == "corp" and contact("wm-x").follow_users["alice"]["status"] == "active"
    await send_change(client, server, stand_contacts.change_fields("edit_external_contact", "alice", "wm-x"), 1001)
    await send_change(client, server, stand_contacts.change_fields("add_external_contact", "bob", "wm-x"), 1002)
    await send_change(client, server, stand_contacts.change_fields(
        "transfer_fail", "bob", "wm-x", FailReason="customer_refused"), 1003)
    assert contact("wm-x").follow_users["bob"] == {**contact("wm-x").follow_users["bob"], "status": "transfer_failed",
                                                   "reason": "customer_refused"}
    await send_change(client, server, stand_contacts.change_fields("del_follow_user", "alice", "wm-x"), 1004)
    await send_change(client, server, stand_contacts.change_fields("del_external_contact", "bob", "wm-x"), 1005)
    row = contact("wm-x")
    assert row.follow_users["alice"]["status"] == "deleted_by_customer"
    assert row.follow_users["bob"]["status"] == "deleted_by_staff" and row.removed_at is not None
    assert Customer.get_by_id(customer.id)  # nothing stored is lost
    assert Message.select().where(Message.author == "customer").count() == 0  # nobody was answered


async def test_a_contact_way_state_applies_like_a_channel_code_once(client, stand) -> None:
    coupon = Coupon.create(name="加微券", value=Decimal("5"), valid_days=7)
    spec = CodeSpec(name="门店联系我", channel="corp", tags=("门店",), welcome="欢迎添加店长微信", coupon_id=coupon.id)
    fetch = blocking_fetch(wecom_channel(stand.base))
    code = await asyncio.to_thread(wecom_contacts.create_contact_way, spec, ["alice"],
                                   lambda path, body: fetch(path, body, None))
    way = stand.sandbox.wecom_contacts["ways"][code.ticket]
    assert way["state"] == code.scene and way["user"] == ["alice"] and code.url == way["qr_code"]
    server = wecom_server()
    fields = stand_contacts.add_event(stand.sandbox, code.ticket, "wm-s", "李四")
    for _ in range(2):
        await send_change(client, server, fields, 2000)
    # the same person re-adds later (a new event): counted, not applied again
    await send_change(client, server, {**fields, "WelcomeCode": "wc-second"}, 2001)
    customer = contact("wm-s").customer
    assert {t.name for t in Tag.select().join(CustomerTag).where(CustomerTag.customer == customer.id)} == {"门店"}
    assert IssuedCoupon.select().where(IssuedCoupon.customer == customer.id).count() == 1
    assert ChannelCodeScan.get(ChannelCodeScan.code == code.id).scans == 2
    welcomed = stand.sandbox.wecom_contacts["welcomed"]
    assert await eventually(lambda: fields["WelcomeCode"] in welcomed)
    assert "欢迎添加店长微信" in welcomed[fields["WelcomeCode"]]["text"]["content"] and "wc-second" not in welcomed


def wecom_sync_command(tmp_path, database_url: str, stand):
    """`kefu wecom sync` against the stand-in, from a config file as an operator runs it:
    returns a blocking `invoke(*extra_args)` (run it in a thread: the stand-in is on the loop)."""
    from click.testing import CliRunner

    from bot.core import db
    from bot.cli import main
    from tests.adapters.wechat_kit import AES_KEY, CORP_ID, MP_TOKEN
    from tests.bot.ops.conftest import write_config

    corp = {"name": "corp", "kind": "wecom", "token": MP_TOKEN, "corp_id": CORP_ID, "agent_id": "1000002",
            "app_secret": "corp-secret", "encoding_aes_key": AES_KEY, "api_base": stand.base}
    config = write_config(tmp_path, database_url, "[[channels]]\n" + "".join(f'{k} = "{v}"\n' for k, v in corp.items()))

    def invoke(*args: str):
        result = CliRunner().invoke(main, ["wecom", "sync", "--config", str(config), *args])
        if not db.database.obj.is_closed():
            db.database.obj.close()
        return result

    return invoke


async def test_kefu_wecom_sync_runs_the_sync_from_the_terminal(stand, database, database_url, tmp_path) -> None:
    stand_contacts.seed_contact(stand.sandbox, "wm-a", "张三", ["alice"])
    invoke = wecom_sync_command(tmp_path, database_url, stand)
    done = await asyncio.to_thread(invoke)
    assert done.exit_code == 0, done.output
    assert "1 contacts of 1 employees, 1 new customers, 0 merged" in done.output
    assert contact("wm-a").follow_users["alice"]["status"] == "active"
    stand.sandbox.inject(84061, "batch/get_by_user")
    refused = await asyncio.to_thread(invoke)
    assert refused.exit_code == 1 and "84061" in refused.output and "kept" in refused.output
    unknown = await asyncio.to_thread(invoke, "--channel", "nope")
    assert unknown.exit_code == 1 and "no wecom channel 'nope'" in unknown.output
