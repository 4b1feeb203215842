"""JSON columns and the base model every table shares (its database is bot.core.db's)."""

from __future__ import annotations

import json
from typing import Any

import peewee

from bot.core.db import database


class JSONField(peewee.TextField):
    """JSON stored as text (portable across SQLite and PostgreSQL)."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)

    def python_value(self, value: Any) -> Any:
        if value is None or value == "":
            return None
        return json.loads(value) if isinstance(value, str) else value


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False
