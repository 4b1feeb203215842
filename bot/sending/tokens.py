"""The platform access_token: one per app, shared by every process through the database.

Why: WeChat issues one valid access_token per app; fetching a new one invalidates the one
other processes hold. So the token lives in `AccessToken`, and a refresh happens under a
lease (`Lease` row `token:<app>`): one process fetches, the others wait for its result and
reuse it. A lease (not a database lock held during the HTTP call) keeps SQLite writable
while the fetch is in flight.

`refresh_after_error(bad)` is the "refresh once" rule: the platform said `bad` is invalid;
if another process already replaced it, use theirs, otherwise fetch once.

The HTTP call is injected (`Fetch`) by adapters, so this module stays transport-free. It is
blocking (database, waiting): call it from a worker thread, never on the event loop.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable

from bot.core import clock
from bot.core.db import transaction
from bot.core.models import AccessToken, Lease
from bot.ops.metrics import TOKEN_REFRESHES

# (access_token, expires_in seconds)
Fetch = Callable[[], tuple[str, float]]

REFRESH_EARLY_SECONDS = 300.0  # renew this long before the platform's expiry
LEASE_SECONDS = 30.0
WAIT_SECONDS = 20.0


class TokenUnavailable(RuntimeError):
    """No valid token could be had (the fetch failed or another refresher never finished)."""


@dataclass(frozen=True)
class Token:
    value: str
    expires_at: datetime


class TokenStore:
    def __init__(self, app_key: str, fetch: Fetch, holder: str | None = None) -> None:
        self.app_key = app_key
        self.fetch = fetch
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._lease_name = f"token:{app_key}"[:64]
        self._local = threading.Lock()  # one refresher per process; the lease does the rest
        self.fetches = 0

    # -- reading ---------------------------------------------------------------------------

    def current(self) -> Token | None:
        row = AccessToken.get_or_none(AccessToken.app_key == self.app_key)
        if row is None or not row.token or row.expires_at is None:
            return None
        return Token(row.token, row.expires_at)

    def get(self) -> Token:
        """A valid token, refreshing it when missing or about to expire."""
        token = self.current()
        if token is not None and token.expires_at > clock.now() + timedelta(seconds=REFRESH_EARLY_SECONDS):
            return token
        return self._refresh(bad=None)

    def refresh_after_error(self, bad: str) -> Token:
        """The platform rejected `bad` (40001/40014/42001): a token that is not `bad`."""
        return self._refresh(bad=bad)

    # -- refreshing --------------------------------------------------------------------------

    def _usable(self, token: Token | None, bad: str | None, early: bool) -> bool:
        if token is None or token.value == bad:
            return False
        margin = timedelta(seconds=REFRESH_EARLY_SECONDS if early else 0)
        return token.expires_at > clock.now() + margin

    def _refresh(self, bad: str | None) -> Token:
        deadline = time.monotonic() + WAIT_SECONDS
        with self._local:
            while True:
                token = self.current()
                if self._usable(token, bad, early=True):
                    return token  # type: ignore[return-value]
                if self._acquire():
                    try:
                        token = self.current()  # someone may have finished just before
                        if self._usable(token, bad, early=True):
                            return token  # type: ignore[return-value]
                        return self._fetch_and_store()
                    finally:
                        self._release()
                # another process is refreshing: a still-valid token will do meanwhile
                if self._usable(token, bad, early=False):
                    return token  # type: ignore[return-value]
                if time.monotonic() > deadline:
                    raise TokenUnavailable(f"{self.app_key}: another process holds the refresh lease")
                time.sleep(0.05)

    def _fetch_and_store(self) -> Token:
        self.fetches += 1
        value, expires_in = self.fetch()
        TOKEN_REFRESHES.labels(self.app_key).inc()
        now = clock.now()
        expires_at = now + timedelta(seconds=float(expires_in))
        with transaction():
            (
                AccessToken.insert(app_key=self.app_key, token=value, expires_at=expires_at, updated_at=now)
                .on_conflict(conflict_target=[AccessToken.app_key],
                             update={AccessToken.token: value, AccessToken.expires_at: expires_at,
                                     AccessToken.updated_at: now})
                .execute()
            )
        return Token(value, expires_at)

    def _acquire(self) -> bool:
        now = clock.now()
        expires = now + timedelta(seconds=LEASE_SECONDS)
        with transaction():
            Lease.insert(name=self._lease_name, holder=self.holder, expires_at=expires).on_conflict_ignore().execute()
            taken = (
                Lease.update(holder=self.holder, expires_at=expires)
                .where((Lease.name == self._lease_name)
                       & ((Lease.holder == self.holder) | (Lease.expires_at < now)))
                .execute()
            )
        return taken == 1

    def _release(self) -> None:
        Lease.delete().where((Lease.name == self._lease_name) & (Lease.holder == self.holder)).execute()
