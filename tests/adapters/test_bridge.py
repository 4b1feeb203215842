"""The bridge's wait for a batch (adapters/bridge.py `_done_within`): in time it says so, late
it says so without cancelling the batch's future, and a request cancelled meanwhile (the
client went away) leaves the future to its batch."""

from __future__ import annotations

import asyncio

from adapters.bridge import _done_within


async def test_a_future_done_in_time_is_reported_done() -> None:
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    loop.call_later(0.01, future.set_result, "answer")
    assert await _done_within(future, 5.0) is True
    assert future.result() == "answer"
    assert await _done_within(future, 0.0) is True  # done already: no waiting


async def test_late_is_reported_and_the_future_still_finishes() -> None:
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    assert await _done_within(future, 0.01) is False
    assert not future.cancelled()
    future.set_result("late answer")  # the batch still delivers it (through the outbox)
    assert await future == "late answer"


async def test_a_cancelled_request_leaves_the_future_to_its_batch() -> None:
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    waiting = asyncio.ensure_future(_done_within(future, 5.0))
    await asyncio.sleep(0.01)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert waiting.cancelled() and not future.done()
    future.set_result("still decided")
    assert future.result() == "still decided"
