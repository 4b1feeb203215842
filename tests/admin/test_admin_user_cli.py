"""`kefu admin-user add`: a panel user from the command line, password never on the
command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner
from werkzeug.security import check_password_hash

from bot.core import db
from bot.cli import main
from bot.core.models import AdminUser


def _env(tmp_path: Path, database_url: str) -> dict[str, str]:
    return {"KEFU_DATABASE_URL": database_url, "KEFU_DATA_DIR": str(tmp_path / "data"), "KEFU_LOG_FORMAT": "text"}


def _run(env: dict[str, str], args: list[str], stdin: str) -> Any:
    result = CliRunner().invoke(main, args, env=env, input=stdin, catch_exceptions=False)
    if not db.database.obj.is_closed():
        db.database.obj.close()
    return result


def test_add_operator_from_stdin(tmp_path: Path, database_url: str, database: Any) -> None:
    env = _env(tmp_path, database_url)
    result = _run(env, ["admin-user", "add", "xiaowang", "--role", "operator", "--password-stdin"], "s3cret-pass\n")
    assert result.exit_code == 0, result.output
    user = AdminUser.get(AdminUser.username == "xiaowang")
    assert user.role == "operator" and check_password_hash(user.password_hash, "s3cret-pass")
    assert "s3cret-pass" not in result.output


def test_prompted_password_and_refusals(tmp_path: Path, database_url: str, database: Any) -> None:
    env = _env(tmp_path, database_url)
    result = _run(env, ["admin-user", "add", "laoli", "--role", "admin"], "long-password-1\nlong-password-1\n")
    assert result.exit_code == 0, result.output
    assert AdminUser.get(AdminUser.username == "laoli").role == "admin"
    again = _run(env, ["admin-user", "add", "laoli", "--password-stdin"], "another-pass-2\n")
    assert again.exit_code != 0 and "already exists" in again.output
    short = _run(env, ["admin-user", "add", "xiao", "--password-stdin"], "123\n")
    assert short.exit_code != 0 and "at least" in short.output
    assert AdminUser.select().count() == 1


def test_reset_password_unlocks_and_asks_for_a_new_one_at_login(tmp_path: Path, database_url: str,
                                                                database: Any) -> None:
    from admin import users
    from bot.core import clock

    env = _env(tmp_path, database_url)
    assert _run(env, ["admin-user", "add", "laoli", "--password-stdin"], "forgotten-pass\n").exit_code == 0
    for _ in range(users.MAX_FAILED):
        assert users.authenticate("laoli", "wrong-guess!") is None
    assert AdminUser.get(AdminUser.username == "laoli").locked_until > clock.now()
    result = _run(env, ["admin-user", "reset-password", "laoli", "--password-stdin"], "temporary-pass\n")
    assert result.exit_code == 0, result.output
    assert "temporary-pass" not in result.output
    user = users.authenticate("laoli", "temporary-pass")  # unlocked at once
    assert user is not None and user.must_change_password and user.failed_logins == 0
    missing = _run(env, ["admin-user", "reset-password", "nobody", "--password-stdin"], "temporary-pass\n")
    assert missing.exit_code != 0 and "no panel user named 'nobody'" in missing.output
    short = _run(env, ["admin-user", "reset-password", "laoli", "--password-stdin"], "123\n")
    assert short.exit_code != 0 and "at least" in short.output
