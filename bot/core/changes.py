"""A nudge, in this process, that the conversations may have changed (issue 22).

Why: the live workbench stream (adapters/workbench_stream.py) reads new message rows on a
short timer, which is what carries changes between processes; a change made in this very
process (a customer's message just handled, a reply or resolve from the panel when `kefu
run` hosts it) nudges it to look at once instead of at its next tick. A nudge carries no
data and may be lost: the timer is the guarantee, this only makes it sooner. The same goes
for `delivered`, which answers a web visitor's waiting poll as soon as a reply is theirs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

log = logging.getLogger("kefu.changes")

_listeners: list[Callable[[bool], None]] = []
_lock = threading.Lock()


def subscribe(listener: Callable[[bool], None]) -> Callable[[], None]:
    """Call `listener(outbound)` (from any thread, so it must be quick and thread-safe) on each
    nudge; `outbound`: messages were queued to send. Returns the function that unsubscribes it."""
    return _add(_listeners, listener)


def _add(registry: list[Any], listener: Any) -> Callable[[], None]:
    with _lock:
        registry.append(listener)

    def unsubscribe() -> None:
        with _lock:
            if listener in registry:
                registry.remove(listener)

    return unsubscribe


_delivered: list[Callable[[str, str], None]] = []


def subscribe_delivered(listener: Callable[[str, str], None]) -> Callable[[], None]:
    """Call `listener(channel, recipient)` when a send to a polled channel's reader (the web
    chat) became visible to them in this process; returns the function that unsubscribes it."""
    return _add(_delivered, listener)


def delivered(channel: str, recipient: str) -> None:
    """A polled reader has something new: their waiting poll (adapters/web.py) answers now."""
    with _lock:
        listeners = list(_delivered)
    for listener in listeners:
        try:
            listener(channel, recipient)
        except Exception:
            log.exception("delivery listener failed")


def changed(outbound: bool = False) -> None:
    """Something was committed that a watcher may want to see (`outbound`: sends were queued
    outside a customer's message: the outbox sender may start now)."""
    with _lock:
        listeners = list(_listeners)
    for listener in listeners:
        try:
            listener(outbound)
        except Exception:  # a watcher's failure is not the writer's
            log.exception("change listener failed")
