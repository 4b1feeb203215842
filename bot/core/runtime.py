"""Opening a kefu process: config, logging, database, schema check.

Why: every command (`run`, `serve`, `admin`, `scheduler`, `init`, ...) starts the same way;
the composition root (`bot.cli.serve`) calls `open_runtime` and then wires what it needs.
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from datetime import datetime, timezone

from bot.core import db, migrations
from bot.core.config import Config


class SchemaOutdated(RuntimeError):
    pass


class LogFields(dict):  # type: ignore[type-arg]
    """Structured fields for one log line: `log.info("%s", LogFields(event=...))`. The JSON
    formatter merges them as they are; any other formatter prints them as JSON."""

    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False)


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `LogFields`, or a message that is already JSON, merged in."""

    def format(self, record: logging.LogRecord) -> str:
        base = {
            "ts": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(record.args, LogFields):  # logging unwraps a lone mapping argument
            base.update(record.args)
        else:
            message = record.getMessage()
            try:
                parsed = json.loads(message) if message.startswith("{") else None
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                base.update(parsed)
            else:
                base["msg"] = message
        request_id = getattr(record, "request_id", "")
        if request_id:
            base.setdefault("request_id", request_id)
        if record.exc_info:
            base["exc"] = self.formatException(record.exc_info)
        return json.dumps(base, ensure_ascii=False)


def setup_logging(config: Config) -> None:
    from bot.core.logs import RequestIdFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())  # every line of one webhook request carries its id
    if config.log.format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(config.log.level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # peewee's DEBUG lines are SQL with its parameters: access tokens, customers' text
    logging.getLogger("peewee").setLevel(logging.INFO)


@dataclass
class Runtime:
    config: Config


def open_database(config: Config, upgrade: bool = False, pooled: bool = False) -> None:
    """Bind the models to the configured database; create/upgrade the schema if asked,
    else insist that it is current. `pooled`: PostgreSQL connections from a pool (no bound:
    as many as requests at once; idle ones closed after 5 minutes) for a server that calls
    `db.release()` when each request ends (the panel's child)."""
    if pooled and db.pooled(config.database_url) != config.database_url:
        db.bind(db.open_database(db.pooled(config.database_url), max_connections=None, stale_timeout=300))
    else:
        db.connect(config.database_url)
    if upgrade:
        migrations.upgrade()
        return
    missing = migrations.pending_steps()
    if missing:
        names = ", ".join(f"{version} ({name})" for version, name in missing)
        raise SchemaOutdated(f"the database schema lacks step(s) {names}: run `kefu init`")
