"""The database: one peewee proxy, bound at start to SQLite (embedded) or PostgreSQL.

Why: everything shared between processes (dedup keys, round-robin state, tokens, outbox
claims) lives in the database, so the same code must run on an embedded SQLite file for a
single shop and on PostgreSQL for several processes.

SQLite runs in WAL mode with foreign keys on and a busy timeout; write transactions start
with BEGIN IMMEDIATE so two writers queue instead of failing on lock upgrade.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Sequence, TypeVar
from urllib.parse import urlparse

import peewee
from playhouse.db_url import connect as url_connect

log = logging.getLogger("kefu.db")

database = peewee.DatabaseProxy()
ModelT = TypeVar("ModelT", bound=peewee.Model)

SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 10000,
    "synchronous": "normal",
}


class SerializedSqliteDatabase(peewee.SqliteDatabase):
    """SQLite whose writers inside this process take turns on a lock.

    Why: SQLite's busy handler polls with growing sleeps (1, 2, 5 ... 100 ms), so threads of
    one process queueing for the write lock lose turns to each other and one can wait
    seconds in a burst (measured before this: p99 0.7 s, and answers past WeChat's 4 s
    deadline, at 600 messages/s). A Python lock hands the turn over at once. Write
    transactions (`transaction()`) hold it from BEGIN IMMEDIATE to COMMIT; a write outside
    any transaction holds it for its one statement. Other processes still meet the busy
    timeout."""

    _WRITES = ("INSERT", "UPDATE", "DELETE", "REPLAC")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writer_lock = threading.RLock()

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        if sql.lstrip()[:6].upper() in self._WRITES and not self.in_transaction():
            with self.writer_lock:
                return super().execute_sql(sql, params)
        return super().execute_sql(sql, params)


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
        return SerializedSqliteDatabase(path or ":memory:", pragmas=SQLITE_PRAGMAS, check_same_thread=False, **options)
    if parsed.scheme in ("postgres", "postgresql"):
        return url_connect(url, **options)
    if parsed.scheme in ("postgresql+pool", "postgres+pool"):
        options.setdefault("max_connections", 32)
        options.setdefault("stale_timeout", 300)
        return url_connect(url, **options)
    raise ValueError(f"unsupported database url {url!r}: use sqlite:///PATH or postgresql://...")


def pooled(url: str) -> str:
    """The PostgreSQL `url` with connections kept in a pool (`postgresql+pool://`); any other
    url as it is. For the panel's child, whose request threads take a connection for a request
    and give it back (`release`): as many backends as requests at once, not one per thread,
    idle ones closed, and a transaction a request left open rolled back."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}+pool{sep}{rest}" if sep and scheme in ("postgres", "postgresql") else url


def release() -> None:
    """Give this thread's connection back: to the pool under a pooled database, else closed.
    A pooled connection a thread never gives back stays counted as in use."""
    db = database.obj
    if db is None or db.is_closed():
        return
    try:
        db.close()
    except peewee.OperationalError:  # a transaction the request left open: nothing of it is kept
        log.exception("a request ended inside a transaction: rolled back")
        db.rollback()
        db._state.transactions.clear()  # type: ignore[attr-defined]
        db.close()


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
        with db.writer_lock, db.atomic("IMMEDIATE"):
            yield
    else:
        with db.atomic():
            yield


