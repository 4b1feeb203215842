"""A nudge, in this process, that the conversations may have changed (issue 22).

Why: the live workbench stream (adapters/workbench_stream.py) reads new message rows on a
short timer, which is what carries changes between processes; a change made in this very
process (a customer's message just handled, a reply or resolve from the panel when `kefu
run` hosts it) nudges it to look at once instead of at its next tick. A nudge carries no
data and may be lost: the timer is the guarantee, this only makes it sooner.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger("kefu.changes")

_listeners: list[Callable[[], None]] = []
_lock = threading.Lock()


def subscribe(listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` (from any thread, so it must be quick and thread-safe) on each nudge;
    returns the function that unsubscribes it."""
    with _lock:
        _listeners.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in _listeners:
                _listeners.remove(listener)

    return unsubscribe


def changed() -> None:
    """Something was committed that a watcher may want to see."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener()
        except Exception:  # a watcher's failure is not the writer's
            log.exception("change listener failed")
