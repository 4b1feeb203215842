"""Rows a batch writes together, in one statement per table, just before its commit.

Why: every message the bot answers stores at least one reply row, every question it cannot
answer an unanswered-question row and its conversation's count of unanswered turns, and on
PostgreSQL each statement is a round trip while the batch holds its one transaction open
(the reply inserts alone were a quarter of a batch's time: 0.37 of 1.5 ms a message with
the mixed load). In a batch (`adapters.group_commit.decide_batch`) the dispatcher and the
router hand those rows here; `flush` writes them, a statement per table: the replies first
(their ids matched back by their unique key `re:<inbound id>:<n>`), then queues the replies
for other people in the outbox and fills in each message's inline replies (which carry the
rows' ids), then inserts the rows nobody needs an id of, then sets the held columns (one
CASE a column). The batch flushes before it decides a message that could read what is
still held: one whose sender has another message in the batch, a copy of a message stored
earlier in the batch, an agent's or a WeCom event (see `decide_batch`); a lone customer's message reads
only its own conversation's rows, all written by earlier batches. Outside a batch nothing
is held: everything is written at once.

Held per thread: a transaction, and all of its messages, runs on one thread. A batch
rolled back drops what it held (`discard`), as its transaction drops what it wrote.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable

import peewee

from bot.core.db import execute, insert_all, insert_row, insert_rows
from bot.core.models import Message
from bot.sending import outbox

CHUNK = 100  # rows a statement: a batch of 64 messages with a queue update each stays far under the drivers' limits


@dataclass
class _Held:
    replies: list[tuple[Message, str | None]] = field(default_factory=list)  # (row, request id of its message)
    others: list[peewee.Model] = field(default_factory=list)  # rows nobody reads an id of
    updates: dict[tuple[str, str], dict[int, object]] = field(default_factory=dict)  # (table, column) -> id -> value
    done: list[Callable[[], None]] = field(default_factory=list)  # run once the replies have their ids
    holding: bool = False


_local = threading.local()


def _held() -> _Held:
    held = getattr(_local, "held", None)
    if held is None:
        held = _local.held = _Held()
    return held


def _reset(holding: bool) -> None:
    held = _held()
    held.replies.clear()
    held.others.clear()
    held.updates.clear()
    held.done.clear()
    held.holding = holding


def begin() -> None:
    """This thread's transaction is a batch: rows are held until `flush`."""
    _reset(holding=True)


def holding() -> bool:
    return _held().holding


def reply(row: Message, request_id: str | None) -> None:
    """Hold an unsaved reply row (a `queued` one is queued in the outbox at the flush, under
    its message's request id). Only while `holding`."""
    _held().replies.append((row, request_id))


def insert(row: peewee.Model) -> None:
    """Insert a new row whose id nobody reads: held in a batch, at once outside one."""
    held = _held()
    if held.holding:
        held.others.append(row)
    else:
        insert_row(row)


def update(model: type[peewee.Model], column: str, row_id: int, value: int | str | None) -> None:
    """Set one column of one row: held in a batch (the last value set wins), at once outside
    one. Only for a row this transaction holds already (a conversation its message touched),
    so holding adds no lock, and for a column nothing in the batch reads back from the
    database before the flush."""
    held = _held()
    table = model._meta.table_name
    if held.holding:
        held.updates.setdefault((table, column), {})[row_id] = value
    else:
        execute(f'UPDATE "{table}" SET "{column}" = ? WHERE "id" = ?', (value, row_id))


def when_written(callback: Callable[[], None]) -> None:
    """Run `callback` once the held replies have their ids (at once when none is held)."""
    held = _held()
    if held.replies:
        held.done.append(callback)
    else:
        callback()


def flush() -> None:
    """Insert the held replies (in the order they were built, so a message's replies keep
    their order), queue the `queued` ones in the outbox, run the callbacks, then insert the
    other rows, one statement per table."""
    held = _held()
    replies, done, others, updates = list(held.replies), list(held.done), list(held.others), dict(held.updates)
    held.replies.clear()
    held.done.clear()
    held.others.clear()
    held.updates.clear()
    for start in range(0, len(replies), CHUNK):
        if not insert_rows([row for row, _ in replies[start:start + CHUNK]]):
            raise RuntimeError("a reply row of the batch could not be stored")
    for row, request_id in replies:
        if row.state == "queued":
            outbox.enqueue(f"msg:{row.id}", row.channel, row.peer_id, row.payload, message=row, request_id=request_id)
    for callback in done:
        callback()
    by_table: dict[type[peewee.Model], list[peewee.Model]] = {}
    for row in others:
        by_table.setdefault(type(row), []).append(row)
    for rows in by_table.values():
        for start in range(0, len(rows), CHUNK):
            insert_all(rows[start:start + CHUNK])
    for (table, column), values in updates.items():
        ids = sorted(values)  # rows taken in id order (they are this transaction's already)
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            cases = " ".join("WHEN ? THEN ?" for _ in chunk)
            execute(f'UPDATE "{table}" SET "{column}" = CASE "id" {cases} END WHERE "id" IN ({", ".join("?" * len(chunk))})',
                    (*(v for row_id in chunk for v in (row_id, values[row_id])), *chunk))


def discard() -> None:
    """Drop what is held and stop holding (the batch ended: committed or rolled back)."""
    _reset(holding=False)
