"""Leadership: only one scheduler is active per database.

Why: two schedulers would start every job twice (the delivery rows would still keep each
send single, but the work and the logs would double). Two mechanisms, one interface
(`acquire()` -> leading now?, `release()`):

- PostgreSQL: a session-level `pg_try_advisory_lock` held on a dedicated connection. The
  server drops the lock the moment the leader's session ends (crash, kill, network loss),
  so a standby polling every few seconds takes over within seconds, with no clock involved.
  The key includes the database and schema, so separate shops (or test runs) never collide.
- SQLite (one machine): a lease row (`Lease`) naming the holder and an expiry; the holder
  renews it well before it runs out, a standby takes it once it has expired.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import timedelta
from typing import Any, Protocol

from bot.core import clock
from bot.core.db import transaction
from bot.core.models import Lease

log = logging.getLogger("kefu.leader")

NAME = "scheduler"


class Leadership(Protocol):
    def acquire(self) -> bool: ...

    def release(self) -> None: ...


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# --- the lease row (SQLite) ------------------------------------------------------------------


def try_acquire(holder: str, seconds: float, name: str = NAME) -> bool:
    """Take or renew the lease; True while this holder leads."""
    now = clock.now()
    expires = now + timedelta(seconds=seconds)
    with transaction():
        Lease.insert(name=name, holder=holder, expires_at=expires).on_conflict_ignore().execute()
        taken = (
            Lease.update(holder=holder, expires_at=expires)
            .where((Lease.name == name) & ((Lease.holder == holder) | (Lease.expires_at < now)))
            .execute()
        )
    return taken == 1


def release(holder: str, name: str = NAME) -> None:
    Lease.delete().where((Lease.name == name) & (Lease.holder == holder)).execute()


class LeaseLeadership:
    def __init__(self, seconds: float, holder: str | None = None, name: str = NAME) -> None:
        self.seconds, self.name = seconds, name
        self.holder = holder or holder_id()

    def acquire(self) -> bool:
        return try_acquire(self.holder, self.seconds, self.name)

    def release(self) -> None:
        release(self.holder, self.name)


# --- the advisory lock (PostgreSQL) ----------------------------------------------------------


class AdvisoryLeadership:
    """Holds `pg_try_advisory_lock` on its own connection for as long as it leads."""

    def __init__(self, url: str, name: str = NAME) -> None:
        self.url, self.name = url, name
        self._conn: Any = None
        self._held = False

    def _connect(self) -> Any:
        from bot.core.db import open_database

        conn = open_database(self.url.replace("+pool://", "://", 1))._connect()
        conn.autocommit = True
        return conn

    def acquire(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self._connect()
            with self._conn.cursor() as cur:
                if self._held:  # the session is alive, so the lock is still ours
                    cur.execute("SELECT 1")
                    return True
                cur.execute("SELECT pg_try_advisory_lock(hashtext(current_database() || ':' || current_schema()"
                            " || ':' || %s))", (f"kefu:{self.name}",))
                self._held = bool(cur.fetchone()[0])
                return self._held
        except Exception as exc:  # the connection is gone: so is the lock
            log.warning("advisory lock connection lost: %s", exc)
            self._drop()
            return False

    def _drop(self) -> None:
        conn, self._conn, self._held = self._conn, None, False
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def release(self) -> None:
        if self._conn is not None and self._held:
            try:
                with self._conn.cursor() as cur:
                    cur.execute("SELECT pg_advisory_unlock(hashtext(current_database() || ':' || current_schema()"
                                " || ':' || %s))", (f"kefu:{self.name}",))
            except Exception:
                pass
        self._drop()


def for_database(database_url: str, lease_seconds: float) -> Leadership:
    if database_url.startswith(("postgres://", "postgresql://", "postgres+", "postgresql+")):
        return AdvisoryLeadership(database_url)
    return LeaseLeadership(lease_seconds)
