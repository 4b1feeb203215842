"""End-to-end fixtures: a database that nothing has touched, as on a fresh machine."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Iterator

import pytest

from bot.core import db
from tests.conftest import PG_URL, _pg_url


@pytest.fixture
def fresh_database_url(tmp_path: Path) -> Iterator[str]:
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'fresh' / 'kefu.db'}"
        return
    schema = f"kefu_e2e_{uuid.uuid4().hex[:8]}"
    admin = db.open_database(PG_URL)
    admin.connect()
    admin.execute_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield _pg_url(schema)
    finally:
        admin.execute_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.close()
