"""The scheduler service: APScheduler in the event loop, active only while it leads.

Why: jobs must run exactly once per database even with several processes, and resume
after a crash. The service renews a lease every few seconds; while it holds it, the
APScheduler (AsyncIOScheduler) runs the jobs, each in a worker thread (the core blocks);
when it loses the lease it pauses, and a standby takes over within `lease_seconds`.
Jobs are added with fixed ids and `replace_existing`, so scheduling twice replaces.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import Config
from jobs import leader
from jobs.housekeeping import run_housekeeping

log = logging.getLogger("kefu.scheduler")


class SchedulerService:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.holder = leader.holder_id()
        self.scheduler = AsyncIOScheduler(timezone=config.scheduler.timezone)
        self.leading = False
        self._lease_task: asyncio.Task[None] | None = None

    def job_definitions(self) -> list[tuple[str, Callable[[], Any], Any]]:
        return [("housekeeping", run_housekeeping, IntervalTrigger(minutes=1))]

    async def start(self) -> None:
        for job_id, fn, trigger in self.job_definitions():
            self.scheduler.add_job(self._in_thread(job_id, fn), trigger, id=job_id, name=job_id,
                                   replace_existing=True, coalesce=True, max_instances=1)
        self.scheduler.start(paused=True)
        self._lease_task = asyncio.get_running_loop().create_task(self._lease_loop(), name="scheduler-lease")

    def _in_thread(self, job_id: str, fn: Callable[[], Any]) -> Callable[[], Any]:
        async def run() -> None:
            if not self.leading:
                return
            try:
                result = await asyncio.to_thread(fn)
                log.info('{"event": "job", "job": "%s", "result": "%s"}', job_id, str(result).replace('"', "'"))
            except Exception:
                log.exception("job %s failed", job_id)

        return run

    async def _lease_loop(self) -> None:
        seconds = self.config.scheduler.lease_seconds
        while True:
            try:
                leading = await asyncio.to_thread(leader.try_acquire, self.holder, seconds)
            except Exception:
                log.exception("lease renewal failed")
                leading = False
            if leading and not self.leading:
                log.info("scheduler %s is now the leader", self.holder)
                self.scheduler.resume()
            elif not leading and self.leading:
                log.warning("scheduler %s lost the lease; standing by", self.holder)
                self.scheduler.pause()
            self.leading = leading
            await asyncio.sleep(max(seconds / 3, 0.2))

    async def stop(self) -> None:
        if self._lease_task:
            self._lease_task.cancel()
            try:
                await self._lease_task
            except asyncio.CancelledError:
                pass
        self.scheduler.shutdown(wait=False)
        if self.leading:
            await asyncio.to_thread(leader.release, self.holder)
        self.leading = False
