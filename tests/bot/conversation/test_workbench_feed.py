"""The live workbench's change feed (bot/conversation/workbench_feed.py): every committed message row is
read once, including one committed after a higher id was already read (PostgreSQL hands
out ids at insert, not at commit), and a skipped id is not waited for forever."""

from __future__ import annotations

from typing import Any

from bot.core import clock
from bot.core.models import Message
from bot.conversation.workbench_feed import GAP_SECONDS, Feed


def row(message_id: int) -> Message:
    return Message.create(id=message_id, channel="web", external_id=f"m{message_id}", direction="in",
                          author="customer", peer_id="v1", text=f"line {message_id}", created_at=clock.now())


class Ticking:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def ids(rows: list[Message]) -> list[int]:
    return [r.id for r in rows]


def test_rows_before_the_start_are_not_replayed_and_each_new_row_comes_once(database: Any) -> None:
    row(1000)
    feed = Feed()
    assert feed.start() == 1000
    row(1001)
    row(1002)
    assert ids(feed.read()) == [1001, 1002]
    assert feed.read() == []


def test_a_row_committed_late_below_the_cursor_is_still_read_once(database: Any) -> None:
    ticking = Ticking()
    feed = Feed(monotonic=ticking)
    feed.start()
    row(10)
    row(12)  # 11's transaction has its id but has not committed yet
    assert ids(feed.read()) == [10, 12]
    assert 11 in feed.gaps
    ticking.now += 1.0
    row(11)
    assert ids(feed.read()) == [11]
    assert feed.read() == [] and 11 not in feed.gaps


def test_a_skipped_id_that_never_commits_is_given_up(database: Any) -> None:
    ticking = Ticking()
    feed = Feed(monotonic=ticking)
    feed.start()
    row(5)
    row(7)  # 6 rolled back: PostgreSQL's sequence never reuses it
    feed.read()
    assert set(feed.gaps) == {1, 2, 3, 4, 6}
    ticking.now += GAP_SECONDS + 1
    feed.read()
    assert not feed.gaps
