"""Group campaigns: targets, placeholders, exactly-once fan-out, the 48-hour window,
pause/resume/cancel, a kill in the middle, test sends."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.campaigns import content as campaign_content, runs, targets as campaign_targets
from bot.campaigns import fanout
from bot.core import clock
from bot.core.models import Campaign, Coupon, Customer, CustomerGroup, CustomerTag, Delivery, GroupMember, IssuedCoupon, Outbox, Segment, Tag
from jobs import campaigns as campaign_jobs
from tests.factories import make_agent
from tests.jobs.conftest import KINDS, RecordingSender, deliver_all, make_customers

pytestmark = pytest.mark.usefixtures("database", "fake_clock")


def make_campaign(**fields) -> Campaign:  # type: ignore[no-untyped-def]
    defaults = dict(name="双十二预热", target_kind="all", target_value="", content_kind="text",
                    content={"text": "{nickname}您好，{level}专享：全场8折"}, status="draft")
    return Campaign.create(**{**defaults, **fields})


def run_now(campaign: Campaign, **drive_args) -> str:  # type: ignore[no-untyped-def]
    runs.schedule(campaign)
    campaign_jobs.wanted("Asia/Shanghai")  # a due one-shot campaign starts here
    return runs.drive(campaign.id, KINDS, max_backlog=0, **drive_args)


def run_to_done(campaign: Campaign, sender: RecordingSender | None = None) -> str:
    """Hand the whole run over, deliver it, and drive it to its end."""
    assert run_now(campaign) == "sending"  # handed over, not done: the sends are still queued
    deliver_all({"web": sender or RecordingSender()})
    return runs.drive(campaign.id, KINDS, max_backlog=0)


def test_targets_group_tag_level_segment_all() -> None:
    people = make_customers(6)
    group = CustomerGroup.create(name="直播间粉丝", kind="直播群")
    for c in people[:2]:
        GroupMember.create(group=group, customer=c)
    tag = Tag.create(name="老客")
    CustomerTag.create(customer=people[2], tag=tag)
    Customer.update(level=3).where(Customer.id.in_([people[3].id, people[4].id])).execute()
    Customer.update(total_spend=5000).where(Customer.id == people[4].id).execute()
    Segment.create(name="高消费VIP", filter={"level_min": 2, "min_spend": 1000})

    def ids(kind: str, value: str) -> list[int]:
        c = make_campaign(target_kind=kind, target_value=value)
        return sorted(r[0] for r in campaign_targets.targets(c).tuples())

    assert ids("group", "直播间粉丝") == [people[0].id, people[1].id]
    assert ids("group", str(group.id)) == [people[0].id, people[1].id]
    assert ids("tag", "老客") == [people[2].id]
    assert ids("level", "VIP3") == [people[3].id, people[4].id]
    assert ids("segment", "高消费VIP") == [people[4].id]
    assert ids("all", "") == [c.id for c in people]
    with pytest.raises(campaign_targets.CampaignError):
        campaign_targets.targets(make_campaign(target_kind="group", target_value="没有的群"))


def test_run_sends_each_recipient_once_with_placeholders_and_skips_blocked() -> None:
    people = make_customers(5)
    Customer.update(level=2).where(Customer.id == people[0].id).execute()
    Customer.update(blocked=True).where(Customer.id == people[1].id).execute()
    Customer.update(subscribed=False).where(Customer.id == people[2].id).execute()
    campaign = make_campaign()
    assert run_now(campaign, batch=2) == "sending"
    assert Campaign.get_by_id(campaign.id).status == "running"  # nothing sent yet: not done
    assert runs.progress(Campaign.get_by_id(campaign.id)) == {
        "queued": 3, "sending": 0, "sent": 0, "failed": 0, "in_doubt": 0, "skipped": 2, "total": 5}
    sender = RecordingSender()
    assert deliver_all({"web": sender}) == 3
    assert runs.drive(campaign.id, KINDS, max_backlog=0) == "done"
    texts = dict((r, c["text"]) for r, c in sender.sent)
    assert texts == {"c0": "顾客0您好，VIP2专享：全场8折", "c3": "顾客3您好，普通会员专享：全场8折",
                     "c4": "顾客4您好，普通会员专享：全场8折"}
    campaign = Campaign.get_by_id(campaign.id)
    assert campaign.status == "done"
    reasons = {d.customer_id: d.reason for d in Delivery.select().where(Delivery.status == "skipped")}
    assert reasons == {people[1].id: "blocked", people[2].id: "unsubscribed"}
    assert runs.progress(campaign) == {"queued": 0, "sending": 0, "sent": 3, "failed": 0, "in_doubt": 0,
                                            "skipped": 2, "total": 5}
    # running it again (a second scheduler, a re-fired job) changes nothing
    assert runs.start_run(campaign.id, campaign.run_at or clock.now()) is None
    assert runs.drive(campaign.id, KINDS) == "not running"
    assert deliver_all({"web": sender}) == 0
    assert Outbox.select().count() == 3


def test_coupon_placeholder_issues_one_coupon_per_recipient() -> None:
    make_customers(3)
    coupon = Coupon.create(name="满100减20", value=20, valid_days=7)
    campaign = make_campaign(content={"text": "送您优惠券 {coupon}", "coupon_id": coupon.id})
    assert run_now(campaign) == "sending"
    sender = RecordingSender()
    deliver_all({"web": sender})
    codes = {r: c["text"].split()[-1] for r, c in sender.sent}
    issued = {ic.customer.external_id: ic.code for ic in IssuedCoupon.select()}
    assert codes == issued and len(set(codes.values())) == 3
    # the code is a function of the delivery: rendering again issues nothing new
    d = Delivery.select().first()
    campaign_content.render(Campaign.get_by_id(campaign.id), d.customer, fanout.outbox_key(d.id))
    assert IssuedCoupon.select().count() == 3


def test_48_hour_window_uses_template_or_skips_with_reason(fake_clock) -> None:  # type: ignore[no-untyped-def]
    make_customers(1, channel="mp", prefix="fresh")  # inside the window: gets the text
    stale = make_customers(1, channel="mp", prefix="stale", )
    Customer.update(last_inbound_at=clock.now() - timedelta(hours=49)).where(Customer.id == stale[0].id).execute()
    never = make_customers(1, channel="mp", prefix="never")
    Customer.update(last_inbound_at=None).where(Customer.id == never[0].id).execute()
    web_stale = make_customers(1, channel="web", prefix="webold")
    Customer.update(last_inbound_at=clock.now() - timedelta(days=30)).where(Customer.id == web_stale[0].id).execute()

    template = {"template_id": "TPL-1", "data": {"first": {"value": "{nickname}，活动开始啦"}}}
    with_template = make_campaign(name="有模板", content={"text": "上新了", "template": template})
    assert run_now(with_template) == "sending"
    without = make_campaign(name="无模板", content={"text": "{nickname}，上新了"})  # personal: no mass send either
    assert run_now(without) == "sending"

    sender_mp, sender_web = RecordingSender(), RecordingSender()
    deliver_all({"mp": sender_mp, "web": sender_web})
    got = sorted((r, c["kind"]) for r, c in sender_mp.sent)
    assert got == [("fresh0", "text"), ("fresh0", "text"), ("never0", "template"), ("stale0", "template")]
    filled = [c for r, c in sender_mp.sent if r == "stale0"][0]
    assert filled["data"]["first"]["value"] == "顾客0，活动开始啦"
    assert sorted(sender_web.recipients()) == ["webold0", "webold0"]  # the web chat has no window
    skipped = {(d.customer.external_id, d.reason) for d in Delivery.select().where(
        (Delivery.job_key == Campaign.get_by_id(without.id).run_key) & (Delivery.status == "skipped"))}
    assert skipped == {("stale0", "outside the 48-hour window and no template"),
                       ("never0", "outside the 48-hour window and no template")}


def test_pause_resume_cancel() -> None:
    make_customers(10)
    campaign = make_campaign()
    assert run_now(campaign, batch=3, max_batches=1) == "stopped"
    assert Outbox.select().count() == 3
    runs.pause(campaign.id)
    assert runs.drive(campaign.id, KINDS, batch=3, max_backlog=0) == "not running"
    assert Outbox.select().count() == 3
    with pytest.raises(campaign_targets.CampaignError):
        runs.pause(campaign.id)
    runs.resume(campaign.id)
    assert runs.drive(campaign.id, KINDS, batch=3, max_batches=1, max_backlog=0) == "stopped"
    assert Outbox.select().count() == 6
    sender = RecordingSender()
    deliver_all({"web": sender})  # the first six go out
    assert runs.drive(campaign.id, KINDS, batch=3, max_batches=1, max_backlog=0) == "stopped"
    assert runs.cancel(campaign.id) == 1  # one recipient never reached the outbox
    assert deliver_all({"web": sender}) == 0  # the three queued but unsent are withdrawn
    assert len(sender.sent) == 6
    progress = runs.progress(Campaign.get_by_id(campaign.id))
    assert progress == {"queued": 0, "sending": 0, "sent": 6, "failed": 0, "in_doubt": 0, "skipped": 4, "total": 10}
    assert {d.reason for d in Delivery.select().where(Delivery.status == "skipped")} == {"cancelled"}
    with pytest.raises(campaign_targets.CampaignError):
        runs.resume(campaign.id)


def test_kill_in_the_middle_resumes_without_doubles_or_gaps(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    people = make_customers(23)
    campaign = make_campaign()
    assert run_now(campaign, batch=5, max_batches=2) == "stopped"
    # the process dies inside the third hand-over, after writing outbox rows, before commit
    real_update = Delivery.update
    calls = {"n": 0}

    def dying_update(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        raise RuntimeError("killed")

    monkeypatch.setattr(Delivery, "update", dying_update)
    with pytest.raises(RuntimeError):
        runs.drive(campaign.id, KINDS, batch=5, max_backlog=0)
    monkeypatch.setattr(Delivery, "update", real_update)
    assert calls["n"] == 1
    assert Outbox.select().count() == 10  # the dying batch left nothing behind
    sender = RecordingSender()
    deliver_all({"web": sender})  # the sender kept going meanwhile
    # a new scheduler takes over and carries the same run forward
    assert campaign_jobs.drive_all(KINDS) == {campaign.id: "sending"}
    deliver_all({"web": sender})
    assert campaign_jobs.drive_all(KINDS) == {campaign.id: "done"}
    run_key = Campaign.get_by_id(campaign.id).run_key
    fanout.sync_outcomes([run_key])
    for person in people:  # one by one: one delivery, one outbox row, one send
        deliveries = list(Delivery.select().where((Delivery.job_key == run_key) & (Delivery.customer == person.id)))
        assert len(deliveries) == 1, person.external_id
        assert deliveries[0].status == "sent"
        assert Outbox.select().where(Outbox.key == deliveries[0].outbox_key).count() == 1
        assert sender.recipients().count(person.external_id) == 1
    assert Campaign.get_by_id(campaign.id).status == "done"


def test_test_send_goes_to_agents_only() -> None:
    make_customers(3)
    make_agent("小美", "agent-xm")
    make_agent("阿力", "agent-al")
    campaign = make_campaign()
    assert runs.send_test(campaign) == 2
    sender = RecordingSender()
    deliver_all({"web": sender})
    assert sorted(sender.recipients()) == ["agent-al", "agent-xm"]
    assert all(c["text"].startswith("【测试】") for _, c in sender.sent)
    assert Delivery.select().count() == 0 and Campaign.get_by_id(campaign.id).status == "draft"


def test_cron_campaign_one_run_per_tick(fake_clock) -> None:  # type: ignore[no-untyped-def]
    make_customers(2)
    campaign = make_campaign(cron="0 10 * * *")  # 10:00 Shanghai = 02:00 UTC, the fake clock's start
    runs.schedule(campaign)
    first = campaign_jobs.start(campaign.id)
    assert first == "campaign:%d:2026-11-24T10:00+0800" % campaign.id  # the shop's time
    fake_clock.advance(seconds=20)
    assert campaign_jobs.start(campaign.id) is None  # the same tick again: already running
    assert runs.drive(campaign.id, KINDS, max_backlog=0) == "sending"
    deliver_all({"web": RecordingSender()})
    assert runs.drive(campaign.id, KINDS, max_backlog=0) == "done"
    assert Campaign.get_by_id(campaign.id).status == "scheduled"  # cron: back to waiting
    assert campaign_jobs.start(campaign.id) is None  # same tick after the run: still one run
    fake_clock.advance(days=1)
    second = campaign_jobs.start(campaign.id)
    assert second == "campaign:%d:2026-11-25T10:00+0800" % campaign.id
    assert runs.drive(campaign.id, KINDS, max_backlog=0) == "sending"
    assert Delivery.select().where(Delivery.job_key == first).count() == 2
    assert Delivery.select().where(Delivery.job_key == second).count() == 2
    assert Outbox.select().count() == 4


def test_scheduled_one_shot_waits_for_its_time(fake_clock) -> None:  # type: ignore[no-untyped-def]
    make_customers(1)
    later = clock.now() + timedelta(hours=2)
    campaign = make_campaign(run_at=later)
    runs.schedule(campaign)
    wanted = campaign_jobs.wanted("Asia/Shanghai")
    assert list(wanted) == [f"campaign:{campaign.id}"]
    assert Campaign.get_by_id(campaign.id).status == "scheduled"
    fake_clock.set(later + timedelta(seconds=1))
    assert campaign_jobs.wanted("Asia/Shanghai") == {}
    assert Campaign.get_by_id(campaign.id).status == "running"
    assert Campaign.get_by_id(campaign.id).run_key == f"campaign:{campaign.id}:{later.astimezone(ZoneInfo('Asia/Shanghai')):%Y-%m-%dT%H:%M+0800}"


def test_backlog_bounds_the_fan_out() -> None:
    make_customers(30)
    campaign = make_campaign()
    runs.schedule(campaign)
    campaign_jobs.wanted("Asia/Shanghai")
    assert runs.drive(campaign.id, KINDS, batch=10, max_backlog=15, backlog_wait=0.0) == "backlog"
    assert Outbox.select().where(Outbox.status == "pending").count() == 20


def test_cli_list_says_when_there_are_none(config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from bot.cli import main

    env = {"KEFU_DATABASE_URL": config.database_url, "KEFU_DATA_DIR": str(tmp_path / "data")}
    empty = CliRunner().invoke(main, ["campaign", "list"], env=env)
    assert empty.exit_code == 0 and empty.stdout == "" and "no campaigns yet" in empty.stderr


def test_cli_changes_and_lists(config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from bot.cli import main

    make_customers(2)
    make_agent("小美", "agent-xm")
    campaign = make_campaign()
    env = {"KEFU_DATABASE_URL": config.database_url, "KEFU_DATA_DIR": str(tmp_path / "data")}
    runner = CliRunner()
    result = runner.invoke(main, ["campaign", "change", "test", str(campaign.id)], env=env)
    assert result.exit_code == 0 and "1 agents" in result.output
    result = runner.invoke(main, ["campaign", "change", "pause", str(campaign.id)], env=env)
    assert result.exit_code != 0 and "只有发送中的活动可以暂停" in result.output
    result = runner.invoke(main, ["campaign", "change", "schedule", str(campaign.id)], env=env)
    assert result.exit_code == 0 and "scheduled" in result.output
    result = runner.invoke(main, ["campaign", "list"], env=env)
    assert '"status": "scheduled"' in result.output


def test_a_done_campaign_scheduled_again_is_a_new_run(fake_clock) -> None:  # type: ignore[no-untyped-def]
    make_customers(2)
    campaign = make_campaign()
    assert run_to_done(campaign) == "done"
    first = Campaign.get_by_id(campaign.id).run_key
    fake_clock.advance(minutes=5)
    assert run_to_done(Campaign.get_by_id(campaign.id)) == "done"
    second = Campaign.get_by_id(campaign.id).run_key
    assert first != second and Outbox.select().count() == 4
    paused = make_campaign(name="暂停中")
    assert run_now(paused, batch=1, max_batches=1) == "stopped"
    runs.pause(paused.id)
    with pytest.raises(campaign_targets.CampaignError):
        runs.schedule(Campaign.get_by_id(paused.id))


def test_image_news_and_template_content() -> None:
    people = make_customers(1)
    person = Customer.get_by_id(people[0].id)

    def rendered(kind: str, content: dict) -> fanout.Rendered:  # type: ignore[type-arg]
        return campaign_content.render(make_campaign(content_kind=kind, content=content), person, "delivery:1")

    assert rendered("image", {"media_id": "MEDIA-1"}).content == {"kind": "image", "media_id": "MEDIA-1"}
    news = rendered("news", {"articles": [{"title": "{nickname}的专属推荐", "url": "https://shop.example/a"}]})
    assert news.content == {"kind": "news", "articles": [{"title": "顾客0的专属推荐", "url": "https://shop.example/a"}]}
    template = rendered("template", {"template_id": "TPL", "data": {"name": {"value": "{level}"}}})
    assert template.content is None and template.template == {"kind": "template", "template_id": "TPL",
                                                              "data": {"name": {"value": "普通会员"}}}
    empty = rendered("image", {})
    assert empty.content is None and empty.reason == "the campaign has no content"
    assert campaign_content.fill("满{100}减{amount} {nickname}", {"nickname": "小王"}) == "满{100}减{amount} 小王"


@pytest.fixture
def commit_elsewhere(config):  # type: ignore[no-untyped-def]
    """A function that commits a write from another connection, as `kefu serve` would in
    another process (SQLite only: its stale-snapshot rule is what this guards against)."""
    if not config.database_url.startswith("sqlite"):
        pytest.skip("SQLite's stale-snapshot rule; PostgreSQL has no such failure")
    import sqlite3

    other = sqlite3.connect(config.database_url.split("///", 1)[1], timeout=10, isolation_level=None)
    other.execute("CREATE TABLE other_process_writes (x INTEGER)")
    yield lambda: other.execute("INSERT INTO other_process_writes VALUES (1)")
    other.close()


def test_cli_list_while_another_process_writes(config, tmp_path, monkeypatch, commit_elsewhere) -> None:  # type: ignore[no-untyped-def]
    """`kefu campaign list` syncs each campaign's outcomes (a write) while `kefu serve` commits
    in between: it must wait its turn, not die with "database is locked"."""
    from click.testing import CliRunner

    from bot.cli import main

    make_customers(2)
    for name in ("甲", "乙", "丙"):
        assert run_to_done(make_campaign(name=name)) == "done"
    real_progress = runs.progress

    def progress_after_a_commit_elsewhere(campaign: Campaign) -> dict[str, int]:
        commit_elsewhere()
        return real_progress(campaign)

    monkeypatch.setattr(runs, "progress", progress_after_a_commit_elsewhere)
    env = {"KEFU_DATABASE_URL": config.database_url, "KEFU_DATA_DIR": str(tmp_path / "data")}
    result = CliRunner().invoke(main, ["campaign", "list"], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.count('"status": "done"') == 3


def test_the_scheduler_starts_and_drives_campaigns_while_another_process_writes(
        monkeypatch, commit_elsewhere) -> None:  # type: ignore[no-untyped-def]
    make_customers(2)
    ids = [make_campaign(name=name).id for name in ("甲", "乙", "丙")]
    for cid in ids:
        runs.schedule(Campaign.get_by_id(cid))
    real_start, real_drive = runs.start_run, runs.drive

    def start_after_a_commit_elsewhere(*args, **kwargs):  # type: ignore[no-untyped-def]
        commit_elsewhere()
        return real_start(*args, **kwargs)

    def drive_after_a_commit_elsewhere(*args, **kwargs):  # type: ignore[no-untyped-def]
        commit_elsewhere()
        return real_drive(*args, **kwargs)

    monkeypatch.setattr(runs, "start_run", start_after_a_commit_elsewhere)
    monkeypatch.setattr(runs, "drive", drive_after_a_commit_elsewhere)
    campaign_jobs.wanted("Asia/Shanghai")  # the three due one-shot campaigns start
    assert sorted(campaign_jobs.drive_all(KINDS)) == sorted(ids)
