"""Shared fixtures: a fresh database per test, on SQLite always and on PostgreSQL when
KEFU_TEST_DATABASE_URL is set.

On PostgreSQL each test session works in its own schema (so two runs, or two developers,
never collide) and every test starts from empty tables.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from pathlib import Path
from typing import Iterator

import peewee
import pytest

from bot.core import clock, db, migrations, settings
from bot.core.config import ChannelConfig, Config, DatabaseConfig, FaqConfig
from bot.conversation.dispatcher import Dispatcher
from bot.faq.store import FaqStore
from bot.core.models import ALL_MODELS

PG_URL = os.environ.get("KEFU_TEST_DATABASE_URL", "")


@pytest.fixture(scope="session", autouse=True)
def shared_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One converted embedding model for the whole run: the many `kefu` subprocesses the tests
    start each get a fresh data directory, and each would convert the model again (seconds
    each, and more than the browser fixtures' start-up limit on a loaded machine). The tests
    of the conversion itself pass their own cache folder."""
    folder = tmp_path_factory.mktemp("models")
    previous = os.environ.get("KEFU_MODEL_DIR")
    os.environ["KEFU_MODEL_DIR"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("KEFU_MODEL_DIR", None)
    else:
        os.environ["KEFU_MODEL_DIR"] = previous


@pytest.fixture(scope="session")
def pg_schema() -> Iterator[str | None]:
    if not PG_URL:
        yield None
        return
    schema = f"kefu_t_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = db.open_database(PG_URL)
    admin.connect()
    admin.execute_sql(f'CREATE SCHEMA "{schema}"')
    admin.close()
    yield schema
    admin.connect()
    admin.execute_sql(f'DROP SCHEMA "{schema}" CASCADE')
    admin.close()


def _pg_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture
def database_url(tmp_path: Path, pg_schema: str | None) -> str:
    if pg_schema:
        return _pg_url(pg_schema)
    return f"sqlite:///{tmp_path / 'kefu.db'}"


@pytest.fixture
def database(database_url: str, pg_schema: str | None) -> Iterator[peewee.Database]:
    """A bound, migrated, empty database."""
    database = db.connect(database_url)
    if pg_schema:
        tables = [m._meta.table_name for m in ALL_MODELS] + ["schema_version"]
        existing = set(database.get_tables())
        present = [t for t in tables if t in existing]
        if present:
            database.execute_sql("TRUNCATE " + ", ".join(f'"{t}"' for t in present) + " RESTART IDENTITY CASCADE")
    migrations.upgrade()
    settings.clear_cache()
    yield database
    settings.clear_cache()
    database.close()


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Config:
    return Config(
        data_dir=str(tmp_path / "data"),
        database=DatabaseConfig(url=database_url),
        faq=FaqConfig(threshold=0.55),
        channels=(ChannelConfig(name="web", kind="web", secret="test-secret", deadline_seconds=5.0),),
        source="<test>",
    )


@pytest.fixture
def fake_clock() -> Iterator[clock.FakeClock]:
    fake = clock.FakeClock()
    previous = clock.set_clock(fake)
    yield fake
    clock.set_clock(previous)


@pytest.fixture
def store(database: peewee.Database) -> FaqStore:
    return FaqStore(check_seconds=0)


@pytest.fixture
def dispatcher(config: Config, database: peewee.Database, store: FaqStore) -> Dispatcher:
    return Dispatcher(config, store)


def with_channels(config: Config, *channels: ChannelConfig) -> Config:
    return dataclasses.replace(config, channels=channels)
