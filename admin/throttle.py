"""Login throttling per client address.

Why beside the per-account lock (admin/users.py): an attacker who tries one password
against many usernames never trips a per-account counter. Failures are counted per address
in the database (`LoginThrottle`), so every admin process behind a load balancer sees the
same count; after `MAX_FAILURES` in `WINDOW` the address is refused for `LOCK`. Each failure is
one UPDATE, so parallel guesses count like sequential ones.
"""

from __future__ import annotations

from datetime import timedelta

from bot.core import clock
from bot.core.db import update_one
from bot.core.models import LoginThrottle

MAX_FAILURES = 20
WINDOW = timedelta(minutes=15)
LOCK = timedelta(minutes=15)


def _key(address: str) -> str:
    return f"ip:{address or 'unknown'}"[:128]


def is_locked(address: str) -> bool:
    row = LoginThrottle.get_or_none(LoginThrottle.key == _key(address))
    return bool(row and row.locked_until and row.locked_until > clock.now())


# One statement per failure (see admin/users.py): the count restarts at 1 when the window has
# passed, and the failure that reaches MAX_FAILURES locks the address and starts it again.
_COUNT = '(CASE WHEN "window_started_at" < ? THEN 1 ELSE "failures" + 1 END)'
_COUNT_FAILURE = (f'"failures" = CASE WHEN {_COUNT} >= ? THEN 0 ELSE {_COUNT} END, '
                  '"window_started_at" = CASE WHEN "window_started_at" < ? THEN ? ELSE "window_started_at" END, '
                  f'"locked_until" = CASE WHEN {_COUNT} >= ? THEN ? ELSE "locked_until" END')


def record_failure(address: str) -> None:
    now = clock.now()
    key = _key(address)
    LoginThrottle.insert(key=key, failures=0, window_started_at=now).on_conflict_ignore().execute()
    stamp = LoginThrottle.locked_until.db_value
    cutoff, until = stamp(now - WINDOW), stamp(now + LOCK)
    update_one(LoginThrottle, _COUNT_FAILURE,
               (cutoff, MAX_FAILURES, cutoff, cutoff, stamp(now), cutoff, MAX_FAILURES, until),
               '"key" = ? AND ("locked_until" IS NULL OR "locked_until" <= ?)', (key, stamp(now)))


def record_success(address: str) -> None:
    LoginThrottle.update(failures=0).where(LoginThrottle.key == _key(address)).execute()
