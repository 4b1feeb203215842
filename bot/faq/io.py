"""FAQ import and export as JSON lines: {"id", "questions": [...], "answer", "category"}.

Why all-or-nothing: an operator importing a file with a mistake on line 300 should get a
message naming line 300 and an untouched store, not half an import. The whole file is
validated first, then applied in one transaction; an FAQ with the same id is updated
(answer, category, phrasings replaced), others are created.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from bot.core import clock
from bot.core.db import transaction
from bot.core.models import Faq, FaqQuestion

DEFAULT_CATEGORY = "更多问题"


class FaqFileError(ValueError):
    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}, line {line}: {problem}")
        self.source, self.line, self.problem = source, line, problem


@dataclass(frozen=True)
class FaqRecord:
    id: str
    questions: tuple[str, ...]
    answer: str
    category: str


@dataclass(frozen=True)
class ImportReport:
    created: int
    updated: int
    unchanged: int = 0


def parse_jsonl(lines: Iterable[str], source: str = "<input>") -> list[FaqRecord]:
    records: list[FaqRecord] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj: Any = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FaqFileError(source, number, f"not valid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise FaqFileError(source, number, "expected a JSON object")
        questions = obj.get("questions")
        if not isinstance(questions, list) or not questions or not all(isinstance(q, str) and q.strip() for q in questions):
            raise FaqFileError(source, number, '"questions" must be a non-empty list of non-empty strings')
        answer = obj.get("answer")
        if not isinstance(answer, str) or not answer.strip():
            raise FaqFileError(source, number, '"answer" must be a non-empty string')
        category = obj.get("category") or DEFAULT_CATEGORY
        if not isinstance(category, str) or len(category) > 32:
            raise FaqFileError(source, number, '"category" must be a string of at most 32 characters')
        raw_id = obj.get("id")
        ident = str(raw_id) if raw_id is not None and str(raw_id).strip() else f"line-{number}"
        if len(ident) > 64:
            raise FaqFileError(source, number, '"id" must be at most 64 characters')
        if ident in seen:
            raise FaqFileError(source, number, f"duplicate id {ident!r}")
        seen.add(ident)
        too_long = next((q for q in questions if len(q) > 512), None)
        if too_long:
            raise FaqFileError(source, number, "a phrasing is longer than 512 characters")
        unique = tuple(dict.fromkeys(q.strip() for q in questions))
        records.append(FaqRecord(ident, unique, answer.strip(), category.strip()))
    return records


def read_file(path: str | Path) -> list[FaqRecord]:
    try:
        with open(path, encoding="utf-8") as fh:
            return parse_jsonl(fh, str(path))
    except FileNotFoundError:
        raise FaqFileError(str(path), 0, "file not found") from None
    except UnicodeDecodeError:
        raise FaqFileError(str(path), 0, "not UTF-8 text") from None


def apply(records: Iterable[FaqRecord]) -> ImportReport:
    """Create or update FAQs by id. An FAQ the file states as it already is, is left alone
    (no write, so no running process rebuilds its index for it), and an updated one keeps
    the phrasing rows the file still lists."""
    created = updated = unchanged = 0
    now = clock.now()
    with transaction():
        for rec in records:
            faq = Faq.get_or_none(Faq.external_id == rec.id)
            if faq is None:
                faq = Faq.create(external_id=rec.id, answer=rec.answer, category=rec.category, created_at=now, updated_at=now)
                FaqQuestion.insert_many([{"faq": faq.id, "text": q} for q in rec.questions]).execute()
                created += 1
                continue
            stored = {q.text: q.id for q in FaqQuestion.select().where(FaqQuestion.faq == faq).order_by(FaqQuestion.id)}
            if (faq.answer, faq.category, tuple(stored)) == (rec.answer, rec.category, rec.questions):
                unchanged += 1
                continue
            Faq.update(answer=rec.answer, category=rec.category, updated_at=now).where(Faq.id == faq.id).execute()
            wanted = set(rec.questions)
            kept = [text for text in stored if text in wanted]
            new = [q for q in rec.questions if q not in stored]
            if kept + new != list(rec.questions):  # reordered (the first phrasing is the title): rewrite
                kept, new = [], list(rec.questions)
            gone = [row_id for text, row_id in stored.items() if text not in kept]
            if gone:
                FaqQuestion.delete().where(FaqQuestion.id.in_(gone)).execute()
            if new:
                FaqQuestion.insert_many([{"faq": faq.id, "text": q} for q in new]).execute()
            updated += 1
    return ImportReport(created, updated, unchanged)


def import_file(path: str | Path) -> ImportReport:
    return apply(read_file(path))


def export_records() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    questions: dict[int, list[str]] = {}
    for fq in FaqQuestion.select().order_by(FaqQuestion.id):
        questions.setdefault(fq.faq_id, []).append(fq.text)
    for faq in Faq.select().order_by(Faq.id):
        out.append({
            "id": faq.external_id or str(faq.id), "questions": questions.get(faq.id, []),
            "answer": faq.answer, "category": faq.category,
        })
    return out


def export_file(path: str | Path) -> int:
    records = export_records()
    with open(path, "w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return len(records)
