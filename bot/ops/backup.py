"""`kefu backup FILE` and `kefu restore FILE`: the shop's data, safely, while kefu runs.

Why these tools: a copy of a live SQLite file can catch a write half done (the WAL holds
what the main file lacks); SQLite's online backup API copies a consistent snapshot through
a connection of its own while other processes keep writing (one step: the whole database
under one read transaction, which WAL lets writers pass). PostgreSQL's own `pg_dump`
(custom format) takes one snapshot too, and `pg_restore` reads it back; kefu calls them and
does not reimplement either. Every message committed (acknowledged to the platform) before
a backup begins is in it.

Restore goes into an empty database (no rows in any kefu table: a fresh `kefu init` is
empty) and refuses one that holds data unless `force`: nothing already stored is lost by a
slip of the keyboard. Stop kefu before restoring; run `kefu init` after it (a backup from
an older kefu is migrated then).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_CUSTOM_MAGIC = b"PGDMP"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why and what to do."""


@dataclass(frozen=True)
class Outcome:
    path: str
    size: int
    detail: str


def _sqlite_path(url: str) -> str | None:
    if not url.startswith("sqlite:"):
        return None
    rest = url.split("://", 1)[1].split("?", 1)[0]
    return rest[1:] if rest.startswith("/") else rest


def _pg_url(url: str) -> str:
    """A libpq URL (`postgresql+pool://` is peewee's pooling, not libpq's)."""
    return url.replace("+pool://", "://", 1).replace("postgres://", "postgresql://", 1)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not on PATH: install the PostgreSQL client tools of the server's version "
                          f"(Debian: apt install postgresql-client), or add their folder to PATH")
    return found


# --- backup -----------------------------------------------------------------------------------

def backup(database_url: str, file: str | os.PathLike[str]) -> Outcome:
    target = Path(file)
    if target.is_dir():
        raise BackupError(f"{target} is a folder: give a file name")
    target.parent.mkdir(parents=True, exist_ok=True)
    path = _sqlite_path(database_url)
    if path is not None:
        return _backup_sqlite(path, target)
    return _backup_pg(database_url, target)


def _backup_sqlite(path: str, target: Path) -> Outcome:
    if not Path(path).exists():
        raise BackupError(f"no database at {path}: nothing to back up")
    fd, tmp = tempfile.mkstemp(prefix=".kefu-backup-", dir=target.parent)
    os.close(fd)
    try:
        source = sqlite3.connect(path, timeout=30)
        try:
            copy = sqlite3.connect(tmp)
            try:
                source.backup(copy)  # pages=-1: the whole database in one consistent step
            finally:
                copy.close()
        finally:
            source.close()
        os.replace(tmp, target)  # never a half-written backup under the name asked for
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Outcome(str(target), target.stat().st_size, "SQLite online backup")


def current_schema(database_url: str) -> str:
    """The schema kefu's tables live in (`search_path` may name another than public)."""
    from bot.core.db import open_database

    database = open_database(database_url)
    try:
        return str(database.execute_sql("SELECT current_schema()").fetchone()[0])
    finally:
        database.close()


def _backup_pg(database_url: str, target: Path) -> Outcome:
    pg_dump = _tool("pg_dump")
    schema = current_schema(database_url)
    tmp = target.with_name(f".{target.name}.partial")
    done = subprocess.run([pg_dump, "--format=custom", "--no-owner", f"--schema={schema}", f"--file={tmp}",
                           f"--dbname={_pg_url(database_url)}"], capture_output=True, text=True)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {_first_line(done.stderr)}")
    os.replace(tmp, target)
    return Outcome(str(target), target.stat().st_size, f"pg_dump of schema {schema} (custom format)")


def _first_line(text: str) -> str:
    from bot.ops.redact import safe_url

    lines = [safe_url(line) for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no message"


# --- restore ----------------------------------------------------------------------------------

def rows_held(database_url: str) -> int:
    """Rows in kefu's tables (schema_version aside): 0 for a new or freshly initialised database."""
    from bot.core.db import open_database
    from bot.core.models import ALL_MODELS

    database = open_database(database_url)
    try:
        tables = set(database.get_tables())
        total = 0
        for model in ALL_MODELS:
            name = model._meta.table_name
            if name in tables:
                total += int(database.execute_sql(f'SELECT COUNT(*) FROM "{name}"').fetchone()[0])
        return total
    finally:
        database.close()


def restore(database_url: str, file: str | os.PathLike[str], force: bool = False) -> Outcome:
    source = Path(file)
    if not source.is_file():
        raise BackupError(f"no backup file {source}")
    with source.open("rb") as fh:
        head = fh.read(16)
    path = _sqlite_path(database_url)
    if path is not None and not head.startswith(SQLITE_MAGIC):
        kind = "a PostgreSQL dump" if head.startswith(PG_CUSTOM_MAGIC) else "not a kefu backup"
        raise BackupError(f"{source} is {kind}; this database is SQLite ({path})")
    if path is None and not head.startswith(PG_CUSTOM_MAGIC):
        kind = "a SQLite backup" if head.startswith(SQLITE_MAGIC) else "not a pg_dump custom-format file"
        raise BackupError(f"{source} is {kind}; this database is PostgreSQL")
    held = 0 if path is not None and not Path(path).exists() else rows_held(database_url)
    if held and not force:
        raise BackupError(f"the database is not empty ({held} rows): restoring would replace them. Restore into "
                          "an empty database, or pass --force to replace everything in it")
    if path is not None:
        return _restore_sqlite(source, path)
    return _restore_pg(database_url, source)


def _restore_sqlite(source: Path, path: str) -> Outcome:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        if not src.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone():
            raise BackupError(f"{source} is a SQLite file but not a kefu database (no schema_version)")
        dst = sqlite3.connect(path, timeout=30)
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    return Outcome(path, Path(path).stat().st_size, "SQLite online backup API")


def _restore_pg(database_url: str, source: Path) -> Outcome:
    pg_restore = _tool("pg_restore")
    listed = subprocess.run([pg_restore, "--list", str(source)], capture_output=True, text=True)
    if listed.returncode != 0:
        raise BackupError(f"pg_restore cannot read {source}: {_first_line(listed.stderr)}")
    # the dump's own CREATE SCHEMA is left out: the schema is the target's (it exists)
    entries = [line for line in listed.stdout.splitlines() if " SCHEMA " not in line.split(";", 1)[-1]]
    schema = current_schema(database_url)
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as fh:
        fh.write("\n".join(entries) + "\n")
        listing = fh.name
    try:
        done = subprocess.run([pg_restore, "--no-owner", "--clean", "--if-exists", "--exit-on-error",
                               "--single-transaction", f"--use-list={listing}", f"--dbname={_pg_url(database_url)}",
                               str(source)], capture_output=True, text=True)
    finally:
        os.unlink(listing)
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed (nothing was changed): {_first_line(done.stderr)}")
    return Outcome(schema, source.stat().st_size, f"pg_restore into schema {schema}")
