"""Async outbox delivery for channels whose sender speaks aiohttp (the WeChat family).

Why not `bot.sending.outbox.deliver_due` in a worker thread: a WeChat send is a network round
trip; at campaign scale the sends want to overlap on the event loop, not occupy one thread
each. The bookkeeping stays in the core: rows are claimed with `bot.sending.outbox.claim` and every
outcome is stored with `bot.sending.outbox.record` (both in a worker thread; outcomes that finish
together are stored in one transaction by `GroupRecorder`), so retries, back-off
and the window/limit states are decided in one place for every channel.

Rules:
- messages to one recipient go out in order (one at a time); recipients run concurrently;
- the platform's customer-service limits are checked before the API is called, by
  `bot.sending.send_window.prepare`, the same function the synchronous `bot.sending.outbox.deliver_due`
  uses: a sender with a `channel_kind` (公众号 `wechat_mp`, 微信客服 `wechat_kf`) has each
  row checked in a worker thread (the 48-hour window since the recipient's last message;
  on 微信客服 also 5 messages per customer message, parts counted). A send that cannot pass
  is recorded `window_closed` / `limit_reached` with no API call and without taking a
  rate-limit token; the errcodes 45015 / 45047 stay as the backstop. The count is exact
  within a process because a recipient's outcome is stored before its next row is
  checked; across processes two rows to one customer may still race (see send_window);
- a sender with `plan(content)` gets the plan the check counted as the third argument of
  `send`: a split text is cut once per attempt, and what is counted is what is sent;
- each channel is held to `rate_per_second` (a token bucket; 0 = unlimited);
- the attempt is recorded before the platform is called (`bot.sending.outbox.mark_attempts`), for
  the sends about to go out together in one UPDATE (`GroupCommit`: whoever finds it idle
  writes every mark waiting), after the send's check and rate-limit token, so a crash
  leaves at most the sends in flight in doubt; a row whose claim another sender took over
  is not sent;
- the claim is a short lease renewed every third of it while the batch is being sent
  (`bot.sending.outbox.renew`), so a dead sender's rows are picked up within seconds;
- stopping (`kefu serve` shutting down) lets in-flight sends finish and be recorded, and
  hands the rows not yet tried back to `pending`: nothing lost, nothing sent twice.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import defaultdict
from typing import Any, Awaitable, Callable, Generic, Mapping, Protocol, TypeVar

from bot.sending import outbox, send_window
from bot.core.models import Outbox
from bot.core.logs import request_scope
from bot.sending.results import SendResult

log = logging.getLogger("kefu.delivery")

RunBlocking = Callable[..., Awaitable[Any]]


class AsyncSender(Protocol):
    """Optionally also `channel_kind` and `plan` (see `bot.sending.outbox.Sender`)."""

    rate_per_second: float

    async def send(self, recipient: str, content: Mapping[str, Any]) -> SendResult: ...


def is_async_sender(sender: object) -> bool:
    return inspect.iscoroutinefunction(getattr(sender, "send", None))


class RateLimiter:
    """A token bucket: at most `rate` acquisitions per second, bursts of up to `rate`."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = max(rate, 1.0)
        self._stamp: float | None = None
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        if self.rate <= 0:
            return
        async with self._lock:
            loop = asyncio.get_running_loop()
            while True:
                now = loop.time()
                if self._stamp is not None:
                    self._tokens = min(max(self.rate, 1.0), self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self._tokens) / self.rate)


