"""The database: one peewee proxy, bound at start to SQLite (embedded) or PostgreSQL.

Why: everything shared between processes (dedup keys, round-robin state, tokens, outbox
claims) lives in the database, so the same code must run on an embedded SQLite file for a
single shop and on PostgreSQL for several processes.

SQLite runs in WAL mode with foreign keys on and a busy timeout; write transactions start
with BEGIN IMMEDIATE so two writers queue instead of failing on lock upgrade.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect as url_connect

database = peewee.DatabaseProxy()

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 10000,
    "synchronous": "normal",
}


def is_postgres(db: peewee.Database | None = None) -> bool:
    target = db if db is not None else database.obj
    return isinstance(target, peewee.PostgresqlDatabase)


def open_database(url: str, **options: Any) -> peewee.Database:
    """Create (not yet connect) the database for a URL; create the SQLite directory."""
    parsed = urlparse(url)
    if parsed.scheme.startswith("sqlite"):
        rest = url.split("://", 1)[1].split("?", 1)[0]
        path = rest[1:] if rest.startswith("/") else rest  # sqlite:///rel.db, sqlite:////abs.db
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return peewee.SqliteDatabase(path or ":memory:", pragmas=SQLITE_PRAGMAS, check_same_thread=False, **options)
    if parsed.scheme in ("postgres", "postgresql"):
        return url_connect(url, **options)
    if parsed.scheme in ("postgresql+pool", "postgres+pool"):
        options.setdefault("max_connections", 32)
        options.setdefault("stale_timeout", 300)
        return url_connect(url, **options)
    raise ValueError(f"unsupported database url {url!r}: use sqlite:///PATH or postgresql://...")


def bind(db: peewee.Database) -> peewee.Database:
    database.initialize(db)
    return db


def connect(url: str) -> peewee.Database:
    """Open the database at `url` and make it the one every model uses."""
    return bind(open_database(url))


@contextlib.contextmanager
def transaction() -> Iterator[None]:
    """A write transaction; IMMEDIATE on SQLite so concurrent writers wait their turn."""
    db = database.obj
    if isinstance(db, peewee.SqliteDatabase) and not db.in_transaction():
        with db.atomic("IMMEDIATE"):
            yield
    else:
        with db.atomic():
            yield


def advisory_xact_lock(name: str) -> None:
    """Serialize a critical section across processes (PostgreSQL); SQLite is already serial
    inside an IMMEDIATE transaction."""
    if is_postgres():
        database.execute_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (name,))


class UTCDateTimeField(peewee.DateTimeField):
    """A timezone-aware datetime stored as naive UTC with a fixed-width text form on SQLite
    (so text comparisons order correctly) and a `timestamp` on PostgreSQL. A naive value
    (e.g. from a form) is taken as UTC. Subclasses DateTimeField so form libraries know it."""

    field_type = "DATETIME"
    _FMT = "%Y-%m-%d %H:%M:%S.%f"

    def db_value(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = self._parse(value)
        if not isinstance(value, datetime):
            raise TypeError(f"{self.name}: expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc).strftime(self._FMT)

    def python_value(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            dt = value
        else:
            dt = self._parse(str(value))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.astimezone(timezone.utc)

    @classmethod
    def _parse(cls, text: str) -> datetime:
        text = text.strip().replace("T", " ")
        if len(text) == 26:  # the stored form: datetime's C parser is ~20x faster than strptime
            try:
                return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
            except ValueError:
                pass
        for fmt in (cls._FMT, "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S%z", "%Y-%m-%d %H:%M:%S.%f%z", "%Y-%m-%d"):
            try:
                dt = datetime.strptime(text, fmt)
            except ValueError:
                continue
            return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)
        return datetime.fromisoformat(text)


def insert_new(query: peewee.Insert) -> int | None:
    """Run an INSERT ... ON CONFLICT DO NOTHING; the new row's id, or None when the key
    already existed. (SQLite's lastrowid keeps the previous insert's id on a no-op, so the
    row count decides there; PostgreSQL's RETURNING gives nothing.)"""
    db = database.obj
    if is_postgres(db):
        return query.execute()
    cursor = db.execute(query)
    return cursor.lastrowid if cursor.rowcount == 1 else None
