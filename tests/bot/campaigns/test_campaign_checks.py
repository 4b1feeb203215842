"""A campaign that cannot misfire: the core refuses it before anything is sent, so the panel
and the CLI refuse the same things (issue 25)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from bot.campaigns import checks as campaign_checks, cron as campaign_cron, runs, targets as campaign_targets
from bot.core import clock
from bot.core.models import Campaign, Coupon, CustomerGroup, GroupMember, Outbox
from tests.factories import make_agent
from tests.jobs.conftest import make_customers

pytestmark = pytest.mark.usefixtures("database", "fake_clock")


def make_campaign(**fields) -> Campaign:  # type: ignore[no-untyped-def]
    defaults = dict(name="双十二", target_kind="all", target_value="", content_kind="text",
                    content={"text": "{nickname}您好，全场8折"}, status="draft")
    return Campaign.create(**{**defaults, **fields})


def test_an_unknown_group_is_refused() -> None:
    make_customers(2)
    campaign = make_campaign(target_kind="group", target_value="不存在的群")
    assert any("不存在的群" in p for p in campaign_checks.problems(campaign))
    with pytest.raises(campaign_targets.CampaignError, match="不存在的群"):
        runs.schedule(campaign)
    assert Campaign.get_by_id(campaign.id).status == "draft"


def test_zero_recipients_are_refused_and_nothing_is_sent() -> None:
    group = CustomerGroup.create(name="空群", kind="普通群")
    campaign = make_campaign(target_kind="group", target_value=str(group.id))
    assert campaign_checks.problems(campaign) == []  # a draft to an empty group may be saved
    with pytest.raises(campaign_targets.CampaignError, match="0 人"):
        runs.schedule(campaign)
    assert Campaign.get_by_id(campaign.id).status == "draft"


def test_coupon_placeholder_without_a_coupon_is_refused_even_for_a_test_send() -> None:
    make_customers(1)
    make_agent("小美", "agent-xm")
    campaign = make_campaign(content={"text": "送您一张券 {coupon}"})
    assert any("{coupon}" in p for p in campaign_checks.problems(campaign))
    with pytest.raises(campaign_targets.CampaignError, match="coupon"):
        runs.send_test(campaign)
    with pytest.raises(campaign_targets.CampaignError, match="coupon"):
        runs.schedule(campaign)
    assert Outbox.select().count() == 0
    misspelt = make_campaign(content={"text": "{nick_name}您好"})
    assert any("{nick_name}" in p for p in campaign_checks.problems(misspelt))
    coupon = Coupon.create(name="新人券", kind="amount", value=10)
    good = make_campaign(content={"text": "送您一张券 {coupon}", "coupon_id": coupon.id})
    assert campaign_checks.problems(good) == []


def test_a_send_time_already_past_is_refused_in_the_shop_time_zone() -> None:
    make_customers(1)
    campaign = make_campaign(run_at=clock.now() - timedelta(minutes=5))
    found = campaign_checks.problems(campaign)
    assert len(found) == 1 and "已经过去" in found[0]
    # shown as the operator typed it: 02:00 UTC less 5 minutes is 09:55 in Shanghai
    assert "2026-11-24 09:55" in found[0]
    with pytest.raises(campaign_targets.CampaignError, match="已经过去"):
        runs.schedule(campaign)
    later = make_campaign(run_at=clock.now() + timedelta(hours=1))
    assert runs.schedule(later) == 1


def test_the_confirmed_count_must_still_hold() -> None:
    people = make_customers(3)
    group = CustomerGroup.create(name="直播群A", kind="直播群")
    for person in people[:2]:
        GroupMember.create(group=group, customer=person)
    campaign = make_campaign(target_kind="group", target_value=str(group.id))
    GroupMember.create(group=group, customer=people[2])  # someone joined after the operator confirmed 2
    with pytest.raises(campaign_targets.CampaignError, match="3 人"):
        runs.schedule(campaign, confirmed_count=2)
    assert runs.schedule(campaign, confirmed_count=3) == 3


def test_preview_fills_each_placeholder_for_the_first_recipient_without_issuing() -> None:
    make_customers(2)
    coupon = Coupon.create(name="新人券", kind="amount", value=10)
    campaign = make_campaign(content={"text": "{nickname}，{level}专享 {coupon}", "coupon_id": coupon.id})
    shown = campaign_checks.preview(campaign)
    assert shown["values"]["nickname"] == "顾客0" and shown["values"]["level"] == "普通会员"
    assert shown["values"]["coupon"].startswith("K")
    assert shown["message"]["text"] == f"顾客0，普通会员专享 {shown['values']['coupon']}"
    from bot.core.models import IssuedCoupon

    assert IssuedCoupon.select().count() == 0


def test_test_send_to_one_chosen_customer() -> None:
    people = make_customers(3)
    make_agent("小美", "agent-xm")
    campaign = make_campaign()
    assert runs.send_test(campaign, customer=people[1]) == 1
    row = Outbox.get()
    assert row.recipient == "c1" and row.content["text"] == "【测试】顾客1您好，全场8折"


@pytest.mark.parametrize(("every", "at", "weekday", "day", "cron", "words"), [
    ("daily", "9:30", "mon", 1, "30 9 * * *", "每天 09:30"),
    ("weekly", "10:00", "mon", 1, "0 10 * * mon", "每周一 10:00"),
    ("monthly", "20:00", "mon", 1, "0 20 1 * *", "每月 1 日 20:00"),
])
def test_repeats_in_words(every: str, at: str, weekday: str, day: int, cron: str, words: str) -> None:
    assert campaign_cron.repeat_cron(every, at, weekday, day) == cron
    assert campaign_cron.describe_cron(cron) == words
    assert campaign_cron.parse_repeat(cron)["every"] == every  # type: ignore[index]


def test_every_monday_fires_on_a_monday() -> None:
    from apscheduler.triggers.cron import CronTrigger

    cron = campaign_cron.repeat_cron("weekly", "10:00", "mon")
    fire = CronTrigger.from_crontab(cron, timezone="Asia/Shanghai").get_next_fire_time(None, clock.now())
    assert fire.weekday() == 0 and fire.hour == 10


def test_a_wrong_repeat_is_refused() -> None:
    with pytest.raises(campaign_targets.CampaignError):
        campaign_cron.repeat_cron("weekly", "25:00")
    with pytest.raises(campaign_targets.CampaignError):
        campaign_cron.repeat_cron("monthly", "10:00", day=31)
    assert campaign_cron.describe_cron("*/5 * * * *") == "cron：*/5 * * * *"
    assert any("定时表达式" in p for p in campaign_checks.problems(make_campaign(cron="61 * * * *")))


@pytest.mark.parametrize("cron, weekdays", [
    ("0 20 * * 5", {4}),              # crontab 5 = Friday (APScheduler's own numbering says Saturday)
    ("0 10 * * 1-5", {0, 1, 2, 3, 4}),
    ("0 10 * * 0", {6}),
    ("0 10 * * 7", {6}),
    ("0 10 * * 6,0", {5, 6}),
    ("0 10 * * */2", {6, 1, 3, 5}),   # crontab: Sun, Tue, Thu, Sat
    ("0 10 * * mon", {0}),
    ("0 10 * * *", set(range(7))),
])
def test_crontab_weekdays_are_read_as_crontab_reads_them(cron: str, weekdays: set[int]) -> None:
    trigger = campaign_cron.crontab_trigger(cron, "Asia/Shanghai")
    fire, seen = clock.now(), set()
    for _ in range(14):
        fire = trigger.get_next_fire_time(None, fire + timedelta(minutes=1))
        seen.add(fire.weekday())
    assert seen == weekdays


@pytest.mark.parametrize("cron", ["0 10 * * 8", "0 10 * * 5-1", "0 10 * * x", "0 10 * *"])
def test_a_bad_crontab_weekday_is_refused(cron: str) -> None:
    with pytest.raises(ValueError):
        campaign_cron.crontab_trigger(cron, "Asia/Shanghai")
