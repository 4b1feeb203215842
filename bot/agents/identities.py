"""Who writes as an agent: the IM identities of the active agents, cached per process.

Why: every inbound message first asks whether its sender is one of the shop's agents (their
messages are relayed, not answered). Agents are a handful and change rarely, so the hot path
keeps their (channel, im_user_id) in memory instead of a query per message; the version row
(bot/core/cache_version.py, moved by a trigger on an agent's identity and `active`) tells
when to read them again.
"""

from __future__ import annotations

import threading
import time

from bot.core import cache_version
from bot.core.db import execute

_lock = threading.Lock()
_cached: tuple[float, int, frozenset[tuple[str, str]]] | None = None  # (read at, generation, identities)


def is_agent(channel: str, user_id: str) -> bool:
    """Whether an active agent has this identity (the caller reads the agent row itself)."""
    return (channel, user_id) in _identities()


def _identities() -> frozenset[tuple[str, str]]:
    global _cached
    now = time.monotonic()
    cached = _cached
    if cached is not None and cache_version.trusted(cached[0], cached[1], now):
        return cached[2]
    generation = cache_version.generation()  # before the read: a drop meanwhile makes this stale
    rows = execute('SELECT "channel", "im_user_id" FROM "agent" WHERE "active" = ?', (True,)).fetchall()
    identities = frozenset((str(channel), str(user)) for channel, user in rows)
    with _lock:
        _cached = (now, generation, identities)
    return identities


def _drop() -> None:
    global _cached
    with _lock:
        _cached = None


cache_version.on_change(_drop)
