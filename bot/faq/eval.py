"""Measuring the matcher: top-1, hit@5, precision/recall at the threshold, speed.

Why in the package (not only in bench/): `kefu faq eval` must run on any machine with the
shop's own files, without a database, through exactly the code the bot answers with
(normalization, `FaqIndex`, calibration). Formats are those of the shared evaluation data:
FAQ lines `{"id", "questions", "answer"}`, query lines `{"query", "faq_id" | null}`;
`faq_id: null` means no FAQ answers it, and answering it counts against precision.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from bot.faq.io import FaqRecord, read_file
from bot.faq.matcher import Entry, FaqIndex, Match
from bot.faq.normalize import normalize
from bot.faq.semantic import Embedder, MemoryCache, VectorCache


@dataclass(frozen=True)
class Query:
    text: str
    faq_id: str | None
    kind: str = ""


class FileCache(MemoryCache):
    """Vectors kept in an .npz file between runs: embedding the dev splits costs minutes of a
    shared CPU, and the figures of a re-run do not depend on it."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        if self.path.exists():
            with np.load(self.path) as data:
                self._data.update({k: data[k] for k in data.files})
        self._saved = len(self._data)

    def save(self) -> None:
        """Write the file when vectors were added since it was read."""
        if len(self._data) != self._saved:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "wb") as fh:  # np.savez would add ".npz" to another suffix
                np.savez(fh, **self._data)
            self._saved = len(self._data)


def read_queries(path: str | Path) -> list[Query]:
    queries: list[Query] = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            if not isinstance(obj, dict) or not isinstance(obj.get("query"), str):
                raise ValueError(f"{path}, line {number}: expected {{\"query\": str, \"faq_id\": str | null}}")
            gold = obj.get("faq_id")
            queries.append(Query(obj["query"], None if gold is None else str(gold), str(obj.get("type", ""))))
    return queries


def entries_of(records: Iterable[FaqRecord]) -> list[Entry]:
    return [Entry(r.id, tuple(normalize(q) for q in r.questions), r.questions) for r in records]


def build_index(records: Sequence[FaqRecord], embedder: Embedder | None, cache: VectorCache | None = None,
                **options: Any) -> tuple[FaqIndex, float]:
    started = time.perf_counter()
    index = FaqIndex(entries_of(records), embedder=embedder, cache=cache, **options)
    return index, time.perf_counter() - started


def answer_all(index: FaqIndex, queries: Sequence[Query], limit: int = 5) -> tuple[list[Match], float]:
    """Every query, one at a time as the bot does; returns the matches and queries/second."""
    matches: list[Match] = []
    started = time.perf_counter()
    for q in queries:
        matches.append(index.search(normalize(q.text), limit=limit))
    elapsed = time.perf_counter() - started
    return matches, len(queries) / elapsed if elapsed > 0 else 0.0


def score(queries: Sequence[Query], matches: Sequence[Match], threshold: float) -> dict[str, float]:
    answerable = [i for i, q in enumerate(queries) if q.faq_id is not None]
    negatives = [i for i, q in enumerate(queries) if q.faq_id is None]
    best = [str(m.best.faq_id) if m.best else None for m in matches]
    answered = [m.best is not None and m.score >= threshold for m in matches]
    top1 = sum(best[i] == queries[i].faq_id for i in answerable)
    hit5 = sum(queries[i].faq_id in {str(c.faq_id) for c in matches[i].candidates[:5]} for i in answerable)
    correct = sum(answered[i] and best[i] == queries[i].faq_id for i in answerable)
    given = sum(answered)
    return {
        "top1": round(top1 / max(len(answerable), 1), 4),
        "hit5": round(hit5 / max(len(answerable), 1), 4),
        "precision": round(correct / given, 4) if given else 1.0,
        "recall": round(correct / max(len(answerable), 1), 4),
        "rej_neg": round(sum(not answered[i] for i in negatives) / len(negatives), 4) if negatives else 1.0,
        "threshold": threshold,
    }


def evaluate(faq_path: str | Path, queries_path: str | Path, threshold: float, embedder: Embedder | None,
             cache: VectorCache | None = None) -> dict[str, Any]:
    records = read_file(faq_path)
    queries = read_queries(queries_path)
    index, build_s = build_index(records, embedder, cache)
    matches, qps = answer_all(index, queries)
    result: dict[str, Any] = score(queries, matches, threshold)
    stages: dict[str, int] = {}
    for m in matches:
        stages[m.stage] = stages.get(m.stage, 0) + 1
    result.update({
        "qps": round(qps, 1), "build_s": round(build_s, 3), "faqs": len(records), "queries": len(queries),
        "semantic": index.semantic, "stages": stages,
        "engine": getattr(embedder, "engine", None),  # qps depends on it (bot/faq/engine)
    })
    return result
