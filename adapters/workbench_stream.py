"""The workbench's live stream: Server-Sent Events from the webhook server (issue 22).

`GET /api/workbench/stream?token=…` with a token the panel issued (admin/workbench_live.py,
bot/conversation/workbench_token.py) answers `text/event-stream`:

- `hello` `{"agent": id or null}` once open: the page reloads its inbox and thread, so
  nothing between its last poll and the stream is lost;
- `message` `{"conversation", "status", "message": {...}}`: a line of a conversation this
  agent may read (theirs, or in the queue), drawn as the thread's own lines;
- `inbox` `{...}`: the agent's inbox as `/admin/workbench/inbox.json` has it, when one of
  their conversations changed hands or state, the queue changed, or they were told something;
- `row` `{"row": {...}}`: one line of their inbox (unread count, last words), when only the
  lines of that conversation changed;
- `end` `{"reason"}` before the server closes it (the token's stream time is up, the user
  signed out or was changed, the reader fell behind, shutdown); a `: ping` comment every
  `HEARTBEAT_SECONDS` keeps proxies from closing an idle stream.

Why SSE and not WebSocket: one direction is all it needs (the agent acts through the panel's
CSRF-checked POSTs), EventSource is in every browser, and it is plain HTTP for proxies.
Why here: the panel runs under WSGI, where a held-open connection pins a thread; aiohttp
holds thousands. One `LiveHub` per process reads the message table for all its streams
(`bot.conversation.workbench_feed`): one query per `LOOK_SECONDS` whatever the number of agents, none
while nobody watches; a change made in this process looks at once (`bot.core.changes`).
Errors are JSON (403 for a forged, expired or revoked token), before any stream opens.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

from aiohttp import web

from adapters.bridge import CoreBridge
from adapters.json_body import json_error
from bot.conversation import workbench_feed, workbench_token
from bot.core import changes
from bot.conversation.workbench_token import TokenRefused, Viewer

log = logging.getLogger("kefu.workbench_stream")

PATH = "/api/workbench/stream"
LOOK_SECONDS = 0.15  # the message table is read this often while someone watches
# nudged looks start at least this far apart: under load a nudge comes with every commit, and
# one look for the rows of 50 ms costs about what one look for a single row does (the
# conversations, agents and queue it reads are per look, not per row)
MIN_GAP_SECONDS = 0.05
REVALIDATE_SECONDS = 15.0  # each watcher's user row is checked again this often
HEARTBEAT_SECONDS = 15.0
QUEUE_LIMIT = 500  # events waiting for a slow reader before its stream is ended
MAX_TOKEN = 512
_dumps = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"))


def sse(event: str, data: dict[str, Any]) -> bytes:
    """One event in the text/event-stream format (JSON escapes every line break in `data`)."""
    return f"event: {event}\ndata: {_dumps(data)}\n\n".encode()


@dataclass(eq=False)
class Watcher:
    """One open stream."""

    viewer: Viewer
    queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))

    def put(self, event: str, data: dict[str, Any]) -> bool:
        """Queue an event; False when the reader is too far behind (its stream is ended)."""
        try:
            self.queue.put_nowait((event, data))
            return True
        except asyncio.QueueFull:
            return False

    def end(self, reason: str) -> None:
        """Tell the reader why, then close (room is made: the end must get through)."""
        while self.queue.qsize() > QUEUE_LIMIT - 2:
            self.queue.get_nowait()
        self.queue.put_nowait(("end", {"reason": reason}))
        self.queue.put_nowait(None)


class LiveHub:
    """The process's streams and the one task that feeds them."""

    def __init__(self, bridge: CoreBridge, secret: str, on_pending: Callable[[set[str]], None] | None = None,
                 look_seconds: float = LOOK_SECONDS) -> None:
        self.bridge, self.secret, self.on_pending, self.look_seconds = bridge, secret, on_pending, look_seconds
        self.watchers: set[Watcher] = set()
        self.reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kefu-live")
        self.feed = workbench_feed.Feed()
        self._wake = asyncio.Event()
        self._someone = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unsubscribe: Callable[[], None] | None = None

    # -- the feeding task ---------------------------------------------------------------------

    def nudge(self, outbound: bool = False) -> None:
        """From any thread (bot.core.changes): look now rather than at the next tick."""
        loop = self._loop
        if loop is None or loop.is_closed() or self._wake.is_set():  # set: a look is due already
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:  # a commit's callback on the loop itself: no wake-up write needed
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._unsubscribe = changes.subscribe(self.nudge)
        last_check = self._loop.time()
        try:
            while True:
                if not self.watchers:
                    self.feed = workbench_feed.Feed()  # the next watcher starts from then, not from here
                    self._someone.clear()
                    await self._someone.wait()
                    last_check = self._loop.time()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.look_seconds)
                except asyncio.TimeoutError:
                    pass
                self._wake.clear()
                began = self._loop.time()
                try:
                    await self.look()
                    if self._loop.time() - last_check >= REVALIDATE_SECONDS:
                        last_check = self._loop.time()
                        await self.revalidate()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("workbench stream: reading changes failed")
                    await asyncio.sleep(1.0)
                rest = MIN_GAP_SECONDS - (self._loop.time() - began)
                if rest > 0:
                    await asyncio.sleep(rest)
        finally:
            if self._unsubscribe is not None:
                self._unsubscribe()
            self.reader.shutdown(wait=False, cancel_futures=True)

    async def look(self) -> None:
        """Read what changed once, and queue each watcher's share of it."""
        watching = {w.viewer.agent_id for w in self.watchers}
        # on the hub's own thread: a look never waits in line behind customers' messages and polls
        fan = await asyncio.get_running_loop().run_in_executor(self.reader, self._read, watching)
        if fan.pending_channels and self.on_pending is not None:
            self.on_pending(fan.pending_channels)
        for watcher in list(self.watchers):
            for event, data in fan.events.get(watcher.viewer.agent_id, ()):
                if not watcher.put(event, data):
                    self.drop(watcher, "behind")
                    break

    def _read(self, watching: set[int | None]) -> workbench_feed.Fanout:
        return self.feed.fan_out(self.feed.read(), watching)

    async def revalidate(self) -> None:
        """End the streams of users signed out, deactivated or changed since their token."""
        viewers = {w.viewer for w in self.watchers}
        valid = await self.bridge.call(lambda: {v for v in viewers if workbench_token.still_valid(v)})
        for watcher in list(self.watchers):
            if watcher.viewer in viewers and watcher.viewer not in valid:
                self.drop(watcher, "signed_out")

    # -- watchers -----------------------------------------------------------------------------

    async def add(self, watcher: Watcher) -> None:
        if self.feed.cursor is None:  # the first watcher: start at the newest row
            await self.bridge.call(self.feed.start)
        self.watchers.add(watcher)
        self._someone.set()

    def drop(self, watcher: Watcher, reason: str) -> None:
        if watcher in self.watchers:
            self.watchers.discard(watcher)
            watcher.end(reason)

    def close_all(self, reason: str = "shutdown") -> None:
        for watcher in list(self.watchers):
            self.drop(watcher, reason)

    # -- the HTTP side ------------------------------------------------------------------------

    async def stream(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("token", "")
        if not token or len(token) > MAX_TOKEN or not token.isascii():
            raise json_error(403, "a workbench stream needs the token the panel gives (POST /admin/workbench/live)")
        try:
            viewer = await self.bridge.call(workbench_token.verify, self.secret, token)
        except TokenRefused as exc:
            raise json_error(403, f"workbench stream token refused: {exc}") from None
        response = web.StreamResponse(headers={
            "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",  # nginx: pass each event on at once
            # the page is the panel's, on another origin; the token is the credential, no cookie is sent
            "Access-Control-Allow-Origin": "*"})
        await response.prepare(request)
        watcher = Watcher(viewer)
        await self.add(watcher)
        loop = asyncio.get_running_loop()
        ends_at = loop.time() + workbench_token.STREAM_SECONDS
        try:
            await response.write(b"retry: 3000\n" + sse("hello", {"agent": viewer.agent_id}))
            while True:
                left = ends_at - loop.time()
                if left <= 0:
                    await response.write(sse("end", {"reason": "renew"}))
                    break
                try:
                    item = await asyncio.wait_for(watcher.queue.get(), min(HEARTBEAT_SECONDS, left))
                except asyncio.TimeoutError:
                    await response.write(b": ping\n\n")
                    continue
                if item is None:
                    break
                await response.write(sse(*item))
        except (ConnectionResetError, ConnectionError):
            pass  # the page went away
        finally:
            self.drop(watcher, "closed")
        return response


def install(app: web.Application, hub: LiveHub, spawn: Callable[[Any, str], Any]) -> None:
    """The stream's route, its feeding task (owned by the app's task set) and its shutdown."""
    app.router.add_get(PATH, hub.stream)

    async def start(app: web.Application) -> None:
        spawn(hub.run(), "workbench-stream")

    async def shutdown(app: web.Application) -> None:
        hub.close_all()

    app.on_startup.append(start)
    app.on_shutdown.append(shutdown)
