"""The fixed-SQL helpers of the hot path and SQLite's in-process writer lock."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from decimal import Decimal

import peewee
import pytest

from bot.core import db
from bot.core.models import Customer, Message


def test_insert_row_stores_the_instance_with_its_defaults(database: peewee.Database) -> None:
    stamp = datetime(2026, 11, 24, 8, 30, 15, 123456, tzinfo=timezone.utc)
    customer = Customer(channel="mp", external_id="o_1", nickname="小王", first_contact_at=stamp)
    new_id = db.insert_row(customer)
    assert new_id is not None and customer.id == new_id
    stored = Customer.get_by_id(new_id)
    assert (stored.channel, stored.external_id, stored.nickname) == ("mp", "o_1", "小王")
    assert stored.first_contact_at == stamp
    assert stored.level == customer.level == 0  # the model default went into the row
    assert stored.total_spend == Decimal("0")


def test_insert_row_ignoring_a_conflict_stores_nothing(database: peewee.Database) -> None:
    first = Message(channel="web", external_id="m1", direction="in", author="customer", peer_id="u1", text="第一次", state="done")
    assert db.insert_row(first, ignore_conflict=True)
    retry = Message(channel="web", external_id="m1", direction="in", author="customer", peer_id="u1", text="重试", state="done")
    assert db.insert_row(retry, ignore_conflict=True) is None
    assert retry.id is None
    assert [m.text for m in Message.select()] == ["第一次"]


def test_insert_row_without_ignore_raises_on_a_conflict(database: peewee.Database) -> None:
    db.insert_row(Customer(channel="mp", external_id="o_1"))
    with pytest.raises(peewee.IntegrityError):
        with db.transaction():
            db.insert_row(Customer(channel="mp", external_id="o_1"))


def test_fetch_one_reads_what_get_or_none_reads(database: peewee.Database) -> None:
    message = Message.create(channel="web", external_id="m1", direction="out", author="bot", peer_id="u1", text="您好",
                             payload={"kind": "text", "cards": [{"title": "发货要多久"}]}, score=0.83, state="inline")
    fetched = db.fetch_one(Message, '"channel" = ? AND "external_id" = ?', ("web", "m1"))
    expected = Message.get_or_none(Message.id == message.id)
    assert fetched is not None and expected is not None
    assert fetched.__data__ == expected.__data__
    assert fetched.created_at.tzinfo is not None
    assert fetched.payload["cards"][0]["title"] == "发货要多久"
    assert not fetched.is_dirty()
    assert db.fetch_one(Message, '"external_id" = ?', ("nope",)) is None


def test_fetch_all_reads_every_match_in_the_order_asked(database: peewee.Database) -> None:
    for n in range(3):
        Message.create(channel="web", external_id=f"m{n}", direction="in", author="customer", peer_id="u1", text=f"t{n}")
    Message.create(channel="web", external_id="other", direction="in", author="customer", peer_id="u2", text="x")
    fetched = db.fetch_all(Message, '"peer_id" = ? ORDER BY "id" DESC LIMIT 2', ("u1",))
    expected = list(Message.select().where(Message.peer_id == "u1").order_by(Message.id.desc()).limit(2))
    assert [m.__data__ for m in fetched] == [m.__data__ for m in expected] and len(fetched) == 2
    assert db.fetch_all(Message, '"peer_id" = ?', ("nobody",)) == []


def test_related_reads_the_foreign_row_once_and_follows_a_changed_key(database: peewee.Database) -> None:
    first, second = Customer.create(channel="web", external_id="a"), Customer.create(channel="web", external_id="b")
    message = Message.get_by_id(Message.create(channel="web", external_id="m", direction="in", author="customer",
                                               peer_id="a", customer=first).id)
    found = db.related(message, "customer")
    assert found is not None and found.__data__ == Customer.get_by_id(first.id).__data__
    assert db.related(message, "customer") is found  # kept on the instance, as peewee keeps it
    assert not message.is_dirty()
    message.customer = second.id  # a changed key is not answered with the old row
    assert db.related(message, "customer").external_id == "b"
    message.customer = None
    assert db.related(message, "customer") is None


def test_execute_binds_question_mark_parameters_on_every_backend(database: peewee.Database) -> None:
    customer = Customer.create(channel="mp", external_id="o_1")
    db.execute('UPDATE "customer" SET "nickname" = ? WHERE "id" = ?', ("小李", customer.id))
    assert Customer.get_by_id(customer.id).nickname == "小李"
    rows = db.execute('SELECT "external_id" FROM "customer" WHERE "channel" = ?', ("mp",)).fetchall()
    assert [r[0] for r in rows] == ["o_1"]


def test_sqlite_write_transaction_holds_the_process_writer_lock(database: peewee.Database) -> None:
    if db.is_postgres():
        pytest.skip("SQLite only: PostgreSQL has row locks")
    seen: list[bool] = []

    def other_thread_tries() -> None:
        got = database.writer_lock.acquire(blocking=False)
        seen.append(got)
        if got:
            database.writer_lock.release()

    with db.transaction():
        probe = threading.Thread(target=other_thread_tries)
        probe.start()
        probe.join()
    probe = threading.Thread(target=other_thread_tries)
    probe.start()
    probe.join()
    assert seen == [False, True]


def test_sqlite_writers_of_many_threads_all_commit(database: peewee.Database) -> None:
    """Transactions and single autocommit writes from 8 threads at once: none fails with
    'database is locked', none is lost."""
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(25):
                if i % 2:
                    with db.transaction():
                        db.insert_row(Customer(channel="web", external_id=f"t{n}-{i}"))
                else:
                    db.insert_row(Customer(channel="web", external_id=f"t{n}-{i}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Customer.select().count() == 8 * 25


def test_update_one_returns_the_row_after_the_update(database: peewee.Database) -> None:
    customer = Customer.create(channel="mp", external_id="o_1", nickname="小王")
    stamp = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
    updated = db.update_one(Customer, '"last_inbound_at" = ?', (Customer.last_inbound_at.db_value(stamp),),
                            '"channel" = ? AND "external_id" = ?', ("mp", "o_1"))
    assert updated is not None and updated.id == customer.id
    assert updated.last_inbound_at == stamp and updated.nickname == "小王"
    assert Customer.get_by_id(customer.id).last_inbound_at == stamp
    assert db.update_one(Customer, '"nickname" = ?', ("x",), '"external_id" = ?', ("nobody",)) is None
    assert Customer.select().where(Customer.nickname == "x").count() == 0


def test_update_one_reads_back_on_an_old_sqlite(database: peewee.Database, monkeypatch: pytest.MonkeyPatch) -> None:
    if db.is_postgres():
        pytest.skip("the fallback is for SQLite before 3.35 (no RETURNING)")
    monkeypatch.setattr(db, "_SQLITE_RETURNING", False)
    Customer.create(channel="mp", external_id="o_1")
    updated = db.update_one(Customer, '"nickname" = ?', ("老李",), '"external_id" = ?', ("o_1",))
    assert updated is not None and updated.nickname == "老李"


@pytest.mark.parametrize("returning", [True, False])
def test_upsert_rows_inserts_the_new_touches_the_known_and_answers_in_the_callers_order(
        database: peewee.Database, monkeypatch: pytest.MonkeyPatch, returning: bool) -> None:
    if not returning:
        if db.is_postgres():
            pytest.skip("the fallback is for SQLite before 3.35 (no RETURNING)")
        monkeypatch.setattr(db, "_SQLITE_RETURNING", False)
    known = Customer.create(channel="mp", external_id="o_known", nickname="老客")
    stamp = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
    people = ["o_new1", "o_known", "o_new2"]
    rows = db.upsert_rows([db.new_row(Customer, channel="mp", external_id=p, nickname="新客", last_inbound_at=stamp)
                           for p in people], ("channel", "external_id"), '"last_inbound_at" = ?',
                          (Customer.last_inbound_at.db_value(stamp),))
    assert [r.external_id for r in rows] == people
    assert rows[1].id == known.id and rows[1].nickname == "老客"  # touched, not overwritten
    assert all(r.last_inbound_at == stamp for r in rows)
    assert Customer.select().count() == 3
    assert {c.external_id: c.id for c in Customer.select()} == {r.external_id: r.id for r in rows}


def test_upsert_rows_wants_the_same_fields_on_every_row(database: peewee.Database) -> None:
    if not (db.is_postgres() or db._SQLITE_RETURNING):
        pytest.skip("one statement only where there is RETURNING")
    with pytest.raises(ValueError):
        db.upsert_rows([db.new_row(Customer, channel="mp", external_id="a"),
                        db.new_row(Customer, channel="mp", external_id="b",
                                   claimed_at=datetime(2026, 11, 24, tzinfo=timezone.utc))],
                       ("channel", "external_id"), '"nickname" = "nickname"', ())
    assert Customer.select().count() == 0


def test_a_pooled_database_gives_a_thread_per_request_the_same_few_connections(
        database: peewee.Database, database_url: str) -> None:
    """The panel's child serves each request on a thread of its own; each thread's own
    connection was a PostgreSQL backend started and ended per request. Pooled, and given back
    at the request's end (`db.release`), 8 requests one after another use one connection."""
    assert db.pooled("postgresql://kefu@db:5432/shop?sslmode=disable") == "postgresql+pool://kefu@db:5432/shop?sslmode=disable"
    assert db.pooled("postgres://kefu@db/shop") == "postgres+pool://kefu@db/shop"
    assert db.pooled("postgresql+pool://kefu@db/shop") == "postgresql+pool://kefu@db/shop"
    assert db.pooled("sqlite:///kefu-data/kefu.db") == "sqlite:///kefu-data/kefu.db"
    if not db.is_postgres(database):
        return
    from playhouse.pool import PooledPostgresqlDatabase

    pool = db.open_database(db.pooled(database_url), max_connections=None, stale_timeout=300)
    assert isinstance(pool, PooledPostgresqlDatabase) and db.is_postgres(pool)
    db.bind(pool)
    try:
        def request() -> None:
            assert Customer.select().count() == 0  # the test's schema, through the pool
            db.release()

        for _ in range(8):
            worker = threading.Thread(target=request)
            worker.start()
            worker.join(timeout=10)
        assert len(pool._in_use) == 0 and len(pool._connections) == 1
    finally:
        pool.close_all()
        db.bind(database)


