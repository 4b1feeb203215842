"""What the per-item jobs share: their message settings, channel kinds, id-ordered batches.

Why: coupon reminders, revisits and birthday greetings are the same shape (find the rows
due, one delivery each, text or template) and must walk large tables with flat memory.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Mapping, TypeVar

import peewee

from bot.campaigns import fanout
from bot.campaigns.content import as_message, fill, fill_all
from bot.core.config import Config

M = TypeVar("M", bound=peewee.Model)


def channel_kinds(config: Config) -> dict[str, str]:
    return {c.name: c.kind for c in config.channels}


def rendered(setting: Mapping[str, Any], values: Mapping[str, str]) -> fanout.Rendered:
    """A job's message setting ({"text", "template"}) filled for one customer."""
    text = str(setting.get("text") or "")
    template = as_message("template", setting["template"]) if setting.get("template") else None
    return fanout.Rendered(
        content={"kind": "text", "text": fill(text, values).strip()} if text else None,
        template=fill_all(template, values) if template else None,
        reason="" if (text or template) else "no text configured",
    )


def batches(query: peewee.ModelSelect, id_field: peewee.Field, size: int = 500) -> Iterator[list[Any]]:
    """Id-ordered pages of `query` (keyset pagination): memory flat in the table size."""
    last = 0
    while True:
        rows = list(query.where(id_field > last).order_by(id_field).limit(size))
        if not rows:
            return
        yield rows
        last = getattr(rows[-1], id_field.name) if not isinstance(rows[-1], tuple) else rows[-1][0]


def deliver_item(key: str, customer: Any, setting: Mapping[str, Any], values: Mapping[str, str],
                 channel_kind: str, mark: Callable[[], None], result: dict[str, int]) -> None:
    """One delivery of a per-item job (a coupon reminder, a revisit), counted in `result`.

    `mark` records the item as handled in the same transaction as a new send; a duplicate
    key means an earlier run sent it but did not mark it (a crash in between, or a version
    before the mark existed), so it is marked now and never sent again."""
    outcome = fanout.deliver_one(key, customer, lambda: rendered(setting, values), channel_kind, on_new=mark)
    if outcome in result:
        result[outcome] += 1
    elif outcome == "duplicate":
        mark()
