"""End-to-end fixtures: a database that nothing has touched, as on a fresh machine."""

from __future__ import annotations

import dataclasses
import threading
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from bot.core import db
from bot.core.config import ChannelConfig, Config
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


OPERATOR_PASSWORD = "correct-horse-9"


@contextmanager
def panel_serving(config: Config, *channels: ChannelConfig) -> Iterator[str]:
    """The panel on a port of its own with these channels added and an operator "ops"
    (OPERATOR_PASSWORD); yields its base URL."""
    from werkzeug.serving import make_server

    from admin import users
    from admin.app import create_app

    users.create_user("ops", OPERATOR_PASSWORD, "operator")
    app = create_app(dataclasses.replace(config, channels=(*config.channels, *channels)))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(10)
