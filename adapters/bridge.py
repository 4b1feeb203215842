"""The bridge from the event loop to the synchronous core.

Why: the core (peewee, wechatpy-free decisions) blocks, so it runs in a thread pool sized by
`server.workers`; the loop never blocks. `dispatch` races the handler against the adapter's
deadline (aiogram's feed_webhook_update pattern), the messages of the moment decided and
committed together (adapters/group_commit.py): in time, the replies are returned for the
HTTP body; late, the request gives up (`ReplySlot.abandon`) and the dispatcher sends them
through the outbox instead, so a reply is delivered exactly once either way.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from adapters.group_commit import GroupCommit
from bot.conversation.dispatcher import Dispatcher, ReplySlot, Result
from bot.core import changes
from bot.core.events import Inbound
from bot.ops.metrics import LATE

T = TypeVar("T")
log = logging.getLogger("kefu.bridge")


class CoreBridge:
    def __init__(self, dispatcher: Dispatcher, workers: int = 8) -> None:
        self.dispatcher = dispatcher
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kefu-core")
        # one batch at a time, as many messages as have come (see GroupCommit)
        self.group_commit = GroupCommit(dispatcher, self.executor)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a blocking core function off the event loop."""
        # in a copy of the caller's context: the request id (bot.core.logs) follows into the core
        run = functools.partial(contextvars.copy_context().run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, run)

    async def dispatch(self, inbound: Inbound, deadline_seconds: float) -> Result | None:
        """The dispatcher's result when ready in time; None when late (the outbox has it)."""
        slot = ReplySlot()
        future = self.group_commit.submit(inbound, slot)  # decided with the messages arriving meanwhile
        future.add_done_callback(_nudge_watchers)
        if not await _done_within(future, deadline_seconds) and slot.abandon():
            LATE.labels(inbound.channel).inc()
            future.add_done_callback(_log_failure)
            return None
        return await future  # done; or taken inline an instant before the deadline: finish it

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=False)


async def _done_within(future: "asyncio.Future[Result]", seconds: float) -> bool:
    """Whether `future` is done within `seconds`, never cancelling it (its batch owns it; a
    request that gives up leaves it to finish): `wait_for(shield(future))` without the
    shield's second future and the timeout's exception, every message."""
    if future.done():
        return True
    waiter = asyncio.get_running_loop().create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = waiter.get_loop().call_later(seconds, wake)
    future.add_done_callback(wake)
    try:
        await waiter
    finally:
        timer.cancel()
        future.remove_done_callback(wake)
    return future.done()


def _nudge_watchers(future: "asyncio.Future[Result]") -> None:
    """A handled message is committed: a live workbench in this process looks now (bot.core.changes)."""
    changes.changed()


def _log_failure(future: "asyncio.Future[Result]") -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("late handler failed", exc_info=future.exception())