T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Writes items in groups: whoever finds the writer idle writes everything waiting in
    one call of `write` (in a worker thread), the others find theirs written (group
    commit). Each caller still waits for its own item's result, so nothing changes for it.
    `write(items)` returns one result per item, in order."""

    def __init__(self, run_blocking: RunBlocking, write: Callable[[list[T]], list[R]]) -> None:
        self.run_blocking = run_blocking
        self.write = write
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._lock = asyncio.Lock()

    async def submit(self, item: T) -> R:
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        async with self._lock:
            if not done.done():
                batch, self._waiting = self._waiting, []
                try:
                    results = await self.run_blocking(self.write, [it for it, _ in batch])
                except BaseException as exc:  # the others learn it too, instead of waiting forever
                    for _, waiter in batch:
                        if waiter.done():
                            continue
                        if isinstance(exc, Exception):
                            waiter.set_exception(exc)
                        else:
                            waiter.cancel()
                    if not done.cancelled():
                        done.exception()  # ours is raised below, not left unretrieved
                    raise
                for (_, waiter), result in zip(batch, results):
                    waiter.set_result(result)
        return await done


class GroupRecorder(GroupCommit[tuple[Outbox, SendResult], str]):
    """Send outcomes stored in groups (`bot.sending.outbox.record_many`, one transaction)."""

    def __init__(self, run_blocking: RunBlocking, max_attempts: int) -> None:
        super().__init__(run_blocking, lambda outcomes: outbox.record_many(outcomes, max_attempts))

    async def record(self, row: Outbox, result: SendResult) -> str:
        return await self.submit((row, result))


class AttemptMarker(GroupCommit[Outbox, bool]):
    """Attempts recorded before their calls, in groups (`bot.sending.outbox.mark_attempts`, one
    UPDATE): True when the row is ours to send."""

    def __init__(self, run_blocking: RunBlocking, lease_seconds: float) -> None:
        super().__init__(run_blocking, self._mark)
        self.lease_seconds = lease_seconds

    def _mark(self, rows: list[Outbox]) -> list[bool]:
        marked = outbox.mark_attempts(rows, self.lease_seconds)
        return [row.id in marked for row in rows]

    async def mark(self, row: Outbox) -> bool:
        return await self.submit(row)


class AsyncDelivery:
    def __init__(self, senders: Mapping[str, AsyncSender], run_blocking: RunBlocking, max_attempts: int = 8,
                 concurrency: int = 32, lease_seconds: float = outbox.LEASE_SECONDS) -> None:
        self.senders = dict(senders)
        self.run_blocking = run_blocking
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.limiters = {name: RateLimiter(float(getattr(s, "rate_per_second", 0) or 0))
                         for name, s in self.senders.items()}
        self._slots = asyncio.Semaphore(concurrency)
        self._stopping = False
        self._recorder = GroupRecorder(run_blocking, max_attempts)
        self._marker = AttemptMarker(run_blocking, lease_seconds)

    async def deliver_due(self, limit: int = 100) -> int:
        """Claim due rows for these channels and deliver them; how many were claimed."""
        if not self.senders:
            return 0
        rows: list[Outbox] = await self.run_blocking(outbox.claim, limit, tuple(self.senders), self.lease_seconds)
        if not rows:
            return 0
        queues: dict[tuple[str, str], list[Outbox]] = defaultdict(list)
        for row in rows:
            queues[(row.channel, row.recipient)].append(row)
        untried = {row.id for row in rows}
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._deliver_queue(queue, untried)) for queue in queues.values()]
        renewing = loop.create_task(self._renew({str(row.claim_token) for row in rows}))
        try:
            await asyncio.wait(tasks)
        except asyncio.CancelledError:
            # shutting down: finish what is in flight, give back what was not tried
            self._stopping = True
            await asyncio.wait(tasks, timeout=15)
            await self.run_blocking(outbox.release, sorted(untried))
            raise
        finally:
            renewing.cancel()
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                log.error("delivery queue failed", exc_info=task.exception())
        return len(rows)

    async def _deliver_queue(self, rows: list[Outbox], untried: set[int]) -> None:
        for row in rows:
            if self._stopping:
                return
            untried.discard(row.id)
            await self.deliver_one(row)

    async def deliver_one(self, row: Outbox) -> str:
        """Send one claimed row and store its outcome, logged under the request id of the
        message that caused it (this task's context, and the worker threads it calls)."""
        with request_scope(row.request_id):
            status = await self._deliver_one(row)
            if status != "taken over":
                outbox.log_outcome(row, status)
            return status

    async def _deliver_one(self, row: Outbox) -> str:
        sender = self.senders[row.channel]
        content = row.content or {}
        async with self._slots:
            prepared = await self._prepare(row, sender, content)
            result = prepared.refusal
            if result is None:
                await self.limiters[row.channel].acquire()
                if not await self._marker.mark(row):
                    return "taken over"  # another sender holds the row now: it sends it
                try:
                    result = await sender.send(*prepared.send_args(row.recipient, content))
                except Exception as exc:  # network error or a sender bug: retry later, keep the row
                    log.warning("send to %s raised %s: %s", row.channel, type(exc).__name__, exc)
                    result = SendResult("retry", f"{type(exc).__name__}: {exc}")
        return await self._recorder.record(row, result)

    async def _renew(self, tokens: set[str]) -> None:
        """Keep the batch's lease while it is being sent (cancelled when it is done)."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                await self.run_blocking(outbox.renew, tokens, self.lease_seconds)
            except Exception as exc:  # a busy database: the next renewal may pass
                log.warning("renewing the outbox claim failed: %s: %s", type(exc).__name__, exc)

    async def _prepare(self, row: Outbox, sender: AsyncSender, content: Mapping[str, Any]) -> send_window.Prepared:
        """The plan and the platform's send limits (`bot.sending.send_window.prepare`): in a worker
        thread when it reads the database, inline when there is nothing to check."""
        if not send_window.applies(sender, content):
            return send_window.prepare(row.channel, row.recipient, content, sender)
        return await self.run_blocking(send_window.prepare, row.channel, row.recipient, content, sender)
