"""Login throttling per client address.

Why beside the per-account lock (admin/users.py): an attacker who tries one password
against many usernames never trips a per-account counter. Failures are counted per address
in the database (`LoginThrottle`), so every admin process behind a load balancer sees the
same count; after `MAX_FAILURES` in `WINDOW` the address is refused for `LOCK`.
"""

from __future__ import annotations

from datetime import timedelta

from bot import clock
from bot.db import transaction
from bot.models import LoginThrottle

MAX_FAILURES = 20
WINDOW = timedelta(minutes=15)
LOCK = timedelta(minutes=15)


def _key(address: str) -> str:
    return f"ip:{address or 'unknown'}"[:128]


def is_locked(address: str) -> bool:
    row = LoginThrottle.get_or_none(LoginThrottle.key == _key(address))
    return bool(row and row.locked_until and row.locked_until > clock.now())


def record_failure(address: str) -> None:
    now = clock.now()
    key = _key(address)
    with transaction():
        LoginThrottle.insert(key=key, failures=0, window_started_at=now).on_conflict_ignore().execute()
        row = LoginThrottle.get(LoginThrottle.key == key)
        failures = row.failures + 1
        started = row.window_started_at
        if now - started > WINDOW:
            failures, started = 1, now
        locked = now + LOCK if failures >= MAX_FAILURES else row.locked_until
        LoginThrottle.update(failures=0 if failures >= MAX_FAILURES else failures, window_started_at=started,
                             locked_until=locked).where(LoginThrottle.key == key).execute()


def record_success(address: str) -> None:
    LoginThrottle.update(failures=0).where(LoginThrottle.key == _key(address)).execute()
