"""Web chat polls that wait for the next message (issue 22: an agent's reply on the customer's
screen within moments, not at the page's next 2-second poll).

Why a waiting poll rather than a socket: the chat API stays the one JSON endpoint it is (the
page, `kefu chat` and any shop's own widget poll it), and a poll asked to wait
(`&wait=25`) is answered as soon as something is theirs. In this process that is when the
outbox makes a send visible to them (`bot.core.changes.delivered`); a send another process
delivered is found by one sweep every `RECHECK_SECONDS` for all the channel's waiting polls
together (`newest`: each waiting visitor's newest visible message id), so it is never later
than the old 2-second poll was, and 200 waiting visitors cost one query per sweep, not 200
re-reads (measured: the re-reads were 100 queries a second of the 200-customer bench).

A delivery can land between a poll's first read (nothing yet) and its wait: the poll is not
registered yet, so that wake would find nobody and the visitor would wait for the sweep (up
to 2 s: the 200-customer bench's p95 from reply to screen was 500 ms for it). So every
delivery here is numbered (`mark`), each visitor's last number is kept a while (`_recent`),
and a poll that registers after a delivery newer than the mark it took before its first read
reads again at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from bot.core import changes

RECHECK_SECONDS = 2.0
MAX_WAIT_SECONDS = 30
RECENT_KEPT = 4096  # visitors whose last delivery number is kept (a poll's first read takes milliseconds)
log = logging.getLogger("kefu.web_waiters")

# the newest visible message id of each of these visitors (those with none left out)
Newest = Callable[[list[str]], Awaitable[dict[str, int]]]


class Waiters:
    """The waiting polls of one web channel, by visitor: each waits for an id above its own."""

    def __init__(self, channel: str, newest: Newest) -> None:
        self.channel = channel
        self.newest = newest
        self._waiting: dict[str, dict[asyncio.Event, int]] = {}  # visitor -> {poll's event: its `after`}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._someone = asyncio.Event()
        self._deliveries = 0  # deliveries to this channel's visitors seen in this process
        self._recent: dict[str, int] = {}  # visitor -> number of their last delivery

    def listen(self) -> None:
        """Hear this process's deliveries (called on the loop before the first poll's read)."""
        if self._unsubscribe is None:
            self._loop = asyncio.get_running_loop()
            self._unsubscribe = changes.subscribe_delivered(self._delivered)
            self._sweeper = self._loop.create_task(self._sweep())

    def mark(self) -> int:
        """The number of the last delivery seen: take it before a poll's first read."""
        self.listen()
        return self._deliveries

    def _delivered(self, channel: str, recipient: str) -> None:
        """From the outbox's thread: number the delivery and wake that visitor's waiting polls."""
        loop = self._loop
        if channel == self.channel and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._note, recipient)

    def _note(self, recipient: str) -> None:
        self._deliveries += 1
        self._recent.pop(recipient, None)  # re-inserted last: the dict stays in delivery order
        self._recent[recipient] = self._deliveries
        if len(self._recent) > RECENT_KEPT:
            del self._recent[next(iter(self._recent))]
        self._wake(recipient)

    def _wake(self, user_id: str, above: int = -1) -> None:
        for event, after in self._waiting.get(user_id, {}).items():
            if above > after or above < 0:
                event.set()

    async def _sweep(self) -> None:
        """Every `RECHECK_SECONDS` while anyone waits: one read for all of them; a poll whose
        visitor has a message above its `after` is woken (it then reads its rows)."""
        while True:
            if not self._waiting:
                self._someone.clear()
                await self._someone.wait()
            await asyncio.sleep(RECHECK_SECONDS)
            if not self._waiting:
                continue
            try:
                found = await self.newest(sorted(self._waiting))
            except Exception:
                log.exception("web chat: checking waiting polls failed")
                continue
            for user_id, newest in found.items():
                self._wake(user_id, newest)

    async def until_new(self, user_id: str, after: int, seconds: float, read: Callable[[], Awaitable[list]],
                        mark: int | None = None) -> list:
        """`read()` again each time something may be new for `user_id` (a message above
        `after`), until it finds rows or `seconds` pass (then the empty list). `mark`: what
        `mark()` said before the caller's own first read (a delivery since is read at once)."""
        self.listen()
        loop = asyncio.get_running_loop()
        ends = loop.time() + min(seconds, MAX_WAIT_SECONDS)
        event = asyncio.Event()
        self._waiting.setdefault(user_id, {})[event] = after
        self._someone.set()
        if mark is not None and self._recent.get(user_id, 0) > mark:
            event.set()  # delivered between the first read and now
        try:
            while True:
                left = ends - loop.time()
                if left <= 0:
                    return []
                try:
                    await asyncio.wait_for(event.wait(), left)
                except asyncio.TimeoutError:
                    return []
                event.clear()
                rows = await read()
                if rows:
                    return rows
        finally:
            mine = self._waiting.get(user_id)
            if mine is not None:
                mine.pop(event, None)
                if not mine:
                    del self._waiting[user_id]

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
