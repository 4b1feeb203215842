"""Time, timezone-aware and injectable.

Why: conversations, SLAs, coupons and scheduled jobs all depend on "now"; tests replace the
clock with `FakeClock` instead of sleeping. Everything stored is UTC.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, **delta: float) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = when


_clock: Clock = SystemClock()


def now() -> datetime:
    """The current time (UTC, aware) from the installed clock."""
    return _clock.now()


def set_clock(clock: Clock) -> Clock:
    """Install a clock (tests); returns the previous one so it can be restored."""
    global _clock
    previous, _clock = _clock, clock
    return previous
