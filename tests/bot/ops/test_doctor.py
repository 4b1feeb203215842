"""`kefu doctor`: passes on the demo; each mistake an operator makes gives its own ✗ line
with the fix and a non-zero exit."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
from click.testing import CliRunner

from bot.core import clock, db
from bot.cli import main
from bot.core.models import AccessToken, Outbox
from jobs import leader
from tests.bot.ops.conftest import write_config

MP = '''[[channels]]
name = "web"
kind = "web"
secret = "web-secret"
[[channels]]
name = "mp"
kind = "wechat_mp"
token = "tok"
app_id = "wx_doctor"
app_secret = "{secret}"
api_base = "{base}"
'''


def doctor(path: Path) -> tuple[int, list[str]]:
    result = CliRunner().invoke(main, ["doctor", "--config", str(path)], env={"KEFU_FAQ_EMBEDDINGS": "0"},
                                catch_exceptions=False)
    if not db.database.obj.is_closed():
        db.database.obj.close()
    return result.exit_code, result.output.splitlines()


def line(lines: list[str], name: str) -> str:
    return next(text for text in lines if text[2:].startswith(name + ":"))


@pytest.fixture
def scheduler_leads(database: Any, database_url: str) -> Iterator[None]:
    """A live scheduler, as `kefu scheduler` would hold it (lease row or advisory lock)."""
    holder: Any = leader.for_database(database_url, 60)
    assert holder.acquire()
    yield
    holder.release()


def test_passes_on_the_demo(tmp_path: Path, database_url: str, scheduler_leads: None) -> None:
    path = write_config(tmp_path, database_url)
    init = CliRunner().invoke(main, ["init", "--demo", "--config", str(path)], catch_exceptions=False)
    assert init.exit_code == 0, init.output
    code, lines = doctor(path)
    assert code == 0, "\n".join(lines)
    assert not [text for text in lines if text.startswith("✗")]
    for name in ("config", "database", "schema", "faq engine", "scheduler", "outbox"):
        assert line(lines, name).startswith("✓"), lines


def test_a_database_never_initialized_is_a_schema_line_not_a_traceback(tmp_path: Path) -> None:
    """A fresh data folder (kefu init not run): the schema line says what is missing and how
    to fix it; the checks that read kefu's tables are skipped, not crashed into."""
    code, lines = doctor(write_config(tmp_path, f"sqlite:///{tmp_path / 'never-initialized.db'}"))
    text = "\n".join(lines)
    assert code == 1 and line(lines, "schema").startswith("✗") and "kefu init" in text, text
    assert line(lines, "outbox").startswith("·") and "the schema is not current" in line(lines, "outbox")
    assert line(lines, "scheduler").startswith("·") and "Traceback" not in text


def test_a_mistyped_faq_recipe_fails_the_faq_line_with_its_fix(monkeypatch: Any) -> None:
    from bot.ops.doctor import faq_check

    monkeypatch.setenv("KEFU_FAQ_EMBEDDINGS", "1")
    monkeypatch.setenv("KEFU_FAQ_RECIPE", "fastest")
    check = faq_check()  # before any model is loaded: the recipe is read first
    assert check.ok is False and "'fastest'" in check.detail
    assert "fix: set KEFU_FAQ_RECIPE to fast or exact, or unset it" in check.line()


def test_wrong_app_secret_is_the_stand_ins_40125(tmp_path: Path, database_url: str, scheduler_leads: None,
                                                   sandbox_url: tuple[Any, str]) -> None:
    sandbox, base = sandbox_url
    code, lines = doctor(write_config(tmp_path, database_url, MP.format(secret="wrong-secret", base=base)))
    assert code == 1
    text = "\n".join(lines)
    assert line(lines, "channel mp").startswith("✗") and "40125" in line(lines, "channel mp"), text
    assert "fix: copy the AppSecret" in text and "channels.mp.app_secret" in text
    assert "wrong-secret" not in text  # a secret is never printed
    assert line(lines, "clock").startswith("✓") and line(lines, "callback mp").startswith("✓")

    code, lines = doctor(write_config(tmp_path, database_url, MP.format(secret="right-secret", base=base)))
    assert code == 0, "\n".join(lines)
    assert line(lines, "channel mp").startswith("✓")
    stored = AccessToken.get(AccessToken.app_key == "mp:wx_doctor").token
    assert sandbox.tokens["wx_doctor"] == stored  # the fresh token is the one every process now uses


def test_database_down(tmp_path: Path) -> None:
    code, lines = doctor(write_config(tmp_path, "postgresql://kefu:pw-not-shown@127.0.0.1:9/kefu"))
    assert code == 1
    assert line(lines, "database").startswith("✗ database: postgresql://kefu:***@127.0.0.1:9/kefu does not answer")
    assert any(text.strip().startswith("fix: start the database") for text in lines)
    assert line(lines, "schema").startswith("·") and line(lines, "outbox").startswith("·")
    assert "pw-not-shown" not in "\n".join(lines)


def test_schema_one_version_old(tmp_path: Path, database_url: str, scheduler_leads: None) -> None:
    from bot.core.migrations import LATEST, STEPS, SchemaVersion

    SchemaVersion.delete().where(SchemaVersion.version == LATEST).execute()
    code, lines = doctor(write_config(tmp_path, database_url))
    assert code == 1
    assert line(lines, "schema") == f"✗ schema: lacks step(s) {LATEST} ({STEPS[-1][1]})"
    assert "run `kefu init" in "\n".join(lines)


def test_stuck_outbox(tmp_path: Path, database_url: str, scheduler_leads: None) -> None:
    path = write_config(tmp_path, database_url)
    Outbox.create(key="fresh", channel="web", recipient="u1", content={"text": "hi"})
    code, lines = doctor(path)
    assert code == 0 and line(lines, "outbox").startswith("✓ outbox: not stuck (1 waiting)")
    Outbox.create(key="old", channel="web", recipient="u2", content={"text": "hi"}, last_error="45009 quota",
                  next_attempt_at=clock.now() - timedelta(minutes=12))
    code, lines = doctor(path)
    assert code == 1
    assert line(lines, "outbox") == "✗ outbox: 1 sends due for over 5 min (oldest 12 min); last error: 45009 quota"


def test_no_scheduler_leads(tmp_path: Path, database_url: str, database: Any) -> None:
    code, lines = doctor(write_config(tmp_path, database_url))
    assert code == 1
    assert line(lines, "scheduler").startswith("✗ scheduler: no scheduler leads")
