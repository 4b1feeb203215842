"""`kefu backup` while customers write, `kefu restore` into an empty database: every message
acknowledged before the backup began is back; a database holding data is not overwritten
without --force. SQLite always, PostgreSQL when KEFU_TEST_DATABASE_URL is set."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from bot.core import db
from bot.cli import main
from bot.core.config import Config
from bot.conversation.dispatcher import Dispatcher
from bot.faq.store import FaqStore
from bot.core.models import Message
from tests.bot.ops.conftest import write_config
from tests.factories import text


def kefu(path: Path, *args: str, url: str | None = None) -> Any:
    env = {"KEFU_DATABASE_URL": url} if url else {}
    result = CliRunner().invoke(main, [*args, "--config", str(path)], env=env, catch_exceptions=False)
    return result


def stored_ids(url: str) -> set[str]:
    database = db.connect(url)
    try:
        return {m.external_id for m in Message.select(Message.external_id).where(Message.direction == "in")}
    finally:
        database.close()


def test_backup_while_messages_arrive_then_restore(tmp_path: Path, config: Config, database: Any,
                                                  database_url: str, pg_schema: str | None) -> None:
    dispatcher = Dispatcher(config, FaqStore(check_seconds=0, embedder=None))
    acknowledged: list[str] = []
    stop = threading.Event()
    enough = threading.Event()

    def customer(n: int) -> None:
        i = 0
        while not stop.is_set():
            msg_id = f"c{n}-{i}"
            dispatcher.handle(text(f"u{n}", f"订单{i}什么时候到", msg_id))
            acknowledged.append(msg_id)  # handled and committed: what the platform got a 200 for
            i += 1
            if len(acknowledged) >= 40:
                enough.set()
        if not database.is_closed():
            database.close()

    customers = [threading.Thread(target=customer, args=(n,)) for n in range(3)]
    for thread in customers:
        thread.start()
    try:
        assert enough.wait(60)
        before = list(acknowledged)
        path = write_config(tmp_path, database_url)
        result = kefu(path, "backup", str(tmp_path / "kefu.backup"))
        assert result.exit_code == 0, result.output
        during = len(acknowledged)
        while len(acknowledged) < during + 10:  # customers keep writing after the backup began
            threading.Event().wait(0.01)
    finally:
        stop.set()
        for thread in customers:
            thread.join(30)
    assert "backed up" in result.output

    # a database that holds data is not overwritten
    refused = kefu(path, "restore", str(tmp_path / "kefu.backup"))
    assert refused.exit_code == 1 and "not empty" in refused.output, refused.output

    if pg_schema:
        admin = db.open_database(database_url)
        admin.execute_sql(f'DROP SCHEMA "{pg_schema}" CASCADE')
        admin.execute_sql(f'CREATE SCHEMA "{pg_schema}"')
        admin.close()
        target = database_url
    else:
        target = f"sqlite:///{tmp_path / 'restored' / 'kefu.db'}"
    restored = kefu(path, "restore", str(tmp_path / "kefu.backup"), url=target)
    assert restored.exit_code == 0, restored.output
    ids = stored_ids(target)
    missing = set(before) - ids
    assert not missing, f"{len(missing)} acknowledged messages missing from the restore"
    assert len(ids) >= len(before)
    # a snapshot as of the backup: with three customers, at most three messages counted after it
    # ended were committed before it; the rest came later and are not in it
    assert not set(acknowledged[during + 3:]) & ids


def test_restore_refuses_the_wrong_file_and_force_replaces(tmp_path: Path, database: Any, database_url: str,
                                                            pg_schema: str | None) -> None:
    path = write_config(tmp_path, database_url)
    junk = tmp_path / "junk.backup"
    junk.write_bytes(b"not a backup at all")
    result = kefu(path, "restore", str(junk))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "not a" in result.output
    assert kefu(path, "backup", str(tmp_path / "empty.backup")).exit_code == 0
    Message.create(channel="web", external_id="later", direction="in", author="customer")
    assert kefu(path, "restore", str(tmp_path / "empty.backup")).exit_code == 1
    forced = kefu(path, "restore", "--force", str(tmp_path / "empty.backup"))
    assert forced.exit_code == 0, forced.output
    assert "later" not in stored_ids(database_url)


def test_pg_dump_missing_is_a_clear_message(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    path = write_config(tmp_path, "postgresql://kefu@127.0.0.1:9/kefu")
    result = kefu(path, "backup", str(tmp_path / "x.backup"))
    assert result.exit_code == 1
    assert "pg_dump is not on PATH" in result.output and "postgresql-client" in result.output
