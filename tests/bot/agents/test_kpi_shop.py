"""The shop's figures (bot.agents.kpi_shop) against a seeded history whose every figure is worked
out by hand below; spam customers, events and conversations outside the range left out."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from itertools import count
from zoneinfo import ZoneInfo

import pytest

from bot.agents import kpi_shop
from bot.core.models import Conversation, Customer, Message

SH = ZoneInfo("Asia/Shanghai")
_ids = count(1)


YEAR = 2026  # seed_counted_history(year) moves the whole history (the browser test: a year clear of the demo's)


def customer(name: str, spam: bool = False) -> Customer:
    return Customer.create(channel="web", external_id=name, nickname=name, is_spam=spam)


def wrote(who: Customer, at: datetime, kind: str = "text") -> None:
    Message.create(channel="web", external_id=f"m{next(_ids)}", customer=who, direction="in", author="customer",
                   kind=kind, text="" if kind == "event" else "在吗", created_at=at)
    Message.create(channel="web", external_id=f"m{next(_ids)}", customer=who, direction="out", author="bot",
                   text="您好", created_at=at)  # the bot's answers are not people who wrote


def conversation(who: Customer, opened: datetime, status: str, queued: float | None = None,
                 assigned: float | None = None, replied: float | None = None, reason: str = "",
                 rating: int | None = None) -> None:
    """Times after `opened`, in seconds."""
    at = lambda s: None if s is None else opened + timedelta(seconds=s)  # noqa: E731
    Conversation.create(customer=who, channel="web", status=status, opened_at=opened, queued_at=at(queued),
                        assigned_at=at(assigned), first_response_at=at(replied), handoff_reason=reason,
                        satisfaction=rating, resolved_at=at(600) if status == "resolved" else None)


@pytest.fixture
def history(database) -> tuple[datetime, datetime]:  # type: ignore[no-untyped-def]
    return seed_counted_history()


def seed_counted_history(year: int = YEAR) -> tuple[datetime, datetime]:
    """The history whose figures are counted by hand in the tests below; returns the range
    (23 and 24 November of `year`, shop time) they are counted over."""
    def local(day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(year, 11, day, hour, minute, tzinfo=SH)

    a, b, c, d, e = (customer(f"{n}{year}") for n in "abcde")
    spam = customer(f"spam{year}", spam=True)
    # who wrote, and when (shop time): a three times at 10:05, b at 10:40 and 14:00, c at 23:30
    # on the 24th (15:30 UTC: the hour chart is local), spam at 10:10, d the evening before the
    # range, e only an event (subscribe)
    for _ in range(3):
        wrote(a, local(23, 10, 5))
    wrote(b, local(23, 10, 40))
    wrote(b, local(24, 14, 0))
    wrote(c, local(24, 23, 30))
    wrote(spam, local(23, 10, 10))
    wrote(d, local(22, 23, 59))
    wrote(e, local(23, 12, 0), kind="event")
    t = local(23, 11)
    conversation(a, t, "resolved")  # the bot closed it: self-served
    conversation(a, t + timedelta(hours=5), "resolved", rating=3)  # idle-closed, rated: self-served
    conversation(b, t, "resolved", queued=0, assigned=30, replied=100, reason="requested", rating=5)  # wait 100
    conversation(b, t + timedelta(hours=1), "resolved", assigned=0, replied=60, reason="unsure", rating=4)  # 60
    conversation(c, local(24, 23, 31), "assigned", assigned=0, replied=20, reason="requested")  # 20, open
    conversation(c, local(24, 9), "queued", queued=0, reason="unanswered")  # waiting, never answered
    conversation(spam, t, "resolved", assigned=0, replied=900, reason="requested", rating=1)  # spam: left out
    conversation(d, local(22, 23, 59), "resolved", assigned=0, replied=5, rating=1)  # before the range
    conversation(d, local(25, 0, 0), "resolved", rating=1)  # after the range
    return kpi_shop.local_range(date(year, 11, 23), date(year, 11, 24), SH)


def test_every_figure_against_the_hand_count(history: tuple[datetime, datetime]) -> None:
    f = kpi_shop.figures(*history)
    assert f.customers == 3  # a, b, c (not spam, not d before the range, not e's event)
    assert (f.conversations, f.closed, f.self_served) == (6, 4, 2)
    assert f.self_service_rate == 0.5  # 2 of the 4 closed
    assert f.handed_off == 4 and f.handoff_rate == round(4 / 6, 4)
    # waits 20, 60, 100 (b's first from its queueing, not its assignment): nearest rank
    assert (f.first_response_answered, f.first_response_median_seconds, f.first_response_p90_seconds) == (3, 60, 100)
    assert (f.csat, f.rated) == (4.0, 3)  # 3, 5, 4


def test_hour_of_day_is_the_shops_hour(history: tuple[datetime, datetime]) -> None:
    hours = kpi_shop.hours_of_day(*history, SH)
    assert hours[10] == 4 and hours[14] == 1 and hours[23] == 1
    assert sum(hours) == 6


def test_an_empty_range_has_no_rates(database) -> None:  # type: ignore[no-untyped-def]
    f = kpi_shop.figures(*kpi_shop.local_range(date(2026, 1, 1), date(2026, 1, 1), SH))
    assert (f.customers, f.conversations, f.self_service_rate, f.handoff_rate) == (0, 0, None, None)
    assert (f.first_response_median_seconds, f.csat, f.rated) == (None, None, 0)


def test_a_range_must_run_forwards_and_be_at_most_a_year() -> None:
    with pytest.raises(ValueError):
        kpi_shop.local_range(date(2026, 11, 24), date(2026, 11, 23), SH)
    with pytest.raises(ValueError):
        kpi_shop.local_range(date(2025, 1, 1), date(2026, 1, 2), SH)  # 367 days
    kpi_shop.local_range(date(2025, 1, 1), date(2026, 1, 1), SH)  # 366 days still go
    start, end = kpi_shop.local_range(date(2026, 11, 23), date(2026, 11, 23), SH)
    assert start.astimezone(timezone.utc) == datetime(2026, 11, 22, 16, tzinfo=timezone.utc)
    assert end - start == timedelta(days=1)
