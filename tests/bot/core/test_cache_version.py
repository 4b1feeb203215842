"""The version row of the per-process caches (bot/core/cache_version.py): any write to the
settings or to an agent's identity moves it, whoever writes, and a check drops the caches;
an agent's presence does not move it."""

from __future__ import annotations

from typing import Any

from bot.core import cache_version, settings
from bot.core.db import execute
from bot.core.models import Agent
from tests.factories import make_agent


def _version() -> int:
    return int(execute('SELECT "version" FROM "cache_version" WHERE "id" = 1').fetchone()[0])


def test_writes_to_settings_and_agent_identities_move_the_version_and_presence_does_not(database: Any) -> None:
    start = _version()
    settings.put("welcome_message", "你好")
    after_setting = _version()
    assert after_setting > start
    agent = make_agent("alice")
    after_agent = _version()
    assert after_agent > after_setting
    Agent.update(status="offline").where(Agent.id == agent.id).execute()  # presence: not cached
    assert _version() == after_agent
    Agent.update(active=False).where(Agent.id == agent.id).execute()
    assert _version() > after_agent


def test_a_setting_written_behind_the_cache_is_seen_after_the_next_check(database: Any) -> None:
    cache_version.check()
    assert settings.get("queue_message") == settings.DEFAULTS["queue_message"]
    # another process (plain SQL here, no settings.put to clear this process's cache)
    execute('INSERT INTO "setting" ("key", "value", "updated_at") VALUES (?, ?, ?)',
            ("queue_message", '"排队第 {position} 位"', "2026-01-01 00:00:00.000000"))
    assert settings.get("queue_message") == settings.DEFAULTS["queue_message"]  # cached, no query
    assert cache_version.check() is True
    assert settings.get("queue_message") == "排队第 {position} 位"
    assert cache_version.check() is False  # nothing moved since