@contextlib.contextmanager
def joined_transaction() -> Iterator[None]:
    """The caller's transaction when there is one, else a new one (`transaction`).

    Why not a savepoint inside the caller's: on PostgreSQL each is two more round trips
    (SAVEPOINT, RELEASE), and the one after a critical section is taken under its lock. For
    work that does not catch its own errors: one raised here rolls back the whole caller's
    transaction, as it would without the savepoint once it propagates."""
    if database.obj.in_transaction():
        yield
    else:
        with transaction():
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
        last = _LAST_WRITTEN
        if last[0] is value:  # the same instant again: a batch stamps every row with one `now`
            return last[1]
        if isinstance(value, str):
            value = self._parse(value)
        if not isinstance(value, datetime):
            raise TypeError(f"{self.name}: expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        # `_FMT`'s text (years 1000-9999); isoformat is ~4x cheaper than strftime, and every
        # message stamps a handful of rows
        text = value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(" ", "microseconds")
        _remember_written(value, text)
        return text

    def python_value(self, value: Any) -> datetime | None:
        if value is None:
            return None
        if type(value) is str:
            known = _READ.get(value)  # the rows of one batch read back the same few stamps
            if known is not None:
                return known
            dt = self._parse(value)
        elif isinstance(value, datetime):
            dt = value
        else:
            dt = self._parse(str(value))
        if dt.tzinfo is None:
            return dt.replace(tzinfo=timezone.utc)
        dt = dt if dt.tzinfo is timezone.utc else dt.astimezone(timezone.utc)
        if type(value) is str:
            _remember_read(value, dt)
        return dt

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


# Conversion memos of UTCDateTimeField. Why: the hot path writes one `now` into several
# columns of several rows a batch and reads the same stamps back (RETURNING); datetimes are
# immutable, so handing out the same instance is safe, and the memo keeps a written value
# alive, so `is` cannot match a new object at a reused address. Each update of a memo is
# one atomic assignment or dict operation (threads share them).
_LAST_WRITTEN: tuple[Any, str] = (None, "")
_READ: dict[str, datetime] = {}
_READ_MAX = 512


def _remember_written(value: datetime, text: str) -> None:
    global _LAST_WRITTEN
    _LAST_WRITTEN = (value, text)


def _remember_read(text: str, value: datetime) -> None:
    if len(_READ) >= _READ_MAX:
        _READ.clear()
    _READ[text] = value


def insert_new(query: peewee.Insert) -> int | None:
    """Run an INSERT ... ON CONFLICT DO NOTHING; the new row's id, or None when the key
    already existed. (SQLite's lastrowid keeps the previous insert's id on a no-op, so the
    row count decides there; PostgreSQL's RETURNING gives nothing.)"""
    db = database.obj
    if is_postgres(db):
        return query.execute()
    return _sqlite_new_id(db.execute(query))


def _sqlite_new_id(cursor: Any) -> int | None:
    return cursor.lastrowid if cursor.rowcount == 1 else None


# -- fixed SQL for the per-message hot path -----------------------------------------------------
#
# peewee renders SQL from an expression tree on every call (~0.1-0.3 ms a statement): most of
# the CPU a FAQ-answered message cost. The dozen statements a message runs never change
# shape, so the hot path writes them once as text with `?` placeholders (portable between
# SQLite and PostgreSQL: double-quoted identifiers, ON CONFLICT) and binds only the values.


@functools.lru_cache(maxsize=512)
def _in_dialect(sql: str, param: str) -> str:
    return sql if param == "?" else sql.replace("?", param)


def gather_statistics(db: peewee.Database | None = None) -> list[str]:
    """PostgreSQL: ANALYZE kefu's tables (those of the current schema); the tables analyzed.

    Why: a new database has no planner statistics until autovacuum's first pass, and
    without them PostgreSQL found a batch's stored MsgIds by reading every message of the
    channel (the index on channel and peer, 3.5 ms a batch at 10,000 messages, where the
    unique key takes 0.1). `kefu init` and the first start gather them once the schema (and
    the demo shop) is there; autovacuum keeps them after. SQLite: nothing (its planner
    needs none here, and its statistics would change plans the indexes were chosen for).
    `db`: another database than the bound one (a benchmark's server under test)."""
    db = db if db is not None else database.obj
    if not is_postgres(db):
        return []
    tables = db.get_tables()
    if tables:
        db.execute_sql("ANALYZE " + ", ".join(f'"{table}"' for table in tables))
    return tables


def execute(sql: str, params: Sequence[Any] = ()) -> Any:
    """Run fixed SQL text written with `?` placeholders on the bound database; the cursor."""
    db = database.obj
    return _run(db, _in_dialect(sql, db.param), params)


_QUERY_LOG = logging.getLogger("peewee")


def _run(db: peewee.Database, sql: str, params: Sequence[Any]) -> Any:
    """`db.execute_sql(sql, params)`; inside a transaction straight on this thread's
    connection. Why: peewee's path (its query log, hooks, a connection check, a cursor
    factory; SerializedSqliteDatabase's write check) costs more Python than SQLite's own
    insert of a row; inside a transaction none of it applies (the connection is open, the
    writer lock held) but the translation of driver errors into peewee's, kept here. With
    peewee's query log on (its logger at DEBUG) or a query hook, every statement goes
    through peewee, so both still see them all."""
    state = db._state  # type: ignore[attr-defined]
    if (state.transactions and state.conn is not None and not getattr(db, "query_hooks", None)
            and not _QUERY_LOG.isEnabledFor(logging.DEBUG)):
        with peewee.__exception_wrapper__:  # type: ignore[attr-defined]
            cursor = state.conn.cursor()
            cursor.execute(sql, params)
            return cursor
    return db.execute_sql(sql, params)


def _insert_id(sql: str, params: Sequence[Any]) -> int | None:
    """Run a fixed `INSERT ... [ON CONFLICT DO NOTHING]`: the new row's id, or None when a
    unique key already held it (same rules as `insert_new`)."""
    db = database.obj
    if is_postgres(db):
        row = _run(db, _in_dialect(sql + ' RETURNING "id"', db.param), params).fetchone()
        return row[0] if row else None
    return _sqlite_new_id(_run(db, sql, params))


@functools.lru_cache(maxsize=32)
def _columns(model: type[peewee.Model]) -> str:
    """Every column of `model`, in the order `_instance` reads them."""
    return ", ".join(f'"{f.column_name}"' for f in model._meta.sorted_fields)


@functools.lru_cache(maxsize=64)
def _select_all(model: type[peewee.Model], where: str) -> str:
    return f'SELECT {_columns(model)} FROM "{model._meta.table_name}" WHERE {where}'


def fetch_one(model: type[ModelT], where: str, params: Sequence[Any] = ()) -> ModelT | None:
    """The first `model` row matching a fixed WHERE clause (`?` placeholders), or None.

    The instance is what `model.get_or_none` would return: every column, python values."""
    row = execute(_select_all(model, where), params).fetchone()
    return None if row is None else _instance(model, row)


def fetch_all(model: type[ModelT], where: str, params: Sequence[Any] = ()) -> list[ModelT]:
    """Every `model` row a fixed WHERE clause matches (`where` may go on with ORDER BY and
    LIMIT), each as `fetch_one` builds it: the polls and the live inbox read rows many times
    a second, and peewee building the same select each time was most of their cost."""
    return [_instance(model, row) for row in execute(_select_all(model, where), params).fetchall()]


def fetch_annotated(model: type[ModelT], extra: str, name: str, where: str,
                    params: Sequence[Any] = ()) -> list[ModelT]:
    """`fetch_all` with one value more per row, computed by the query (`extra`, an SQL
    expression such as a correlated count), kept as the attribute `name` of each instance."""
    sql = f'SELECT {_columns(model)}, {extra} FROM "{model._meta.table_name}" WHERE {where}'
    found = []
    for row in execute(sql, params).fetchall():
        instance = _instance(model, row[:-1])
        setattr(instance, name, row[-1])
        found.append(instance)
    return found


def related(instance: peewee.Model, name: str) -> Any:
    """`instance.<name>`, the row its foreign key names (None: no key, or no such row), read
    with fixed SQL and kept on the instance as peewee's own accessor keeps it (without
    marking the instance changed): every message to a human's conversation reads its agent."""
    key = instance.__data__.get(name)
    if key is None:
        return None
    field = type(instance)._meta.fields[name]
    cached = instance.__rel__.get(name)
    if cached is not None and cached.__data__.get(field.rel_field.name) == key:
        return cached
    row = fetch_one(field.rel_model, f'"{field.rel_field.column_name}" = ?', (key,))
    if row is not None:
        instance.__rel__[name] = row
    return row


# columns whose driver value already is the python value (int, str) on SQLite and PostgreSQL:
# `python_value` is only a coercion for them, and skipping it is a third of `_instance`'s cost
_AS_READ = (peewee.AutoField, peewee.IntegerField, peewee.CharField, peewee.TextField, peewee.ForeignKeyField)


@functools.lru_cache(maxsize=32)
def _readers(model: type[peewee.Model]) -> tuple[tuple[str, Any], ...]:
    """Each column's field name and its conversion from the driver's value (None: as read)."""
    return tuple((f.name, None if type(f) in _AS_READ else f.python_value) for f in model._meta.sorted_fields)


def _instance(model: type[ModelT], row: Sequence[Any]) -> ModelT:
    """The model instance of a row, as peewee's own select would build it (clean, no
    defaults), without the constructor's `setattr` per column: a hot-path read builds a
    customer and a conversation per message."""
    data = {name: v if v is None or read is None else read(v) for (name, read), v in zip(_readers(model), row)}
    instance = model.__new__(model)
    instance.__data__, instance._dirty, instance.__rel__ = data, set(), {}
    return instance


def new_row(model: type[ModelT], **values: Any) -> ModelT:
    """A new, unsaved instance like `model(**values)` (defaults applied, every field dirty),
    without the constructor's `setattr` per field: the hot path builds one for every message
    it stores. A foreign key may be given as an instance (kept, as peewee keeps it) or an id."""
    meta = model._meta
    data = meta._default_by_name.copy()  # peewee's get_default_dict, but a callable default
    for name, default in meta._default_callable_list:  # (clock.now) only for a field not given
        data[name] = None if name in values else default()
    fields = meta.fields
    related: dict[str, peewee.Model] = {}
    for name, value in values.items():
        if name not in fields:
            raise TypeError(f"{model.__name__} has no field {name!r}")
        if isinstance(value, peewee.Model):  # a foreign key given as its row, kept as peewee keeps it
            related[name], value = value, value.get_id()
        data[name] = value
    instance = model.__new__(model)
    instance.__data__, instance._dirty, instance.__rel__ = data, set(data), related
    return instance


# UPDATE ... RETURNING: PostgreSQL, and SQLite from 3.35 (2021); older SQLite reads back.
_SQLITE_RETURNING = sqlite3.sqlite_version_info >= (3, 35)


@functools.lru_cache(maxsize=64)
def _update_returning(model: type[peewee.Model], assignments: str, where: str) -> str:
    return f'UPDATE "{model._meta.table_name}" SET {assignments} WHERE {where} RETURNING {_columns(model)}'


def update_one(model: type[ModelT], assignments: str, values: Sequence[Any], where: str,
               params: Sequence[Any]) -> ModelT | None:
    """Update the row a fixed WHERE clause matches (a unique key) and return it as
    `fetch_one` would, after the update; None when no row matched. One statement where the
    database has RETURNING: the hot path's read-then-touch of a customer or a conversation."""
    rows = update_all(model, assignments, values, where, params)
    return rows[0] if rows else None


def update_all(model: type[ModelT], assignments: str, values: Sequence[Any], where: str,
               params: Sequence[Any]) -> list[ModelT]:
    """Update every row a fixed WHERE clause matches and return them as `fetch_all` would,
    after the update, in no particular order. One statement where the database has
    RETURNING (SQLite from 3.35); older SQLite reads them back."""
    if is_postgres() or _SQLITE_RETURNING:
        return [_instance(model, row) for row in
                execute(_update_returning(model, assignments, where), (*values, *params)).fetchall()]
    execute(f'UPDATE "{model._meta.table_name}" SET {assignments} WHERE {where}', (*values, *params))
    return fetch_all(model, where, params)


@functools.lru_cache(maxsize=128)
def _insert_sql(model: type[peewee.Model], columns: tuple[str, ...], ignore_conflict: bool, rows: int = 1) -> str:
    names = ", ".join(f'"{model._meta.fields[c].column_name}"' for c in columns)
    marks = ", ".join([f'({", ".join("?" * len(columns))})'] * rows)
    conflict = " ON CONFLICT DO NOTHING" if ignore_conflict else ""
    return f'INSERT INTO "{model._meta.table_name}" ({names}) VALUES {marks}{conflict}'


def insert_row(instance: peewee.Model, ignore_conflict: bool = False) -> int | None:
    """Insert a new model instance (defaults already applied by its constructor) with fixed
    SQL; sets and returns its id, or None when `ignore_conflict` and a unique key held it.

    The instance then is the stored row, so the caller needs no read back."""
    model = type(instance)
    data = instance.__data__
    columns, writers = _writers(model, tuple(data))
    new_id = _insert_id(_insert_sql(model, columns, ignore_conflict), _bound(writers, data))
    if new_id is not None:
        setattr(instance, model._meta.primary_key.name, new_id)
        instance._dirty.clear()
    return new_id


def insert_rows(instances: Sequence[peewee.Model], key: tuple[str, ...] = ("channel", "external_id"),
                ignore_conflict: bool = False) -> bool:
    """`insert_row` for several new instances of one model with the same set fields, in one
    statement where the database has RETURNING (their ids matched back by their unique
    `key`: RETURNING's order is unspecified). True when every row was inserted; with
    `ignore_conflict`, False when a unique key held one of them (the others are inserted:
    the caller's transaction must be rolled back). Older SQLite: one `insert_row` each."""
    if not instances:
        return True
    if not (is_postgres() or _SQLITE_RETURNING) or len(instances) == 1:
        return all([insert_row(instance, ignore_conflict) is not None for instance in instances])
    model = type(instances[0])
    columns, params = _rows_bound(instances, "insert_rows")
    returning = ", ".join(f'"{model._meta.fields[name].column_name}"' for name in key)
    sql = f'{_insert_sql(model, columns, ignore_conflict, len(instances))} RETURNING "id", {returning}'
    ids = {tuple(row[1:]): row[0] for row in execute(sql, params).fetchall()}
    primary = model._meta.primary_key.name
    for instance in instances:
        new_id = ids.get(tuple(model._meta.fields[name].db_value(instance.__data__[name]) for name in key))
        if new_id is None:
            return False
        setattr(instance, primary, new_id)
        instance._dirty.clear()
    return True


def insert_all(instances: Sequence[peewee.Model]) -> None:
    """Insert several new instances of one model with the same set fields in one statement,
    when nobody needs their ids (the instances are left without them)."""
    if not instances:
        return
    model = type(instances[0])
    columns, params = _rows_bound(instances, "insert_all")
    execute(_insert_sql(model, columns, False, len(instances)), params)


# the python type a column's `db_value` hands to the driver unchanged (it only coerces others)
_NATURAL = {peewee.IntegerField: int, peewee.ForeignKeyField: int, peewee.CharField: str, peewee.TextField: str}


@functools.lru_cache(maxsize=128)
def _writers(model: type[peewee.Model], names: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[tuple[str, Any, Any], ...]]:
    """The columns an insert of these set fields writes (never the primary key), and for
    each its name, `db_value` and the type that needs no conversion: worked out once per
    shape instead of per row."""
    present = set(names)
    fields = [f for f in model._meta.sorted_fields if f.name in present and f is not model._meta.primary_key]
    return tuple(f.name for f in fields), tuple((f.name, f.db_value, _NATURAL.get(type(f))) for f in fields)


def _bound(writers: tuple[tuple[str, Any, Any], ...], data: dict[str, Any]) -> list[Any]:
    """The driver values of a row: `db_value` of each field, skipped where the value already
    is what it would return (an int for an integer column, a str for a text one)."""
    params = []
    for name, db_value, natural in writers:
        value = data[name]
        params.append(value if natural is not None and (value is None or type(value) is natural) else db_value(value))
    return params


def _rows_bound(instances: Sequence[peewee.Model], caller: str) -> tuple[tuple[str, ...], list[Any]]:
    """The columns a multi-row insert of these instances writes and its parameters, row after
    row; every instance must set the same fields (one statement has one column list)."""
    names = tuple(instances[0].__data__)
    columns, writers = _writers(type(instances[0]), names)
    params: list[Any] = []
    for instance in instances:
        if tuple(instance.__data__) != names:
            raise ValueError(f"{caller}: every instance must set the same fields")
        params.extend(_bound(writers, instance.__data__))
    return columns, params


@functools.lru_cache(maxsize=32)
def _upsert_sql(model: type[peewee.Model], columns: tuple[str, ...], key: tuple[str, ...], assignments: str,
                rows: int = 1) -> str:
    conflict = ", ".join(f'"{model._meta.fields[c].column_name}"' for c in key)
    return (f'{_insert_sql(model, columns, False, rows)} ON CONFLICT ({conflict}) DO UPDATE SET {assignments} '
            f'RETURNING {_columns(model)}')


def upsert_row(instance: ModelT, key: tuple[str, ...], assignments: str, values: Sequence[Any]) -> ModelT:
    """Insert `instance`, or when a row holds its unique `key` apply `assignments` (fixed SQL,
    `?` placeholders, `values`) to that row instead: the stored row either way, as
    `fetch_one` returns it. One statement where the database has RETURNING (a first contact
    and a returning customer alike); older SQLite updates first and inserts on a miss."""
    model = type(instance)
    data = instance.__data__
    columns, writers = _writers(model, tuple(data))
    params = _bound(writers, data)
    where = " AND ".join(f'"{model._meta.fields[c].column_name}" = ?' for c in key)
    where_params = [model._meta.fields[c].db_value(data[c]) for c in key]
    if not (is_postgres() or _SQLITE_RETURNING):
        found = update_one(model, assignments, values, where, where_params)
        if found is not None:
            return found
        if insert_row(instance, ignore_conflict=True) is not None:
            return instance
        found = update_one(model, assignments, values, where, where_params)  # a concurrent insert won
        if found is None:
            raise LookupError("a unique key conflicted with a row that cannot be read back")
        return found
    row = execute(_upsert_sql(model, columns, key, assignments), (*params, *values)).fetchone()
    return _instance(model, row)


def upsert_rows(instances: Sequence[ModelT], key: tuple[str, ...], assignments: str,
                values: Sequence[Any]) -> list[ModelT]:
    """`upsert_row` for several new instances of one model with the same set fields, in one
    statement where the database has RETURNING: the stored rows, in the order of `instances`
    (RETURNING's own order is unspecified: rows are matched back by `key`). Keys must be
    distinct. Older SQLite: one `upsert_row` each."""
    if not instances:
        return []
    if not (is_postgres() or _SQLITE_RETURNING) or len(instances) == 1:
        return [upsert_row(instance, key, assignments, values) for instance in instances]
    model = type(instances[0])
    columns, params = _rows_bound(instances, "upsert_rows")
    sql = _upsert_sql(model, columns, key, assignments, len(instances))
    rows = [_instance(model, row) for row in execute(sql, (*params, *values)).fetchall()]
    by_key = {tuple(row.__data__[name] for name in key): row for row in rows}
    found = []
    for instance in instances:
        wanted = tuple(instance.__data__[name] for name in key)
        if wanted not in by_key:
            raise LookupError(f"upsert_rows: no row came back for {wanted}")
        found.append(by_key[wanted])
    return found
