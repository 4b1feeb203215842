"""One verified request of the order API: refuse a body seen before, else apply it.

Why a table and not memory: several `kefu serve` processes share the work, and a replay
(or the shop's retry) may reach any of them. The seen body hash is written in the same
transaction as the order change, so a crash cannot record one without the other.
Signature and timestamp are checked by the adapter (adapters/orders.py) before this runs.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any, Collection

from bot.core import clock
from bot.crm.orders import Applied, apply, parse_event
from bot.core.db import insert_new, transaction
from bot.core.models import SeenRequest

PRUNE_EVERY_SECONDS = 60.0
_pruned_at = 0.0
_prune_lock = threading.Lock()


def receive(key: str, data: Any, window_seconds: int, channels: Collection[str] | None = None) -> Applied | None:
    """Apply the event in `data`; None when a request with this body key was seen already.
    Raises OrderError (naming the field) for a bad payload, storing nothing."""
    event = parse_event(data, channels=channels)
    _maybe_prune(window_seconds)
    with transaction():
        if insert_new(SeenRequest.insert(key=key, seen_at=clock.now()).on_conflict_ignore()) is None:
            return None
        return apply(event)


def _maybe_prune(window_seconds: int) -> None:
    """Forget bodies older than twice the window, at most once a minute per process. A
    replay must carry a timestamp inside the window and a signature over it, and a later
    repeat of the same event is still a no-op by the order's own idempotency."""
    global _pruned_at
    stamp = time.monotonic()
    with _prune_lock:
        if stamp - _pruned_at < PRUNE_EVERY_SECONDS:
            return
        _pruned_at = stamp
    cutoff = clock.now() - timedelta(seconds=2 * window_seconds)
    SeenRequest.delete().where(SeenRequest.seen_at < cutoff).execute()
