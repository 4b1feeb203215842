"""`kefu orders import FILE`: historical orders from a CSV export of the shop system.

Why row by row: an export of years of orders always has a few bad rows; the good ones are
imported (each in its own transaction, through the same `apply` as the API, so importing
the file twice changes nothing) and every bad row is reported with its line number and
what is wrong, for the operator to fix and import again.

Columns (header row required; order free; extra columns ignored):
  shop_order_id, status, event_at  required
  amount, channel, user_id, phone, created_at, items (a JSON list)  optional
Times without an offset are taken in the shop's timezone. Files saved by Excel (UTF-8
with BOM, or GB18030) are read as well as plain UTF-8.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Collection
from zoneinfo import ZoneInfo

from bot.crm.orders import OrderError, apply, parse_event

REQUIRED = ("shop_order_id", "status", "event_at")
COLUMNS = REQUIRED + ("amount", "channel", "user_id", "phone", "created_at", "items")


class ImportFileError(Exception):
    """The file as a whole cannot be read (missing, not CSV, required column missing)."""


@dataclass
class RowError:
    line: int
    shop_order_id: str
    field: str
    problem: str

    def __str__(self) -> str:
        order = f" ({self.shop_order_id})" if self.shop_order_id else ""
        return f"line {self.line}{order}: {self.field}: {self.problem}"


@dataclass
class ImportReport:
    rows: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    matched: int = 0
    errors: list[RowError] = field(default_factory=list)

    @property
    def imported(self) -> int:
        return self.rows - len(self.errors)


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read: {exc.strerror}") from None
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportFileError(f"{path}: neither UTF-8 nor GB18030 text")


def import_file(path: str | Path, timezone: str = "Asia/Shanghai", channels: Collection[str] | None = None) -> ImportReport:
    return import_rows(_read_text(Path(path)), timezone, channels)


def import_rows(text: str, timezone: str = "Asia/Shanghai", channels: Collection[str] | None = None) -> ImportReport:
    """Apply every good row; a bad one (a buyer on a channel not in `channels`, too) is reported."""
    zone = ZoneInfo(timezone)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise ImportFileError(f"line 1: the header lacks column {', '.join(missing)} (columns: {', '.join(COLUMNS)})")
    reader.fieldnames = header
    report = ImportReport()
    for row in reader:
        line = reader.line_num  # the row's (last) line in the file
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # a blank line
        report.rows += 1
        order_id = (row.get("shop_order_id") or "").strip()
        try:
            applied = apply(parse_event(_as_event(row), default_tz=zone, channels=channels))
        except OrderError as exc:
            report.errors.append(RowError(line, order_id, exc.field, exc.problem))
            continue
        report.outcomes[applied.outcome] = report.outcomes.get(applied.outcome, 0) + 1
        report.matched += applied.customer_id is not None
    return report


def _as_event(row: dict[str, str | None]) -> dict[str, object]:
    def cell(name: str) -> str:
        value = row.get(name)
        return value.strip() if isinstance(value, str) else ""

    event: dict[str, object] = {c: cell(c) for c in ("shop_order_id", "status", "event_at", "amount", "created_at")}
    event["customer"] = {"channel": cell("channel"), "user_id": cell("user_id"), "phone": cell("phone")}
    if cell("items"):
        try:
            event["items"] = json.loads(cell("items"))
        except ValueError:
            raise OrderError("items", "not a JSON list") from None
    return event

