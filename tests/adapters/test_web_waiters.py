"""adapters/web_waiters.py without a server: the window between a poll's first read and its wait."""

import asyncio
import threading

from adapters import web_waiters
from adapters.web_waiters import Waiters
from bot.core import changes


async def _nobody_new(user_ids: list[str]) -> dict[str, int]:
    return {}


def _deliver_from_another_thread(channel: str, recipient: str) -> None:
    """As the outbox's sender does: `changes.delivered` on its own thread."""
    sender = threading.Thread(target=changes.delivered, args=(channel, recipient))
    sender.start()
    sender.join()


async def test_a_delivery_between_the_first_read_and_the_wait_answers_at_once(monkeypatch) -> None:
    """The reply lands after the poll's first read found nothing but before the poll waits:
    the poll reads again at once, not at the sweep (set far away here) or its wait's end."""
    monkeypatch.setattr(web_waiters, "RECHECK_SECONDS", 60.0)
    waiters = Waiters("web", _nobody_new)
    try:
        delivered: list[str] = []

        async def read() -> list[str]:
            return list(delivered)

        mark = waiters.mark()
        assert await read() == []  # the poll's first read: nothing yet
        delivered.append("客服的回复")
        _deliver_from_another_thread("web", "visitor-1")
        await asyncio.sleep(0.05)  # the loop hears of it before the poll registers
        rows = await asyncio.wait_for(waiters.until_new("visitor-1", 0, 30, read, mark), 5)
        assert rows == ["客服的回复"]
    finally:
        waiters.close()


async def test_a_delivery_to_someone_else_or_before_the_mark_does_not_wake(monkeypatch) -> None:
    """Only a delivery to this visitor after the mark counts; otherwise the poll waits out."""
    monkeypatch.setattr(web_waiters, "RECHECK_SECONDS", 60.0)
    waiters = Waiters("web", _nobody_new)
    reads = 0

    async def read() -> list[str]:
        nonlocal reads
        reads += 1
        return []

    try:
        waiters.mark()
        _deliver_from_another_thread("web", "visitor-1")  # before the mark below: its read saw it
        await asyncio.sleep(0.05)
        mark = waiters.mark()
        _deliver_from_another_thread("web", "visitor-2")
        _deliver_from_another_thread("other-channel", "visitor-1")
        await asyncio.sleep(0.05)
        assert await waiters.until_new("visitor-1", 0, 1, read, mark) == []
        assert reads == 0
    finally:
        waiters.close()


async def test_the_recent_deliveries_kept_are_bounded(monkeypatch) -> None:
    monkeypatch.setattr(web_waiters, "RECENT_KEPT", 3)
    waiters = Waiters("web", _nobody_new)
    try:
        waiters.mark()
        for k in range(10):
            _deliver_from_another_thread("web", f"visitor-{k}")
        await asyncio.sleep(0.05)
        assert list(waiters._recent) == ["visitor-7", "visitor-8", "visitor-9"]
    finally:
        waiters.close()
