"""The outbox's bookkeeping: outcomes by meaning, back-off, progress of split sends,
claims that expire, released claims."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Mapping

from bot import clock, outbox
from bot.models import Outbox
from bot.outbox import SendResult


class Scripted:
    """A sender that answers from a script, recording what it was asked to send."""

    def __init__(self, *results: SendResult) -> None:
        self.results = list(results)
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, recipient: str, content: Mapping[str, Any]) -> SendResult:
        self.sent.append((recipient, dict(content)))
        return self.results.pop(0) if self.results else SendResult.ok()


def _row(key: str = "k1") -> Outbox:
    assert outbox.enqueue(key, "mp", "o_user", {"kind": "text", "text": "您好"})
    return Outbox.get(Outbox.key == key)


def test_enqueue_twice_is_one_row(database) -> None:
    assert outbox.enqueue("same", "mp", "o1", {"kind": "text", "text": "a"})
    assert not outbox.enqueue("same", "mp", "o1", {"kind": "text", "text": "a"})
    assert Outbox.select().count() == 1


def test_transient_error_backs_off_then_sends(database, fake_clock) -> None:
    _row()
    sender = Scripted(SendResult("retry", "-1 system error"))
    assert outbox.deliver_due({"mp": sender}) == 1
    row = Outbox.get()
    assert (row.status, row.attempts, row.last_error) == ("pending", 1, "-1 system error")
    assert row.next_attempt_at == clock.now() + timedelta(seconds=outbox.backoff_seconds(1))
    assert outbox.deliver_due({"mp": sender}) == 0  # not due yet
    fake_clock.advance(seconds=outbox.backoff_seconds(1))
    assert outbox.deliver_due({"mp": sender}) == 1
    assert Outbox.get().status == "sent" and len(sender.sent) == 2


def test_retry_after_is_respected(database, fake_clock) -> None:
    _row()
    outbox.deliver_due({"mp": Scripted(SendResult("retry", "45009 quota", retry_after=60))})
    assert Outbox.get().next_attempt_at == clock.now() + timedelta(seconds=60)


def test_window_closed_and_limit_reached_are_kept_not_retried(database, fake_clock) -> None:
    _row("a")
    _row("b")
    sender = Scripted(SendResult("window_closed", "45015 out of time"), SendResult("limit_reached", "45047"))
    outbox.deliver_due({"mp": sender})
    assert {r.key: r.status for r in Outbox.select()} == {"a": "window_closed", "b": "limit_reached"}
    fake_clock.advance(hours=1)
    assert outbox.deliver_due({"mp": sender}) == 0


def test_permanent_failure_keeps_the_platforms_message(database) -> None:
    _row()
    outbox.deliver_due({"mp": Scripted(SendResult("failed", "40003 invalid openid"))})
    row = Outbox.get()
    assert (row.status, row.last_error) == ("failed", "40003 invalid openid")


def test_too_many_transient_errors_fail(database, fake_clock) -> None:
    _row()
    sender = Scripted(*[SendResult("retry", "-1 busy")] * 3)
    for _ in range(3):
        outbox.deliver_due({"mp": sender}, max_attempts=3)
        fake_clock.advance(hours=1)
    row = Outbox.get()
    assert row.status == "failed" and row.attempts == 3


def test_progress_of_a_split_send_is_kept_for_the_retry(database, fake_clock) -> None:
    _row()
    sender = Scripted(SendResult("retry", "-1 busy", parts_sent=2))
    outbox.deliver_due({"mp": sender})
    assert Outbox.get().content["parts_sent"] == 2
    fake_clock.advance(hours=1)
    outbox.deliver_due({"mp": sender})
    assert sender.sent[-1][1]["parts_sent"] == 2  # the sender resumes after part 2
    assert Outbox.get().status == "sent"


def test_a_dead_senders_claim_expires_and_a_release_is_immediate(database, fake_clock) -> None:
    _row("a")
    _row("b")
    claimed = outbox.claim(10, ("mp",))
    assert len(claimed) == 2 and outbox.claim(10, ("mp",)) == []
    assert outbox.release([claimed[0].id]) == 1
    assert [r.key for r in outbox.claim(10, ("mp",))] == ["a"]
    fake_clock.advance(seconds=outbox.CLAIM_SECONDS + 1)
    assert [r.key for r in outbox.claim(10, ("mp",))] == ["a", "b"]
