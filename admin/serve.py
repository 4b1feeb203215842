"""Serving the admin panel inside `kefu run`: in a child process of its own.

Why a child process: the panel is Flask under werkzeug's threaded server, and in the webhook
server's process its requests took the same interpreter lock as the aiohttp loop, the core's
workers and the outbox (issue 22's 200-customer bench: the agents' replies through the panel
were a third of that process's Python time). A child has its own interpreter, so the two
halves use two cores. `kefu run` stays one command: the child starts with it, says when it
listens (or why it cannot), and stops with it — asked on shutdown, or on its own when its
parent is gone.

One state: the child's commits reach the parent's live workbench, outbox and waiting web
polls through the database as they would from any other process (the stream's reads, the
sender's poll); its nudges (`bot.core.changes.changed`, e.g. an agent's reply just queued)
are passed to the parent over a pipe so they still act at once. A nudge carries no data and
may be lost (the pipe full): the timers are the guarantee. `ThreadedWSGIServer` stays for
the panel's server on SQLite, in a thread (`PanelThread`), and for tests.

Why not on SQLite: the database file has one writer at a time either way. Inside one process
the writers take turns on a lock that hands over at once (`bot.core.db.SerializedSqliteDatabase`);
across two processes they meet SQLite's busy handler, which sleeps 1 to 100 ms between tries.
Measured on the 200-customer bench: the agents' replies through a child panel took 4.0 s
(p50) against 0.7 s in a thread, both at load 6.9. PostgreSQL has no such turn, so there the
child wins.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any

import werkzeug.serving
from flask import Flask

from bot.core import changes
from bot.core.config import Config

log = logging.getLogger("kefu.admin.serve")
START_SECONDS = 120.0  # the child imports Flask and the panel; a loaded machine takes a while
STOP_SECONDS = 10.0
WORKERS = 32  # requests served at once (agents at their desks, operators, the bench's 20 agents)
REQUEST_READ_SECONDS = 30.0


class _PooledWSGIServer(werkzeug.serving.ThreadedWSGIServer):
    """werkzeug's threaded server with the requests on a fixed set of long-lived threads,
    not a new thread per request.

    Why: a database connection belongs to a thread (peewee's), so a thread per request opened
    one per request — on SQLite a file opened and its pragmas set each time, 7 % of the
    `kefu run` process's time under the 200-customer workbench bench (py-spy). Pool threads
    keep theirs. werkzeug answers every request with `Connection: close`, so a thread is held
    for one request; reading one may take at most `_RequestHandler.timeout`, so a client
    that sends slowly cannot keep the threads."""

    def __init__(self, host: str, port: int, app: Flask) -> None:
        # before the base binds: it closes the server (server_close) when the port is taken
        self._workers = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="admin-wsgi")
        super().__init__(host, port, app, handler=_RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        self._workers.submit(self.process_request_thread, request, client_address)

    def server_close(self) -> None:
        super().server_close()
        self._workers.shutdown(wait=False, cancel_futures=True)


class _RequestHandler(werkzeug.serving.WSGIRequestHandler):
    timeout = REQUEST_READ_SECONDS  # socket timeout while a request is read and answered


class ThreadedWSGIServer:
    def __init__(self, app: Flask, host: str, port: int) -> None:
        self._server = _PooledWSGIServer(host, port, app)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, name="admin-wsgi", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class PanelThread:
    """The panel in a thread of this process (SQLite: see the module's docstring)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.port: int | None = None
        self._server: ThreadedWSGIServer | None = None

    async def start(self) -> None:
        from admin.app import create_app

        try:
            self._server = ThreadedWSGIServer(create_app(self.config), self.config.admin.host, self.config.admin.port)
        except OSError as exc:
            raise PanelStartError(f"cannot listen on {self.config.admin.host}:{self.config.admin.port}: "
                                  f"{exc.strerror}") from None
        self.port = self._server.port
        self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._server.stop)


def panel_server(config: Config) -> "PanelProcess | PanelThread":
    """`kefu run`'s panel: a child process on PostgreSQL, a thread on SQLite (module docstring)."""
    from bot.core.db import is_postgres

    return PanelProcess(config) if is_postgres() else PanelThread(config)


class PanelStartError(Exception):
    """The child could not serve the panel (e.g. its port is taken): the reason, as text."""


class PanelProcess:
    """The panel served by a child process; `start()` returns once it listens."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.port: int | None = None
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no threads or loop forked
        self._ready, child_ready = context.Pipe(duplex=False)
        self._nudges, child_nudges = context.Pipe(duplex=False)
        self._process = context.Process(target=_child_main, args=(config, child_ready, child_nudges),
                                        name="kefu-admin", daemon=True)
        self._child_ends = (child_ready, child_nudges)
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid

    async def start(self) -> None:
        """Start the child and wait until it listens; PanelStartError when it cannot."""
        self._process.start()
        for end in self._child_ends:
            end.close()  # the child holds its own copies: EOF here means it is gone
        loop = self._loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(None, self._wait_ready)
        if answer[0] != "ready":
            await self.stop()
            raise PanelStartError(answer[1])
        self.port = int(answer[1])
        os.set_blocking(self._nudges.fileno(), False)
        loop.add_reader(self._nudges.fileno(), self._relay)

    def _wait_ready(self) -> tuple[str, Any]:
        if not self._ready.poll(START_SECONDS):
            return ("error", f"the admin panel did not start within {START_SECONDS:.0f} s")
        try:
            return self._ready.recv()
        except EOFError:
            self._process.join(STOP_SECONDS)
            return ("error", f"the admin panel's process ended (exit code {self._process.exitcode})")

    def _relay(self) -> None:
        """The child's nudges, as if made here: the live workbench looks, the sender sends."""
        try:
            data = os.read(self._nudges.fileno(), 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the child is gone
            if self._loop is not None:
                self._loop.remove_reader(self._nudges.fileno())
            log.warning("the admin panel's process ended (exit code %s): the panel is down until kefu "
                        "run restarts", self._process.exitcode)
            return
        changes.changed(outbound=b"1" in data)

    async def stop(self) -> None:
        """Ask the child to stop (SIGTERM), wait for it, and kill it if it does not."""
        if self._loop is not None and not self._nudges.closed:
            self._loop.remove_reader(self._nudges.fileno())
        if self._process.is_alive():
            self._process.terminate()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._process.join, STOP_SECONDS)
        if self._process.is_alive():
            log.warning("the admin panel's process did not stop in %s s: killed", STOP_SECONDS)
            self._process.kill()
            await loop.run_in_executor(None, self._process.join, STOP_SECONDS)
        self._ready.close()
        self._nudges.close()


def _child_main(config: Config, ready: Connection, nudges: Connection) -> None:
    """The child: serve the panel until told to stop or the parent is gone."""
    from admin.app import create_app
    from bot.core import db
    from bot.core.runtime import open_database, setup_logging
    from bot.ops.metrics import mark_process_dead

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # Ctrl+C reaches the whole group: the parent decides
        signal.signal(sig, lambda *_: stop.set())
    setup_logging(config)
    try:
        open_database(config, pooled=True)  # the server's threads share the connections: see db.pooled
        app = create_app(config)
        app.teardown_appcontext(lambda error: db.release())
        server = ThreadedWSGIServer(app, config.admin.host, config.admin.port)
    except (OSError, SystemExit) as exc:  # werkzeug prints why and exits when the port is taken
        reason = exc.strerror if isinstance(exc, OSError) else "address in use or not available"
        ready.send(("error", f"cannot listen on {config.admin.host}:{config.admin.port}: {reason}"))
        return
    except Exception as exc:
        ready.send(("error", f"the admin panel cannot start: {exc}"))
        return
    fd = nudges.fileno()
    os.set_blocking(fd, False)

    def nudge(outbound: bool) -> None:
        try:
            os.write(fd, b"1" if outbound else b"0")
        except OSError:  # the pipe is full (the parent reads them all at once) or gone: the timers see it
            pass

    changes.subscribe(nudge)
    server.start()
    ready.send(("ready", server.port))
    parent = multiprocessing.parent_process()
    if parent is not None:  # the parent gone without asking (killed): stop too
        threading.Thread(target=lambda: (parent.join(), stop.set()), name="parent-watch", daemon=True).start()
    stop.wait()
    server.stop()
    mark_process_dead()
