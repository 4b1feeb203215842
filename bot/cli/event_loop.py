"""The event loop under `kefu serve` / `kefu run`: uvloop where installed, else asyncio's.

Why: on one core the webhook server's event-loop thread is about half of kefu's CPU a
message, and a good part of that is the standard loop itself (its selector, handles and
transports are Python). uvloop is the same loop API over libuv, in C; aiohttp runs on it
unchanged. `[server] event_loop = "asyncio"` keeps the standard loop (and a platform without
uvloop's wheels, such as Windows, falls back to it with a warning in the log).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine

log = logging.getLogger("kefu.serve")


def run(main: Coroutine[Any, Any, Any], event_loop: str = "uvloop") -> Any:
    """`asyncio.run(main)` on the configured loop ("uvloop" or "asyncio")."""
    if event_loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("server.event_loop = uvloop, but uvloop is not installed: the standard event loop runs")
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(main)
    return asyncio.run(main)

