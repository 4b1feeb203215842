"""`kefu run`'s panel (admin/serve.py): in a child process on PostgreSQL, a thread on SQLite;
the child answers, reports a taken port as a start error, and ends when asked."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import urllib.request
from typing import Any

import pytest

from admin.serve import PanelProcess, PanelStartError, PanelThread, panel_server
from bot.core.config import AdminConfig, Config
from bot.core.db import is_postgres


def _on(config: Config, port: int) -> Config:
    return dataclasses.replace(config, admin=AdminConfig(host="127.0.0.1", port=port))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_panel_runs_apart_from_the_webhook_server_only_on_postgresql(database: Any, config: Config) -> None:
    chosen = panel_server(config)
    assert isinstance(chosen, PanelProcess if is_postgres() else PanelThread)


def test_a_child_panel_answers_and_stops_when_asked(database: Any, config: Config) -> None:
    async def scenario() -> None:
        panel = PanelProcess(_on(config, _free_port()))
        await panel.start()
        try:
            page = await asyncio.to_thread(
                lambda: urllib.request.urlopen(f"http://127.0.0.1:{panel.port}/admin/login/", timeout=30).status)
            assert page == 200
        finally:
            await panel.stop()
        assert panel._process.exitcode is not None  # ended, not left behind

    asyncio.run(scenario())


def test_a_child_panel_on_a_taken_port_is_a_start_error(database: Any, config: Config) -> None:
    async def scenario() -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            panel = PanelProcess(_on(config, taken.getsockname()[1]))
            with pytest.raises(PanelStartError, match="cannot listen"):
                await panel.start()
            assert panel._process.exitcode is not None

    asyncio.run(scenario())


def _threads_app() -> Any:
    import threading

    from flask import Flask

    app = Flask("threads")
    app.add_url_rule("/", "who", lambda: threading.current_thread().name)
    return app


def test_requests_reuse_the_panel_servers_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread per request opened a database connection per request: the threads stay."""
    from admin import serve

    monkeypatch.setattr(serve, "WORKERS", 2)
    server = serve.ThreadedWSGIServer(_threads_app(), "127.0.0.1", 0)
    server.start()
    try:
        names = [urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=10).read().decode()
                 for _ in range(6)]
    finally:
        server.stop()
    assert all(name.startswith("admin-wsgi") for name in names)
    assert len(set(names)) <= 2


def test_a_client_that_sends_nothing_does_not_hold_the_panel(monkeypatch: pytest.MonkeyPatch) -> None:
    """The threads are few; reading a request gives up after REQUEST_READ_SECONDS, so an idle
    connection (or one trickling bytes) frees its thread and the next request is answered."""
    from admin import serve

    monkeypatch.setattr(serve, "WORKERS", 1)
    monkeypatch.setattr(serve._RequestHandler, "timeout", 0.5)
    server = serve.ThreadedWSGIServer(_threads_app(), "127.0.0.1", 0)
    server.start()
    idle = socket.create_connection(("127.0.0.1", server.port))
    try:
        idle.sendall(b"GET / HTTP/1.1\r\n")  # and then nothing: the one thread waits for the rest
        answer = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=10)
        assert answer.status == 200
    finally:
        idle.close()
        server.stop()
