"""The long-running process's heap: what the start-up built is left out of garbage collection.

Why: a `kefu serve` process holds a large, long-lived heap built at start-up (the modules,
the OpenCC tables, the FAQ index and its postings). Python's full (generation 2) collection
walks all of it, holding the GIL: 37-46 ms each, measured under the webhook load, several
a minute at peak, and every request in flight waits for it (the p99 of the webhook
benchmark). `gc.freeze()` moves everything alive at that moment to a permanent generation
that collections skip; later collections walk only what was made after.

The price: reference cycles among frozen objects are never collected (reference counting
still frees everything else). The start-up heap lives as long as the process anyway; an
FAQ index replaced after an edit is freed by reference counting, it holds no cycles.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from typing import Callable

log = logging.getLogger("kefu.heap")


def freeze() -> int:
    """Collect once, then leave every live object out of future collections; how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def freeze_when_ready(wait_ready: Callable[[], None]) -> None:
    """Freeze once `wait_ready` (blocking: the FAQ index's first embedding of its phrasings)
    has returned, so that the index built in the background is in too.

    The wait runs in a daemon thread of its own, not the loop's executor: stopping the
    server during a long first embedding must not wait for it (asyncio.run joins the
    executor's threads on the way out)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wait() -> None:
        wait_ready()
        try:
            loop.call_soon_threadsafe(lambda: ready.done() or ready.set_result(None))
        except RuntimeError:  # the loop is closed: the server stopped meanwhile
            pass

    threading.Thread(target=wait, name="kefu-heap-freeze", daemon=True).start()
    await ready
    frozen = freeze()
    log.info("start-up heap frozen: %d objects left out of garbage collection", frozen)
