"""The server's event loop (bot/cli/event_loop.py): uvloop when configured and installed,
the standard loop when configured so or when uvloop cannot be imported (with a warning)."""

from __future__ import annotations

import asyncio
import logging
import sys

import pytest

from bot.cli import event_loop


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__


def test_uvloop_runs_the_server_when_configured() -> None:
    pytest.importorskip("uvloop")
    assert event_loop.run(_loop_module(), "uvloop").startswith("uvloop")


def test_the_standard_loop_when_configured() -> None:
    assert event_loop.run(_loop_module(), "asyncio").startswith("asyncio")


def test_without_uvloop_the_standard_loop_runs_and_the_log_says_so(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    with caplog.at_level(logging.WARNING, logger="kefu.serve"):
        assert event_loop.run(_loop_module(), "uvloop").startswith("asyncio")
    assert "uvloop is not installed" in caplog.text