def test_release_rolls_back_a_transaction_a_request_left_open(database: peewee.Database) -> None:
    """A request that ended inside a transaction (a bug, or an error past its handler): what
    it wrote is rolled back and its connection closed (or given back to the pool), not kept."""
    left_open = database.atomic()
    left_open.__enter__()
    Customer.create(channel="web", external_id="half-done")
    db.release()
    assert database.is_closed() and not database.in_transaction()
    assert Customer.select().where(Customer.external_id == "half-done").count() == 0


def test_datetime_conversions_remembered_never_answer_for_another_instant() -> None:
    """UTCDateTimeField keeps the last value it wrote and the stamps it read (a batch writes
    one `now` into many columns and reads the same stamps back): the memo must give exactly
    what converting afresh gives, whatever comes in between."""
    from datetime import timedelta

    field = Customer.last_contact_at
    shanghai = timezone(timedelta(hours=8))
    a = datetime(2026, 12, 7, 8, 0, 0, 1, tzinfo=timezone.utc)
    b = datetime(2026, 12, 7, 16, 0, 0, 1, tzinfo=shanghai)  # the same instant as `a`, another zone
    naive = datetime(2026, 12, 7, 9, 30)
    written = [field.db_value(v) for v in (a, a, b, naive, a, "2026-12-07 10:00:00", a)]
    assert written == ["2026-12-07 08:00:00.000001", "2026-12-07 08:00:00.000001", "2026-12-07 08:00:00.000001",
                       "2026-12-07 09:30:00.000000", "2026-12-07 08:00:00.000001", "2026-12-07 10:00:00.000000",
                       "2026-12-07 08:00:00.000001"]
    read = [field.python_value(t) for t in ("2026-12-07 08:00:00.000001", "2026-12-07 08:00:00.000001",
                                            "2026-12-07 09:30:00.000000", datetime(2026, 12, 7, 9, 30))]
    assert read == [a, a, naive.replace(tzinfo=timezone.utc), naive.replace(tzinfo=timezone.utc)]
    assert all(r.tzinfo is timezone.utc for r in read)
    for n in range(db._READ_MAX + 10):  # bounded: a long-running process does not keep every stamp
        field.python_value(f"2026-01-01 00:00:{n % 60:02d}.{n:06d}")
    assert len(db._READ) <= db._READ_MAX
    assert field.python_value("2026-12-07 08:00:00.000001") == a  # and still right after the memo was cleared


