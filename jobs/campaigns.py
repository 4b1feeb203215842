"""Campaign jobs: the database decides which campaigns are scheduled; these keep APScheduler
in step and carry running campaigns forward.

Why two jobs: `sync` (every few seconds) adds one APScheduler job per scheduled campaign —
id `campaign:{id}`, a CronTrigger or DateTrigger, `replace_existing` — and removes jobs
whose campaign is no longer scheduled; that job only starts a run (a state change).
`drive` (every 2 s) does the fan-out for every running campaign, so a run begun by a
scheduler that died is finished by the one that took over.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, Callable

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger

from bot.campaigns import cron as campaign_cron, runs
from bot.core import clock
from bot.core.models import Campaign

log = logging.getLogger("kefu.jobs.campaigns")

PREFIX = "campaign:"


def job_id(campaign_id: int) -> str:
    return f"{PREFIX}{campaign_id}"


def cron_trigger(cron: str, tz: str) -> CronTrigger:
    return campaign_cron.crontab_trigger(cron, tz)


def fire_time(cron: str, tz: str, now: datetime | None = None) -> datetime:
    """The cron tick a run started now belongs to (the latest tick at or before now)."""
    now = now or clock.now()
    trigger = cron_trigger(cron, tz)
    tick = trigger.get_next_fire_time(None, now - timedelta(minutes=1))
    if tick is not None and tick <= now:
        return tick
    return now.replace(second=0, microsecond=0)


def start(campaign_id: int, tz: str = "Asia/Shanghai") -> str | None:
    """The scheduled job body: begin the run this fire belongs to."""
    campaign = Campaign.get_or_none(Campaign.id == campaign_id)
    if campaign is None:
        return None
    when = fire_time(campaign.cron, tz) if campaign.cron else (campaign.run_at or clock.now())
    return runs.start_run(campaign_id, when)


def wanted(tz: str) -> dict[str, tuple[int, Any]]:
    """job id -> (campaign id, trigger) for every scheduled campaign with a future fire.
    One-shot campaigns already due are started here directly."""
    jobs: dict[str, tuple[int, Any]] = {}
    now = clock.now()
    # read them all first: start_run writes, and on SQLite a write while this SELECT's cursor
    # is open fails at once ("database is locked") if another process committed meanwhile
    for c in list(Campaign.select(Campaign.id, Campaign.cron, Campaign.run_at).where(Campaign.status == "scheduled")):
        if c.cron:
            try:
                jobs[job_id(c.id)] = (c.id, cron_trigger(c.cron, tz))
            except ValueError as exc:
                log.warning("campaign %s: bad cron %r: %s", c.id, c.cron, exc)
        elif c.run_at is None or c.run_at <= now:
            runs.start_run(c.id, c.run_at or now)
        else:
            jobs[job_id(c.id)] = (c.id, DateTrigger(run_date=c.run_at))
    return jobs


def sync(scheduler: Any, tz: str, wrap: Callable[[str, Callable[..., Any]], Callable[..., Any]]) -> dict[str, int]:
    """Make the scheduler's `campaign:*` jobs match the database. Returns counts."""
    want = wanted(tz)
    added = removed = 0
    for job in scheduler.get_jobs():
        if job.id.startswith(PREFIX) and job.id not in want:
            scheduler.remove_job(job.id)
            removed += 1
    for jid, (cid, trigger) in want.items():
        existing = scheduler.get_job(jid)
        if existing is not None and str(existing.trigger) == str(trigger):
            continue
        scheduler.add_job(wrap(jid, start), trigger, args=[cid, tz], id=jid, name=jid, replace_existing=True,
                          coalesce=True, max_instances=1, misfire_grace_time=None)
        added += 1
    return {"added": added, "removed": removed, "scheduled": len(want)}


def drive_all(channel_kinds: dict[str, str], stop: Callable[[], bool] = lambda: False) -> dict[int, str]:
    """Carry every running campaign forward; returns each one's stopping reason."""
    outcome: dict[int, str] = {}
    running = list(Campaign.select(Campaign.id).where(Campaign.status == "running").order_by(Campaign.id).tuples())
    for (cid,) in running:  # read first: drive writes (see `wanted`)
        if stop():
            break
        outcome[cid] = runs.drive(cid, channel_kinds, stop=stop)
    return outcome
