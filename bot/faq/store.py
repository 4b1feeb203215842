"""The live FAQ store: an index over the enabled FAQs, rebuilt when the database changes.

Why: an FAQ saved in the admin panel or imported by the CLI must be answered by every
running `kefu serve` process within seconds, without a restart. Each process checks a cheap
fingerprint of the FAQ tables at most every `check_seconds` and rebuilds its immutable
index in the background of a request when the fingerprint moved; matching never waits on
the database.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import peewee

from bot import clock
from bot.faq.matcher import Entry, Match, TfidfIndex
from bot.faq.normalize import apply_synonyms, normalize
from bot.models import Faq, FaqQuestion, Synonym


@dataclass(frozen=True)
class Answer:
    faq_id: int
    answer: str
    category: str
    question: str  # the phrasing that matched best


def fingerprint() -> tuple[Any, ...]:
    faq = Faq.select(peewee.fn.COUNT(Faq.id), peewee.fn.MAX(Faq.updated_at)).tuples().get()
    q = FaqQuestion.select(peewee.fn.COUNT(FaqQuestion.id), peewee.fn.MAX(FaqQuestion.id)).tuples().get()
    s = Synonym.select(peewee.fn.COUNT(Synonym.id), peewee.fn.MAX(Synonym.id)).tuples().get()
    return (*faq, *q, *s)


def load_synonyms() -> dict[str, str]:
    mapping: dict[str, str] = {}
    for row in Synonym.select():
        canonical = normalize(row.canonical)
        for variant in row.variants.replace("，", ",").replace(",", " ").split():
            variant = normalize(variant)
            if variant and variant != canonical:
                mapping[variant] = canonical
    return mapping


def touch(faq_id: int) -> None:
    """Mark an FAQ changed so every process rebuilds (call after editing its phrasings)."""
    Faq.update(updated_at=clock.now()).where(Faq.id == faq_id).execute()


class FaqStore:
    def __init__(self, check_seconds: float = 2.0, index_factory: Callable[[list[Entry]], Any] = TfidfIndex) -> None:
        self.check_seconds = check_seconds
        self._index_factory = index_factory
        self._lock = threading.Lock()
        self._index: Any = index_factory([])
        self._answers: dict[int, tuple[str, str]] = {}
        self._synonyms: dict[str, str] = {}
        self._fingerprint: tuple[Any, ...] | None = None
        self._checked_at = 0.0

    def normalize(self, text: str) -> str:
        return apply_synonyms(normalize(text), self._synonyms)

    def refresh(self, force: bool = False) -> bool:
        """Rebuild the index if the FAQ tables changed; True when rebuilt."""
        stamp = time.monotonic()
        if not force and stamp - self._checked_at < self.check_seconds:
            return False
        with self._lock:
            if not force and stamp - self._checked_at < self.check_seconds:
                return False
            self._checked_at = stamp
            current = fingerprint()
            if not force and current == self._fingerprint:
                return False
            synonyms = load_synonyms()
            answers: dict[int, tuple[str, str]] = {}
            phrasings: dict[int, list[str]] = {}
            for faq in Faq.select(Faq.id, Faq.answer, Faq.category).where(Faq.enabled == True):  # noqa: E712
                answers[faq.id] = (faq.answer, faq.category)
                phrasings[faq.id] = []
            for fq in FaqQuestion.select(FaqQuestion.faq, FaqQuestion.text):
                if fq.faq_id in phrasings:
                    phrasings[fq.faq_id].append(apply_synonyms(normalize(fq.text), synonyms))
            entries = [Entry(fid, tuple(qs)) for fid, qs in phrasings.items() if qs]
            self._index = self._index_factory(entries)
            self._answers, self._synonyms, self._fingerprint = answers, synonyms, current
            return True

    def match(self, text: str, limit: int = 5) -> Match:
        self.refresh()
        return self._index.search(self.normalize(text), limit=limit)

    def answer_for(self, faq_id: int, question: str = "") -> Answer | None:
        found = self._answers.get(faq_id)
        if found is None:
            return None
        return Answer(faq_id=faq_id, answer=found[0], category=found[1], question=question)

    def __len__(self) -> int:
        return len(self._answers)
