"""The 公众号 campaign path for followers outside the 48-hour window: openid-list mass sends
(`message/mass/send`) in batches within the platform's limits, each with its clientmsgid,
the operator's preview of who each path reaches, MASSSENDJOBFINISH figures, and a mass
send cut short by a crash that the platform's dedup makes safe to repeat."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any, Callable

import pytest

from adapters.api_client import WeChatApi
from adapters.delivery import AsyncDelivery
from adapters.wechat_callback import store_report
from adapters.wechat_common import parse_message, to_inbound
from adapters.wechat_mp import OfficialAccountSender
from bot.campaigns import runs
from bot.campaigns import fanout
from bot.sending import outbox
from bot.core import clock
from bot.core.models import Campaign, Customer, CustomerGroup, Delivery, GroupMember, Outbox
from jobs import campaigns as campaign_jobs
from tests.adapters.wechat_kit import APP_ID, stand, wechat

__all__ = ["stand"]

KINDS = {"mp": "wechat_mp"}


async def run_blocking(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)


@pytest.fixture
async def delivery(database, stand):  # type: ignore[no-untyped-def]
    api = WeChatApi.for_mp(stand.base, APP_ID, "mp-secret", run_blocking)
    yield AsyncDelivery({"mp": OfficialAccountSender(api)}, run_blocking, max_attempts=5)
    await api.close()


def followers(inside: int, outside: int) -> CustomerGroup:
    """A group of followers: `inside` wrote an hour ago, `outside` three days ago."""
    now = clock.now()
    rows = [dict(channel="mp", external_id=f"o_in_{i}", last_inbound_at=now - timedelta(hours=1))
            for i in range(inside)]
    rows += [dict(channel="mp", external_id=f"o_out_{i:03d}", last_inbound_at=now - timedelta(days=3))
             for i in range(outside)]
    Customer.insert_many(rows).execute()
    group = CustomerGroup.create(name="老粉丝")
    GroupMember.insert_many([dict(group=group.id, customer=c.id) for c in Customer.select()]).execute()
    return group


def campaign_to(group: CustomerGroup, text: str = "双十二预售今晚开始") -> Campaign:
    return Campaign.create(name="双十二", target_kind="group", target_value=str(group.id), content_kind="text",
                           content={"text": text})


def start(campaign: Campaign, batch: int = fanout.HAND_OVER_BATCH) -> str:
    runs.schedule(campaign)
    campaign_jobs.wanted("Asia/Shanghai")
    return runs.drive(campaign.id, KINDS, batch=batch, max_backlog=0)


async def deliver(delivery: AsyncDelivery) -> None:
    while await delivery.deliver_due():
        pass


def mass_calls(stand: Any) -> list[dict[str, Any]]:
    return [c.body for c in stand.sandbox.calls if c.path == "/cgi-bin/message/mass/send"]


async def test_followers_outside_the_window_get_one_mass_send_and_the_report_fills_the_figures(
        delivery, stand, fake_clock) -> None:
    campaign = campaign_to(followers(inside=3, outside=25))
    assert runs.paths(campaign, KINDS) == {
        "audience": 28, "customer_service": 3, "template": 0, "mass": 25, "unreachable": 0, "refused": 0,
        "mass_jobs_this_month": 0, "mass_per_follower_per_month": 4}
    assert start(campaign) == "sending"
    await deliver(delivery)
    assert runs.drive(campaign.id, KINDS, max_backlog=0) == "done"
    custom = Counter(c.body["touser"] for c in stand.sandbox.sends("/custom/send"))
    assert sorted(custom) == ["o_in_0", "o_in_1", "o_in_2"]  # inside the window: one each, personal
    [mass] = mass_calls(stand)
    assert sorted(mass["touser"]) == [f"o_out_{i:03d}" for i in range(25)]
    assert mass["msgtype"] == "text" and mass["text"]["content"] == "双十二预售今晚开始"
    assert len(mass["clientmsgid"]) <= 64
    progress = runs.progress(Campaign.get_by_id(campaign.id))
    assert progress["sent"] == 28 and progress["mass_jobs"] == progress["mass_accepted"] == 1
    assert progress["mass_reported"] == 0
    # the platform's report arrives as a signed callback: the campaign's figures take it
    [(msg_id, _)] = stand.sandbox.mass_jobs.items()
    xml = wechat("plain").event_xml("gh_shop", "MASSSENDJOBFINISH", extra=stand.sandbox.mass_report(msg_id))
    event, fields = parse_message(xml)
    assert store_report(to_inbound("mp", event, fields))
    progress = runs.progress(Campaign.get_by_id(campaign.id))
    assert (progress["mass_reported"], progress["mass_total"], progress["mass_sent"], progress["mass_errors"]) == \
        (1, 25, 25, 0)
    assert runs.paths(campaign, KINDS)["mass_jobs_this_month"] == 1


async def test_mass_batches_stay_within_the_platforms_limit(delivery, stand, monkeypatch) -> None:
    monkeypatch.setattr(fanout, "MASS_BATCH", 10)  # the platform's 10,000, scaled down
    campaign = campaign_to(followers(inside=0, outside=25))
    assert start(campaign, batch=7) == "sending"  # rows fill across hand-overs of 7
    await deliver(delivery)
    assert runs.drive(campaign.id, KINDS, max_backlog=0) == "done"
    sizes = sorted(len(body["touser"]) for body in mass_calls(stand))
    assert sizes == [5, 10, 10]
    everyone = [openid for body in mass_calls(stand) for openid in body["touser"]]
    assert sorted(everyone) == [f"o_out_{i:03d}" for i in range(25)]  # each once
    assert len({body["clientmsgid"] for body in mass_calls(stand)}) == 3


async def test_a_lone_follower_outside_the_window_is_skipped_with_the_reason(delivery, stand) -> None:
    campaign = campaign_to(followers(inside=2, outside=1))
    assert start(campaign) == "sending"
    await deliver(delivery)
    assert runs.drive(campaign.id, KINDS, max_backlog=0) == "done"
    assert mass_calls(stand) == []
    skipped = Delivery.get(Delivery.status == "skipped")
    assert skipped.customer.external_id == "o_out_000" and skipped.reason == fanout.MASS_TOO_FEW


async def test_personal_text_cannot_go_as_a_mass_send(database) -> None:
    campaign = campaign_to(followers(inside=1, outside=4), text="{nickname}，双十二预售今晚开始")
    paths = runs.paths(campaign, KINDS)
    assert (paths["mass"], paths["unreachable"], paths["customer_service"]) == (0, 4, 1)


class Crash(BaseException):
    """The sending process dies here."""


async def test_a_mass_send_cut_short_is_repeated_and_the_platform_keeps_it_single(delivery, stand, fake_clock,
                                                                                  monkeypatch) -> None:
    campaign = campaign_to(followers(inside=0, outside=5))
    assert start(campaign) == "sending"

    def die(*args: Any) -> Any:
        raise Crash()

    with monkeypatch.context() as patched:  # the platform accepted the job, then the sender died
        patched.setattr(outbox, "record_many", die)
        await delivery.deliver_due()
    assert len(stand.sandbox.mass_jobs) == 1
    fake_clock.advance(seconds=outbox.LEASE_SECONDS + 1)
    await deliver(delivery)  # repeated at once: the platform says too soon (45066), wait a minute
    assert Outbox.get(Outbox.key.startswith("mass:")).status == "pending"
    fake_clock.advance(seconds=61)
    stand.sandbox.time_passes(61)
    await deliver(delivery)  # repeated with the same clientmsgid: 45065, the job it has
    row = Outbox.get(Outbox.key.startswith("mass:"))
    assert row.status == "sent" and row.attempts == 3 and row.content["msg_id"]
    assert len(mass_calls(stand)) == 3 and len(stand.sandbox.mass_jobs) == 1  # called thrice, sent once
    assert set(stand.sandbox.mass_received.values()) == {1}
    assert runs.drive(campaign.id, KINDS, max_backlog=0) == "done"
    assert runs.progress(Campaign.get_by_id(campaign.id))["sent"] == 5