def test_statements_inside_a_transaction_keep_peewee_errors_and_its_query_log(
        database: peewee.Database, caplog: pytest.LogCaptureFixture) -> None:
    """The hot path runs statements inside a transaction straight on the connection
    (`db._run`): a driver error is still peewee's (callers catch peewee.IntegrityError),
    nothing is half done, and with peewee's query log on every statement is logged as before."""
    import logging

    sql = ('INSERT INTO "message" ("channel", "external_id", "direction", "author", "peer_id", "kind", "text", '
           '"state", "created_at") VALUES (?, ?, ?, ?, ?, ?, ?, ?, \'2026-12-07 08:00:00.000000\')')
    with db.transaction():
        db.execute(sql, ("web", "dup", "in", "customer", "u1", "text", "你好", "done"))
    with pytest.raises(peewee.IntegrityError), db.transaction():
        db.execute(sql, ("web", "other", "in", "customer", "u1", "text", "在吗", "done"))
        db.execute(sql, ("web", "dup", "in", "customer", "u1", "text", "你好", "done"))
    assert [m.external_id for m in Message.select()] == ["dup"]  # the failed transaction left nothing
    with caplog.at_level(logging.DEBUG, logger="peewee"), db.transaction():
        db.execute(sql, ("web", "logged", "in", "customer", "u1", "text", "你好", "done"))
    assert any("logged" in str(record.msg) for record in caplog.records if record.name == "peewee")


