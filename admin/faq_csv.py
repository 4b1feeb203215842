"""FAQs as Excel-friendly CSV: UTF-8 with a BOM, one FAQ per row, phrasings one per line
inside their cell.

Why a BOM: Excel opens BOM-less UTF-8 CSV as the system code page and shows Chinese as
mojibake. Rows are validated by the JSONL importer (`bot.faq.io.parse_jsonl`), so both formats
obey the same rules and an error names the row (the header is row 1). Cells a spreadsheet
would run as a formula (a phrasing starting with `=`) are written as text and read back as
they were (admin/spreadsheet.py). The problems found
here are lazy translations (the panel shows them in the operator's language); the JSONL rules'
own messages come from bot.faq.io.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterable

from flask_babel import lazy_gettext as _l

from admin.spreadsheet import neutralise, restore
from bot.faq.io import FaqFileError, FaqRecord, parse_jsonl

HEADER = ("id", "分类 category", "答案 answer", "问法 questions（每行一个）")
_ALIASES = {
    "id": "id",
    "category": "category", "分类": "category",
    "answer": "answer", "答案": "answer",
    "questions": "questions", "问法": "questions",
}


def to_csv(records: Iterable[dict[str, Any]]) -> bytes:
    """Export records ({"id", "questions", "answer", "category"}) as CSV bytes with a BOM."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    for rec in records:
        row = [rec["id"], rec["category"], rec["answer"], "\n".join(rec["questions"])]
        writer.writerow([neutralise(cell) for cell in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def _column(title: str) -> str | None:
    words = title.replace("（", " ").replace("(", " ").split()
    for word in words:
        if word.lower() in _ALIASES:
            return _ALIASES[word.lower()]
    return None


def parse_csv(data: bytes, source: str = "<csv>") -> list[FaqRecord]:
    """Parse exported (or hand-made) CSV; raises FaqFileError naming the row."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FaqFileError(source, 0, _l("不是 UTF-8 文本（在 Excel 中请另存为“CSV UTF-8”）")) from None
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return []
    columns = [_column(title) for title in rows[0]]
    if "answer" not in columns or "questions" not in columns:
        raise FaqFileError(source, 1, _l("表头必须包含答案（answer）和问法（questions）两列"))
    lines: list[str] = [""]  # keeps row numbers aligned: the header is row 1
    for row in rows[1:]:
        if not any(cell.strip() for cell in row):
            lines.append("")
            continue
        obj: dict[str, Any] = {}
        for name, cell in zip(columns, map(restore, row)):
            if name == "questions":
                obj["questions"] = [q.strip() for q in cell.splitlines() if q.strip()]
            elif name:
                obj[name] = cell.strip()
        if not obj.get("id"):
            obj.pop("id", None)
        lines.append(json.dumps(obj, ensure_ascii=False))
    return parse_jsonl(lines, source)
