"""The WeChat stand-in on a thread of its own: the doctor and the CLI call it with blocking
HTTP, which an in-loop test server could not answer."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Iterator

import pytest
from aiohttp import web

from adapters.sandbox.app import Sandbox


@pytest.fixture
def sandbox_url() -> Iterator[tuple[Sandbox, str]]:
    sandbox = Sandbox(apps={"wx_doctor": "right-secret"})
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, object] = {}

    async def start() -> None:
        runner = web.AppRunner(sandbox.app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        state["runner"] = runner
        state["port"] = runner.addresses[0][1]
        ready.set()

    thread = threading.Thread(target=lambda: (loop.run_until_complete(start()), loop.run_forever()), daemon=True)
    thread.start()
    assert ready.wait(10)
    yield sandbox, f"http://127.0.0.1:{state['port']}"
    asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(10)  # type: ignore[attr-defined]
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def write_config(tmp_path: Path, database_url: str, extra: str = "") -> Path:
    path = tmp_path / "kefu.toml"
    path.write_text(f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "{database_url}"\n[log]\nformat = "text"\n'
                    + extra, encoding="utf-8")
    return path
