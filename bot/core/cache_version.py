"""One version row that says when the per-process caches of rarely changed tables are stale.

Why: every message reads settings and asks whether its sender is an agent, while the
operator changes those a few times a day. Each process caches them; database triggers
(migration 25, `cache_version`) add one to `cache_version.version` on every write to the
`setting` table and to an agent's identity (`channel`, `im_user_id`, `active`), whoever
writes (the panel, the CLI, another process, plain SQL), so nobody has to remember to bump
it. The webhook reads the row once per batch of messages (`check`) and drops the caches
when it moved; between checks the caches cost no statement at all.

A process that never checks (the panel, the jobs) keeps the old rule: a cached value is
trusted for `TRUST_SECONDS` after it was read. A checking process trusts its caches while
the last check is younger than that, so a cache outlives an unchanged version, never a
changed one by more than the time between two checks.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from bot.core.db import execute

TRUST_SECONDS = 3.0

_lock = threading.Lock()
_seen: int | None = None  # the version the caches belong to; None: not checked yet
_checked_at = float("-inf")  # time.monotonic() of the last check that found `_seen`
_generation = 0  # one more at every drop: a value read before a drop is not cached after it
_on_change: list[Callable[[], None]] = []


def on_change(drop: Callable[[], None]) -> None:
    """Call `drop` whenever the caches are stale (a cache registers its clear function)."""
    _on_change.append(drop)


def generation() -> int:
    """Read before loading a value into a cache; store it with the value (`trusted`)."""
    return _generation


def check(max_age: float = 0.0) -> bool:
    """Read the version row (unless a check younger than `max_age` seconds did); drop every
    cache when it moved. True when it did. Call it outside a write transaction."""
    global _seen, _checked_at
    now = time.monotonic()
    if now - _checked_at < max_age:
        return False
    row = execute('SELECT "version" FROM "cache_version" WHERE "id" = 1').fetchone()
    version = None if row is None else int(row[0])
    with _lock:
        moved = version is None or version != _seen
        if moved:
            _drop()
        _seen, _checked_at = version, now
    return moved


def trusted(loaded_at: float, loaded_generation: int, now: float) -> bool:
    """Whether a value cached at `loaded_at` (monotonic) in `loaded_generation` may be used."""
    if loaded_generation != _generation:
        return False
    return now - loaded_at < TRUST_SECONDS or (_seen is not None and now - _checked_at < TRUST_SECONDS)


def reset() -> None:
    """Forget the version and drop every cache (tests, a database switched under the process)."""
    global _seen, _checked_at
    with _lock:
        _drop()
        _seen, _checked_at = None, float("-inf")


def _drop() -> None:
    global _generation
    _generation += 1
    for drop in _on_change:
        drop()
