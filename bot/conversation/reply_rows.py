"""The reply rows of a batch, written in one statement just before its commit.

Why: every message the bot answers stores at least one reply row, and on PostgreSQL each
insert is a round trip (a quarter of a batch's time, 0.37 of 1.5 ms a message, measured
with the mixed load) while the batch holds its one transaction open. In a batch
(`adapters.group_commit.decide_batch`) the dispatcher builds each reply row and hands it
here (`defer`); `flush` inserts them all at once (ids matched back by their unique key
`re:<inbound id>:<n>`), queues the ones for other people in the outbox, and fills in each
message's inline replies (which carry the rows' ids). The batch flushes before it decides a
message that could read rows still held here: one whose sender has another message in the
batch, a copy of a message stored earlier, an agent's or a WeCom event (see
`decide_batch`); a lone customer's message reads only its own conversation's rows, all
written by earlier batches. Outside a batch nothing is held: `defer` is never called.

Held per thread: a transaction, and all of its messages, runs on one thread. A batch
rolled back drops what it held (`discard`), as its transaction drops what it wrote.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

from bot.core.db import insert_rows
from bot.core.models import Message
from bot.sending import outbox

CHUNK = 100  # rows a statement: a batch of 64 messages with a queue update each stays far under the drivers' limits


@dataclass
class _Held:
    rows: list[tuple[Message, str | None]] = field(default_factory=list)  # (row, request id of its message)
    done: list[Callable[[], None]] = field(default_factory=list)  # run once the rows have their ids
    deferring: bool = False


_local = threading.local()


def _held() -> _Held:
    held = getattr(_local, "held", None)
    if held is None:
        held = _local.held = _Held()
    return held


def begin() -> None:
    """This thread's transaction is a batch: reply rows are held until `flush`."""
    held = _held()
    held.rows.clear()
    held.done.clear()
    held.deferring = True


def deferring() -> bool:
    return _held().deferring


def defer(row: Message, request_id: str | None) -> None:
    """Hold an unsaved reply row (a `queued` one is queued in the outbox at the flush, under
    its message's request id)."""
    _held().rows.append((row, request_id))


def when_written(callback: Callable[[], None]) -> None:
    """Run `callback` once the held rows have their ids (at once when nothing is held)."""
    held = _held()
    if held.rows:
        held.done.append(callback)
    else:
        callback()


def flush() -> None:
    """Insert the held rows (in the order they were built, so a message's replies keep their
    order), queue the `queued` ones in the outbox, then run the callbacks."""
    held = _held()
    rows, done = list(held.rows), list(held.done)
    held.rows.clear()
    held.done.clear()
    for start in range(0, len(rows), CHUNK):
        chunk = [row for row, _ in rows[start:start + CHUNK]]
        if not insert_rows(chunk):
            raise RuntimeError("a reply row of the batch could not be stored")
    for row, request_id in rows:
        if row.state == "queued":
            outbox.enqueue(f"msg:{row.id}", row.channel, row.peer_id, row.payload, message=row, request_id=request_id)
    for callback in done:
        callback()


def discard() -> None:
    """Drop what is held and stop holding (the batch ended: committed or rolled back)."""
    held = _held()
    held.rows.clear()
    held.done.clear()
    held.deferring = False
