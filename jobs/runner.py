"""The scheduler service: APScheduler in the event loop, active only while it leads.

Why: jobs must run exactly once per database even with several processes, and resume
after a crash. The service renews its leadership every few seconds (`jobs.leader`: a
PostgreSQL advisory lock, or a lease row on SQLite); while it leads, the APScheduler
(AsyncIOScheduler) runs the jobs, each in a worker thread (the core blocks); when it loses
leadership it pauses, and a standby takes over within seconds.
Jobs take plain ids, have fixed ids and `replace_existing`, so scheduling twice replaces.
Every job body takes its time from `bot.core.clock.now()`, so tests drive them with a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.config import Config
from bot.ops.metrics import JOB_RUNS, LEADER
from jobs import leader

log = logging.getLogger("kefu.scheduler")

TAKE_OVER_AT_ONCE = ("campaigns-sync", "campaigns-drive")


@dataclass(frozen=True)
class JobDef:
    id: str
    fn: Callable[..., Any]
    trigger: Any
    args: tuple[Any, ...] = field(default=())


class SchedulerService:
    def __init__(self, config: Config, leadership: leader.Leadership | None = None,
                 renew_seconds: float | None = None) -> None:
        self.config = config
        self.tz = config.scheduler.timezone
        self.leadership = leadership or leader.for_database(config.database_url, config.scheduler.lease_seconds)
        self.renew_seconds = renew_seconds or max(config.scheduler.lease_seconds / 3, 0.2)
        self.scheduler = AsyncIOScheduler(timezone=self.tz)
        self.leading = False
        self._lease_task: asyncio.Task[None] | None = None
        self._kinds = {c.name: c.kind for c in config.channels}
        self._running: set[str] = set()

    def job_definitions(self) -> list[JobDef]:
        from jobs import birthdays, campaigns, coupons, levels, revisits, sla
        from bot.crm.pools import release_stale
        from jobs.housekeeping import run_housekeeping

        kinds, tz = self._kinds, self.tz
        return [
            JobDef("housekeeping", run_housekeeping, IntervalTrigger(minutes=1)),
            JobDef("campaigns-sync", self.sync_campaigns, IntervalTrigger(seconds=5)),
            JobDef("campaigns-drive", campaigns.drive_all, IntervalTrigger(seconds=2), (kinds, self.stopping)),
            JobDef("coupon-reminders", coupons.remind_expiring, CronTrigger(minute=5, timezone=tz), (kinds, tz)),
            JobDef("revisits", revisits.revisit_delivered, CronTrigger(minute=15, hour="9-20", timezone=tz), (kinds,)),
            JobDef("dormant-revisits", revisits.revisit_dormant, CronTrigger(minute=30, hour=11, timezone=tz), (kinds,)),
            JobDef("birthdays", birthdays.greet_birthdays, CronTrigger(minute=0, hour="9-20", timezone=tz), (kinds, tz)),
            JobDef("member-levels", levels.recompute_levels, CronTrigger(minute=30, hour=3, timezone=tz)),
            JobDef("pool-return", release_stale, CronTrigger(minute=45, hour=3, timezone=tz)),
            JobDef("agent-sla", sla.run_sla, IntervalTrigger(seconds=15)),
        ]

    def install(self) -> None:
        """Add (or replace) every fixed job; safe to call again."""
        for job in self.job_definitions():
            self.scheduler.add_job(self._in_thread(job.id, job.fn), job.trigger, args=list(job.args), id=job.id,
                                   name=job.id, replace_existing=True, coalesce=True, max_instances=2)

    def stopping(self) -> bool:
        """For long jobs: stop between batches once this process no longer leads."""
        return not self.leading

    def sync_campaigns(self) -> dict[str, int]:
        from jobs import campaigns

        return campaigns.sync(self.scheduler, self.tz, self._in_thread)

    async def start(self) -> None:
        self.scheduler.start(paused=True)
        self.install()
        await asyncio.to_thread(self.check_zone)
        self._lease_task = asyncio.get_running_loop().create_task(self._lease_loop(), name="scheduler-lease")

    def check_zone(self) -> bool:
        """Whether the job hours' zone (`[scheduler] timezone`) is the shop's (系统 → 营业时间,
        in which the panel shows times); a warning says so when not: birthdays, reminders and
        cron campaigns would then fire by another clock than the one the operator reads."""
        from bot.core import settings

        shop = str(settings.shop_zone())
        if shop == str(self.tz):
            return True
        log.warning("the scheduler's timezone %s is not the shop's (%s, set in the admin: 系统 → 营业时间): job "
                    "hours follow %s; set [scheduler] timezone = \"%s\" to match", self.tz, shop, self.tz, shop)
        return False

    def _in_thread(self, job_id: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def run(*args: Any) -> None:
            if not self.leading or job_id in self._running:  # a long run (a campaign) is still going
                return
            self._running.add(job_id)
            try:
                result = await asyncio.to_thread(fn, *args)
                JOB_RUNS.labels(job_id, "ok" if did_something(result) else "idle").inc()
                # every 2-15 s for the polling jobs: a line only when the run did something
                log.log(logging.INFO if did_something(result) else logging.DEBUG,
                        '{"event": "job", "job": "%s", "result": "%s"}', job_id, str(result).replace('"', "'"))
            except Exception:
                JOB_RUNS.labels(job_id, "failed").inc()
                log.exception("job %s failed", job_id)
            finally:
                self._running.discard(job_id)

        return run

    async def renew(self) -> bool:
        """One leadership round: acquire or keep it, resume or pause the jobs to match."""
        try:
            leading = await asyncio.to_thread(self.leadership.acquire)
        except Exception:
            log.exception("leadership renewal failed")
            leading = False
        LEADER.set(1 if leading else 0)
        if leading and not self.leading:
            log.info("scheduler is now the leader")
            self.leading = True
            self.scheduler.resume()
            now = datetime.now(self.scheduler.timezone)
            for job_id in TAKE_OVER_AT_ONCE:  # carry on an interrupted campaign without waiting
                if self.scheduler.get_job(job_id) is not None:
                    self.scheduler.modify_job(job_id, next_run_time=now)
        elif not leading and self.leading:
            log.warning("scheduler lost leadership; standing by")
            self.leading = False
            self.scheduler.pause()
        return leading

    async def _lease_loop(self) -> None:
        while True:
            await self.renew()
            await asyncio.sleep(self.renew_seconds)

    async def stop(self) -> None:
        if self._lease_task:
            self._lease_task.cancel()
            try:
                await self._lease_task
            except asyncio.CancelledError:
                pass
        self.leading = False
        LEADER.set(0)
        self.scheduler.shutdown(wait=False)
        await asyncio.to_thread(self.leadership.release)  # a standby's release only closes its connection


def did_something(result: Any) -> bool:
    """Whether a job's result reports work done: a count above zero, a non-empty list, or a
    mapping with any such value ({"reassigned": 0, "reminded": 0} and {} did nothing)."""
    if isinstance(result, Mapping):
        return any(did_something(value) for value in result.values())
    return bool(result)
