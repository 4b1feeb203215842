"""The scheduler service: fixed job ids, campaign jobs from the database, leadership and the
standby's take-over (lease row on SQLite, advisory lock on PostgreSQL)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from apscheduler.schedulers.base import STATE_PAUSED, STATE_RUNNING
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.campaigns import runs
from bot.core import clock
from bot.core.db import is_postgres
from bot.core.models import Campaign, Customer
from jobs import leader
from jobs.runner import SchedulerService

FIXED = {"housekeeping", "campaigns-sync", "campaigns-drive", "coupon-reminders", "revisits", "dormant-revisits",
         "birthdays", "member-levels", "pool-return", "agent-sla"}


class Switch:
    """A leadership that is granted or not by the test."""

    def __init__(self, granted: bool) -> None:
        self.granted, self.released = granted, False

    def acquire(self) -> bool:
        return self.granted

    def release(self) -> None:
        self.released = True


async def test_jobs_have_fixed_ids_and_installing_twice_replaces(config, database) -> None:  # type: ignore[no-untyped-def]
    service = SchedulerService(config, leadership=Switch(False))
    await service.start()
    try:
        assert {j.id for j in service.scheduler.get_jobs()} == FIXED
        service.install()
        service.install()
        assert sorted(j.id for j in service.scheduler.get_jobs()) == sorted(FIXED)
        coupon_job = service.scheduler.get_job("coupon-reminders")
        assert isinstance(coupon_job.trigger, CronTrigger) and coupon_job.args[1] == "Asia/Shanghai"
    finally:
        await service.stop()


async def test_each_fixed_job_fires_when_expected(config, database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    """From the fake clock's 10:00 in Shanghai (02:00 UTC), the next fire of every job."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo

    service = SchedulerService(config, leadership=Switch(False))
    now = clock.now().astimezone(ZoneInfo("Asia/Shanghai"))
    jobs = service.job_definitions()
    cron = {job.id: job.trigger.get_next_fire_time(None, now) for job in jobs if isinstance(job.trigger, CronTrigger)}
    local = {job_id: when.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%m-%d %H:%M") for job_id, when in cron.items()}
    assert local == {"coupon-reminders": "11-24 10:05", "revisits": "11-24 10:15", "dormant-revisits": "11-24 11:30",
                     "birthdays": "11-24 10:00", "member-levels": "11-25 03:30",
                     "pool-return": "11-25 03:45"}
    assert cron["member-levels"] == datetime(2026, 11, 24, 19, 30, tzinfo=timezone.utc)
    every = {job.id: job.trigger.interval.total_seconds() for job in jobs if isinstance(job.trigger, IntervalTrigger)}
    assert every == {"housekeeping": 60, "campaigns-sync": 5, "campaigns-drive": 2, "agent-sla": 15}


async def test_campaign_jobs_follow_the_database(config, database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    service = SchedulerService(config, leadership=Switch(False))
    await service.start()
    try:
        Customer.create(channel="web", external_id="c1")  # a campaign to nobody is refused (issue 25)
        weekly = Campaign.create(name="周五上新", target_kind="all", content={"text": "上新啦"}, cron="0 20 * * 5")
        later = Campaign.create(name="预告", target_kind="all", content={"text": "明晚开播"},
                                run_at=clock.now() + timedelta(days=1))
        draft = Campaign.create(name="草稿", target_kind="all", content={"text": "未完成"})
        runs.schedule(weekly)
        runs.schedule(later)
        assert service.sync_campaigns() == {"added": 2, "removed": 0, "scheduled": 2}
        assert service.sync_campaigns() == {"added": 0, "removed": 0, "scheduled": 2}  # no duplicates
        jobs = {j.id: j for j in service.scheduler.get_jobs() if j.id.startswith("campaign:")}
        assert set(jobs) == {f"campaign:{weekly.id}", f"campaign:{later.id}"}
        assert isinstance(jobs[f"campaign:{weekly.id}"].trigger, CronTrigger)
        assert isinstance(jobs[f"campaign:{later.id}"].trigger, DateTrigger)
        assert jobs[f"campaign:{weekly.id}"].args == (weekly.id, "Asia/Shanghai")  # plain ids
        Campaign.update(cron="0 21 * * 5").where(Campaign.id == weekly.id).execute()
        runs.cancel(later.id)
        assert service.sync_campaigns() == {"added": 1, "removed": 1, "scheduled": 1}
        assert "hour='21'" in str(service.scheduler.get_job(f"campaign:{weekly.id}").trigger)
        assert service.scheduler.get_job(f"campaign:{draft.id}") is None
    finally:
        await service.stop()


async def test_jobs_run_only_while_leading(config, database) -> None:  # type: ignore[no-untyped-def]
    switch = Switch(False)
    service = SchedulerService(config, leadership=switch)
    await service.start()
    try:
        ran: list[int] = []
        job = service._in_thread("probe", lambda x: ran.append(x))
        assert await service.renew() is False
        await job(1)
        switch.granted = True
        assert await service.renew() is True and service.leading and not service.stopping()
        await job(2)
        switch.granted = False
        assert await service.renew() is False and service.stopping()
        await job(3)
        assert ran == [2]
    finally:
        await service.stop()
    assert switch.released


def test_lease_standby_takes_over_when_the_leader_stops_renewing(database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    first = leader.LeaseLeadership(15, holder="a")
    standby = leader.LeaseLeadership(15, holder="b")
    assert first.acquire() and not standby.acquire()
    fake_clock.advance(seconds=10)
    assert first.acquire() and not standby.acquire()  # renewed in time
    fake_clock.advance(seconds=16)  # the leader died: no renewal for longer than the lease
    assert standby.acquire()
    assert not first.acquire()  # a leader that comes back is now the standby
    standby.release()
    assert first.acquire()


async def test_standby_service_takes_over(config, database, fake_clock) -> None:  # type: ignore[no-untyped-def]
    if is_postgres():
        pytest.skip("the lease row is the SQLite mechanism; PostgreSQL is tested below")
    a = SchedulerService(config, leadership=leader.LeaseLeadership(15, holder="a"))
    b = SchedulerService(config, leadership=leader.LeaseLeadership(15, holder="b"))
    await a.start()
    try:
        assert await a.renew()
        await b.start()  # b's own renewal loop runs too: it must stay a standby
        assert not await b.renew() and not b.leading and b.scheduler.state == STATE_PAUSED
        a._lease_task.cancel()  # the leader hangs or dies: it stops renewing
        fake_clock.advance(seconds=16)
        assert await b.renew() and b.leading
        assert b.scheduler.state == STATE_RUNNING  # no longer paused: b's jobs now run
    finally:
        await b.stop()
        await a.stop()


def test_advisory_lock_standby_takes_over(database_url, database) -> None:  # type: ignore[no-untyped-def]
    if not is_postgres():
        pytest.skip("PostgreSQL only")
    first = leader.AdvisoryLeadership(database_url)
    standby = leader.AdvisoryLeadership(database_url)
    try:
        assert first.acquire()
        assert first.acquire()  # still held on the same session
        assert not standby.acquire()
        first._conn.close()  # the leader's process dies: its session ends, the server frees the lock
        deadline = time.monotonic() + 5  # the server ends the session asynchronously: poll like a standby
        while not standby.acquire() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert standby._held
        assert not first.acquire()  # it reconnects as a standby
    finally:
        first.release()
        standby.release()
    assert isinstance(leader.for_database(database_url, 15), leader.AdvisoryLeadership)
    assert isinstance(leader.for_database("sqlite:///x.db", 15), leader.LeaseLeadership)


def test_only_job_runs_that_did_something_are_logged_at_info() -> None:
    """The polling jobs run every 2-15 s: an idle run must not bury real events in the log."""
    from jobs.runner import did_something

    assert not did_something(None) and not did_something(0) and not did_something({})
    assert not did_something({"reassigned": 0, "reminded": 0, "drained": 0})
    assert not did_something({"added": 0, "nested": {"sent": 0}})
    assert did_something({"reassigned": 0, "reminded": 1}) and did_something(3)
    assert did_something({7: "done"}) and did_something([1])


async def test_an_idle_run_logs_at_debug(config, database) -> None:  # type: ignore[no-untyped-def]
    import logging

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):  # on the logger itself: other tests may stop "kefu" propagating
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger, handler = logging.getLogger("kefu.scheduler"), Keep(logging.DEBUG)
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    switch = Switch(True)
    service = SchedulerService(config, leadership=switch)
    await service.start()
    try:
        assert await service.renew() is True
        await service._in_thread("idle", lambda: {"reminded": 0})()
        await service._in_thread("busy", lambda: {"reminded": 2})()
    finally:
        await service.stop()
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    levels = {r.getMessage().split('"job": "')[1].split('"')[0]: r.levelno
              for r in records if '"event": "job"' in r.getMessage()}
    assert (levels["idle"], levels["busy"]) == (logging.DEBUG, logging.INFO)  # the real jobs may log too


def test_the_scheduler_says_when_its_zone_is_not_the_shops(config, database) -> None:  # type: ignore[no-untyped-def]
    from bot.core import settings

    service = SchedulerService(config, leadership=Switch(False))
    assert str(service.tz) == "Asia/Shanghai" and service.check_zone()
    settings.put("business_hours", {**settings.get("business_hours"), "timezone": "Europe/Berlin"})
    assert not service.check_zone()
    settings.put("business_hours", {**settings.get("business_hours"), "timezone": "Not/AZone"})
    assert service.check_zone()  # a misspelt setting is the default zone, as everywhere
