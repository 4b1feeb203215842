"""Web chat polls that wait for the next message (issue 22: an agent's reply on the customer's
screen within moments, not at the page's next 2-second poll).

Why a waiting poll rather than a socket: the chat API stays the one JSON endpoint it is (the
page, `kefu chat` and any shop's own widget poll it), and a poll asked to wait
(`&wait=25`) is answered as soon as something is theirs. In this process that is when the
outbox makes a send visible to them (`bot.core.changes.delivered`); a send another process
delivered is found by re-reading every `RECHECK_SECONDS`, so it is never later than the old
poll was.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from bot.core import changes

RECHECK_SECONDS = 2.0
MAX_WAIT_SECONDS = 30


class Waiters:
    """The waiting polls of one web channel, by visitor."""

    def __init__(self, channel: str) -> None:
        self.channel = channel
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def _delivered(self, channel: str, recipient: str) -> None:
        """From the outbox's thread: wake that visitor's waiting polls, if any are here."""
        loop = self._loop
        if channel == self.channel and recipient in self._waiting and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake, recipient)

    def _wake(self, user_id: str) -> None:
        for event in self._waiting.get(user_id, ()):
            event.set()

    async def until_new(self, user_id: str, seconds: float, read: Callable[[], Awaitable[list]]) -> list:
        """`read()` again each time something may be new for `user_id`, until it finds rows
        or `seconds` pass (then the empty list)."""
        if self._unsubscribe is None:
            self._loop = asyncio.get_running_loop()
            self._unsubscribe = changes.subscribe_delivered(self._delivered)
        loop = asyncio.get_running_loop()
        ends = loop.time() + min(seconds, MAX_WAIT_SECONDS)
        event = asyncio.Event()
        self._waiting.setdefault(user_id, set()).add(event)
        try:
            while True:
                left = ends - loop.time()
                if left <= 0:
                    return []
                try:
                    await asyncio.wait_for(event.wait(), min(RECHECK_SECONDS, left))
                except asyncio.TimeoutError:
                    pass
                event.clear()
                rows = await read()
                if rows:
                    return rows
        finally:
            mine = self._waiting.get(user_id)
            if mine is not None:
                mine.discard(event)
                if not mine:
                    del self._waiting[user_id]

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
