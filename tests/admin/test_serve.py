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