def test_new_row_calls_a_callable_default_only_for_a_field_not_given() -> None:
    from bot.core import clock

    calls: list[int] = []

    class Counting:
        def now(self) -> datetime:
            calls.append(1)
            return datetime(2026, 12, 7, 8, 0, tzinfo=timezone.utc)

    previous = clock.set_clock(Counting())
    try:
        given = datetime(2026, 1, 1, tzinfo=timezone.utc)
        row = db.new_row(Customer, channel="mp", external_id="o_1", first_contact_at=given)
    finally:
        clock.set_clock(previous)
    assert row.first_contact_at == given
    assert row.last_contact_at == datetime(2026, 12, 7, 8, 0, tzinfo=timezone.utc)  # its default, called
    assert len(calls) == 1 and row.level == 0 and row._dirty == set(row.__data__)


def test_insert_rows_stores_several_in_one_statement_and_says_when_a_key_was_taken(database: peewee.Database) -> None:
    def row(key: str, text: str) -> Message:
        return db.new_row(Message, channel="web", external_id=key, direction="in", author="customer", peer_id="u1",
                          text=text, state="done")

    first = [row("a", "一"), row("b", "二"), row("c", "三")]
    assert db.insert_rows(first, ignore_conflict=True)
    assert all(m.id is not None and not m._dirty for m in first)
    assert {m.external_id: m.text for m in Message.select()} == {"a": "一", "b": "二", "c": "三"}
    assert [Message.get_by_id(m.id).external_id for m in first] == ["a", "b", "c"]  # ids matched back by key
    again = [row("d", "四"), row("b", "重复")]
    assert db.insert_rows(again, ignore_conflict=True) is False  # "b" was taken: the caller rolls back
    assert Message.get(Message.external_id == "b").text == "二"
    with pytest.raises(ValueError):
        db.insert_rows([row("e", "五"), db.new_row(Message, channel="web", external_id="f", direction="in",
                                                  author="customer", peer_id="u1", state="done", faq=None)])


def test_gather_statistics_analyzes_kefu_tables_on_postgresql_only(database) -> None:  # type: ignore[no-untyped-def]
    """`kefu init` and the first start give PostgreSQL's planner statistics (a new database
    has none until autovacuum's first pass); SQLite is left without (no sqlite_stat1)."""
    tables = db.gather_statistics()
    if db.is_postgres():
        assert "message" in tables and "customer" in tables
        analyzed = db.execute("SELECT reltuples FROM pg_class WHERE oid = 'message'::regclass").fetchone()[0]
        assert analyzed >= 0  # -1: never analyzed nor vacuumed
    else:
        assert tables == []
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'").fetchone() is None
