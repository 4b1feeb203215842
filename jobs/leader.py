"""Leadership: only one scheduler is active per database.

Why: two schedulers would send every broadcast twice. A lease row (`Lease`) names the holder
and an expiry; the holder renews it well before it runs out, a standby takes it over once it
has expired. The same lease works on SQLite and PostgreSQL (the row update is atomic).
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import timedelta

from bot import clock
from bot.db import transaction
from bot.models import Lease

NAME = "scheduler"


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


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
