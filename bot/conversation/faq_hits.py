"""FAQ hit counts, added up per transaction and written once, just before the commit.

Why: every FAQ answer adds one to its FAQ's `hits`. Written at the answer, the row of a
popular FAQ stays locked from then to the commit, and on PostgreSQL every concurrent
transaction answering the same FAQ queues behind it (most of the mixed load asks a few
FAQs). Counted here instead and written in one statement at the end (a batch of messages
answers from several FAQs: one statement each was about a tenth of the batch's statements),
the rows taken in FAQ id order (two transactions never take them in opposite orders), the
lock lives for that statement and the commit. A message whose writes are rolled back (a
duplicate, a failure) takes its hits back (`since` / `forget`), and a batch rolled back
starts its tally afresh (`reset`), so each stored answer counts once.

The tally is per thread: a transaction, and all of its messages, runs on one thread.
"""

from __future__ import annotations

import threading
from collections import Counter

from bot.core.db import execute

_local = threading.local()


def _tally() -> list[int]:
    tally = getattr(_local, "tally", None)
    if tally is None:
        tally = _local.tally = []
    return tally


def count(faq_id: int) -> None:
    """One answer from this FAQ, in the current transaction."""
    _tally().append(faq_id)


def since() -> int:
    """A mark: the hits counted so far in this thread (see `forget`)."""
    return len(_tally())


def forget(mark: int) -> None:
    """Take back the hits counted after `mark` (their message's writes were rolled back)."""
    del _tally()[mark:]


def reset() -> None:
    """Start a transaction's tally empty: nothing counted before it is its own."""
    _tally().clear()


def write() -> None:
    """Add the counted hits to the FAQs (inside the transaction, before its commit) and
    start a new tally, whether or not the statements succeed."""
    tally = _tally()
    counts = Counter(tally)
    tally.clear()
    if not counts:
        return
    ids = sorted(counts)
    cases = " ".join("WHEN ? THEN ?" for _ in ids)
    marks = ", ".join("?" * len(ids))
    # an index scan over the sorted ids locks the rows in id order (PostgreSQL)
    execute(f'UPDATE "faq" SET "hits" = "hits" + CASE "id" {cases} END WHERE "id" IN ({marks})',
            (*(value for faq_id in ids for value in (faq_id, counts[faq_id])), *ids))
