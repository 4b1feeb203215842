"""Every table defined in bot/core/models/ is in ALL_MODELS once, and bot.core.models exports it.

Why: the models live in modules by concept, but the schema is created and checked from the
one ALL_MODELS list; a table added to a module and forgotten there would silently be missing.
"""

from __future__ import annotations

import importlib
import pkgutil

import peewee

import bot.core.models as models
from bot.core.models.base import BaseModel


def defined_tables() -> set[type[peewee.Model]]:
    found: set[type[peewee.Model]] = set()
    for info in pkgutil.iter_modules(models.__path__):
        module = importlib.import_module(f"bot.core.models.{info.name}")
        found |= {value for value in vars(module).values()
                  if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel
                  and value.__module__ == module.__name__}
    return found


def test_every_defined_table_is_listed_once_and_exported() -> None:
    tables = defined_tables()
    assert models.Customer in tables and models.WecomGroupChat in tables
    assert set(models.ALL_MODELS) == tables
    assert len(models.ALL_MODELS) == len(set(models.ALL_MODELS))
    assert all(getattr(models, table.__name__) is table for table in tables)
