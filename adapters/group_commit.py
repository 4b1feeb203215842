"""Group commit: the messages that arrive together are decided and committed together.

Why: one transaction per message pays a commit (PostgreSQL: a WAL flush and a round trip;
SQLite: a WAL append) and a thread-pool hop per message, and eight worker threads on one
core only fight for the GIL and the database's locks. Here the event loop queues every
dispatched message; one runner at a time hands the queue, up to `max_batch` messages, to
one worker thread, which decides them in one transaction
(`bot.conversation.dispatcher.Dispatcher.decide`; a duplicate or a failure costs only its own
message: see `decide_batch`) and commits once. Messages arriving meanwhile form the next
batch, so the batch grows with the load and a lone message waits for nobody. The same on
SQLite and PostgreSQL: on PostgreSQL one-message transactions side by side (eight runners)
cost 1.2-1.4 ms of kefu's CPU a message against 0.8-1.1 batched, and a retry storm made
each retry wait for its first delivery's row lock (133 against 419 messages/s; README).

Exactly once, as before: every inbound row and every reply keeps its unique key; a retry
in the same batch is not decided again: it gets the first delivery's replies
(`Dispatcher.repeat`, what reading them back would give), and a retry of a message stored
before finds its row and replays its reply; nobody is answered before the batch's commit.
If the commit itself fails, every message of the batch is decided again alone
(`Dispatcher.decide`): one whose commit did happen after all is then a duplicate and
replays its reply.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections import Counter
from concurrent.futures import Executor
from dataclasses import dataclass, field

from bot.conversation import faq_hits, held_rows
from bot.conversation.dispatcher import Dispatcher, ReplySlot, Result, Unisolated
from bot.core.db import transaction
from bot.core.events import Inbound

log = logging.getLogger("kefu.group_commit")

MAX_BATCH = 64  # at ~1 ms a message, a batch holds the write lock for at most ~64 ms


@dataclass
class Pending:
    """One dispatched message waiting for its batch."""

    inbound: Inbound
    slot: ReplySlot | None
    future: "asyncio.Future[Result]"
    context: contextvars.Context = field(default_factory=contextvars.copy_context)  # its request id


class GroupCommit:
    """One batch in flight at a time: SQLite's writer lock lets one transaction write at a
    time anyway, and two batches of one process side by side on PostgreSQL could deadlock on
    the rows every answer touches (an FAQ's hit count, a customer writing twice) taken in
    different orders. (Two runners, each owning a share of the senders, answered 15-25 %
    more on PostgreSQL, the waits of one overlapping the other's CPU; not taken for that
    risk: see the README.)"""

    def __init__(self, dispatcher: Dispatcher, executor: Executor, max_batch: int = MAX_BATCH) -> None:
        self.dispatcher = dispatcher
        self.executor = executor
        self.max_batch = max_batch
        self._queue: list[Pending] = []
        self._running: set[asyncio.Task[None]] = set()

    def submit(self, inbound: Inbound, slot: ReplySlot | None) -> "asyncio.Future[Result]":
        """Queue a message; the future has its result once its batch has committed."""
        loop = asyncio.get_running_loop()
        pending = Pending(inbound, slot, loop.create_future())
        self._queue.append(pending)
        if not self._running:  # a runner lives while there is work, and is owned here
            runner = loop.create_task(self._run(), name="kefu-group-commit")
            self._running.add(runner)
            runner.add_done_callback(self._running.discard)
        return pending.future

    async def drain(self) -> None:
        """Wait for the queued messages (shutdown)."""
        if self._running:
            await asyncio.shield(asyncio.gather(*self._running, return_exceptions=True))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(0)  # requests read in this turn of the loop join the first batch
            while self._queue:
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                try:
                    outcomes = await loop.run_in_executor(self.executor, decide_batch, self.dispatcher, batch)
                except BaseException as exc:  # the batch could not run at all: each message fails
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(exc))
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                for pending, outcome in zip(batch, outcomes):
                    if pending.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        pending.future.set_exception(outcome)
                    else:
                        pending.future.set_result(outcome)
        finally:
            self._running.discard(asyncio.current_task())  # type: ignore[arg-type]


def decide_batch(dispatcher: Dispatcher, batch: list[Pending]) -> list[Result | BaseException]:
    """Decide the batch in one transaction (a worker thread); each message's result or error.

    Which messages are stored already is read first (`Dispatcher.stored_keys`): those are
    replayed, the others decided without a savepoint each (two statements, round trips on
    PostgreSQL, fewer a message). On SQLite the batch's transaction holds the write lock
    from its first statement, so that look is the truth; on PostgreSQL another process may
    store one of the messages after it, or deadlock with this batch on rows both touch.
    Should a message fail, or turn out stored after all, the transaction is rolled back and
    every message of the batch is decided again alone (`Dispatcher.decide` in its own
    transaction), so a failure costs only its own message, and a message stored meanwhile
    by another process is then a duplicate that replays its reply. An error of the
    transaction itself (the commit) sends every message through `decide` alone too.

    The batch's reply rows and unanswered questions are written together just before the
    commit (`bot.conversation.held_rows`: one insert a table where there were one a row);
    before a message that could read them (its sender's second in the batch, a copy of one
    stored earlier in the batch, an agent's or a WeCom event's) they are written first."""
    dispatcher.refresh()  # outside the write transaction, once per batch (see Dispatcher.refresh)
    if len(batch) == 1:  # alone: its own transaction, no savepoint
        return [_alone(dispatcher, batch[0])]
    outcomes: list[Result | BaseException] = []
    decided: dict[tuple[str, str, str], Result] = {}  # a copy of one of these is a retry: replayed
    faq_hits.reset()  # nothing counted outside a transaction is this batch's
    try:
        with transaction():
            stored = dispatcher.stored_keys([p.inbound for p in batch])
            committed = frozenset(stored)  # stored by earlier transactions: their replies are all written
            try:  # their customers, open conversations and inbound rows
                known = dispatcher.known_senders(_lone_senders(batch, stored))
            except Unisolated as exc:  # one of them stored by another process after the look
                raise _Undo from exc
            held_rows.begin()  # its replies and unanswered questions, written together before the commit
            for pending in batch:
                inbound = pending.inbound
                stored_key = inbound.stored_key
                key = (*stored_key, inbound.user_id)
                first = decided.get(key)
                if first is not None:  # WeChat's retry in the same batch: its first delivery's replies
                    outcome = pending.context.run(dispatcher.repeat, inbound, first)
                    held_rows.when_written(functools.partial(_same_replies, outcome, first))
                    outcomes.append(outcome)
                    continue
                if stored_key in stored:  # stored before, or earlier in this batch by another sender
                    if stored_key not in committed:  # its replies may be held: written first
                        _flush()
                    outcomes.append(pending.context.run(dispatcher.duplicate, inbound))
                    continue
                sender = known.get((inbound.channel, inbound.user_id))
                if sender is None:  # it may read rows held back (see held_rows): written first
                    _flush()
                try:
                    outcome = pending.context.run(dispatcher.decide, inbound, pending.slot, sender)
                except Exception as exc:  # noqa: BLE001 - the batch is redone alone: see the docstring
                    raise _Undo from exc
                outcomes.append(outcome)
                decided[key] = outcome
                stored.add(stored_key)
            _flush()
            faq_hits.write()  # the batch's FAQ hits, one statement per FAQ, just before the commit
    except _Undo as undo:
        log.warning("a batch of %d messages rolled back (%r); deciding them one by one", len(batch), undo.__cause__)
        faq_hits.reset()  # rolled back with the batch
        held_rows.discard()
        return [_alone(dispatcher, pending) for pending in batch]
    except Exception:  # noqa: BLE001 - the commit failed: nothing of the batch is known to be stored
        log.exception("a batch of %d messages failed to commit; deciding them one by one", len(batch))
        faq_hits.reset()  # rolled back with the batch
        held_rows.discard()
        return [_alone(dispatcher, pending) for pending in batch]
    finally:
        held_rows.discard()  # whatever ended the batch: this thread's next message is not held
    return outcomes


def _flush() -> None:
    try:
        held_rows.flush()
    except Exception as exc:  # noqa: BLE001 - the batch is redone alone: see decide_batch
        raise _Undo from exc


def _same_replies(copy: Result, first: Result) -> None:
    copy.replies = list(first.replies)


def _lone_senders(batch: list[Pending], stored: set[tuple[str, str]]) -> list[Inbound]:
    """The batch's new messages (not stored, the first of their copies) whose sender has no
    other new message in it: their customer rows and open conversations can be read (and
    touched) together before deciding, as nothing decided earlier in the batch changes them."""
    first: dict[tuple[str, str], Inbound] = {}
    for pending in batch:
        inbound = pending.inbound
        first.setdefault(inbound.stored_key, inbound)
    fresh = [inbound for key, inbound in first.items() if key not in stored]
    senders = Counter((inbound.channel, inbound.user_id) for inbound in fresh)
    return [inbound for inbound in fresh if senders[(inbound.channel, inbound.user_id)] == 1]


class _Undo(Exception):
    """A message of a batch failed without a savepoint of its own: roll the batch back."""


def _alone(dispatcher: Dispatcher, pending: Pending) -> Result | BaseException:
    try:
        return pending.context.run(dispatcher.decide, pending.inbound, pending.slot)
    except Exception as exc:  # noqa: BLE001
        return exc
