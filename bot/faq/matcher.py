"""Lexical FAQ matching: character 1-2-gram TF-IDF over every phrasing.

Why this shape: Chinese customer questions are short and unsegmented; character n-grams
need no tokenizer and are robust to typos. An FAQ scores as its best phrasing. The index is
immutable: the store builds a new one when FAQs change and swaps it in.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence


@dataclass(frozen=True)
class Entry:
    faq_id: int | str
    questions: tuple[str, ...]  # already normalized


@dataclass(frozen=True)
class Candidate:
    faq_id: int | str
    score: float
    question: str


@dataclass(frozen=True)
class Match:
    """The matcher's verdict on one query: the ranked candidates (best first)."""

    candidates: tuple[Candidate, ...] = field(default_factory=tuple)

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def runner_up(self) -> Candidate | None:
        return self.candidates[1] if len(self.candidates) > 1 else None

    @property
    def score(self) -> float:
        return self.candidates[0].score if self.candidates else 0.0


def ngrams(text: str) -> list[str]:
    chars = [c for c in text if not c.isspace()]
    grams = list(chars)
    grams += [a + b for a, b in zip(chars, chars[1:])]
    return grams


class TfidfIndex:
    """An inverted index of L2-normalized TF-IDF vectors, one per phrasing."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        docs: list[tuple[int | str, str, Counter[str]]] = []
        df: Counter[str] = Counter()
        for entry in entries:
            for q in entry.questions:
                grams = Counter(ngrams(q))
                if not grams:
                    continue
                docs.append((entry.faq_id, q, grams))
                df.update(grams.keys())
        n = max(len(docs), 1)
        self._idf = {g: math.log((1 + n) / (1 + c)) + 1.0 for g, c in df.items()}
        self._default_idf = math.log(1 + n) + 1.0
        self._docs: list[tuple[int | str, str]] = []
        self._postings: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for doc_id, (faq_id, q, grams) in enumerate(docs):
            weights = {g: (1 + math.log(tf)) * self._idf[g] for g, tf in grams.items()}
            norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
            self._docs.append((faq_id, q))
            for g, w in weights.items():
                self._postings[g].append((doc_id, w / norm))

    def __len__(self) -> int:
        return len(self._docs)

    def search(self, query: str, limit: int = 5) -> Match:
        grams = Counter(ngrams(query))
        if not grams:
            return Match()
        weights = {g: (1 + math.log(tf)) * self._idf.get(g, self._default_idf) for g, tf in grams.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        scores: dict[int, float] = defaultdict(float)
        for g, w in weights.items():
            for doc_id, dw in self._postings.get(g, ()):
                scores[doc_id] += dw * w / norm
        best_per_faq: dict[int | str, Candidate] = {}
        for doc_id, score in scores.items():
            faq_id, q = self._docs[doc_id]
            current = best_per_faq.get(faq_id)
            if current is None or score > current.score:
                best_per_faq[faq_id] = Candidate(faq_id, score, q)
        ranked: Sequence[Candidate] = sorted(best_per_faq.values(), key=lambda c: (-c.score, str(c.faq_id)))
        return Match(tuple(ranked[:limit]))
