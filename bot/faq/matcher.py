"""FAQ matching: a cascade of exact, lexical and semantic stages, with a calibrated confidence.

Why a cascade: the embedding model costs 10-15 ms of both cores per query, the rest well
under a millisecond. A question typed exactly like a phrasing (card clicks, repeats) is
answered from a dictionary; one whose character overlap alone is decisive skips the model;
only the rest are embedded.

Scoring (measured on the ATEC dev split, see bench/faq_quality.py):
- similarity = 0.96 * (cos(q, p) - 0.6 * hub(p)) + 0.04 * lexical(q, p), where hub(p) is
  the mean cosine of phrasing p to its 10 nearest other phrasings. Subtracting it (CSLS,
  Conneau et al. 2018) stops generic phrasings from winning every vague query:
  0.873 -> 0.891 top-1 alone, 0.9197 with the lexical term. The two weights sit on a
  plateau: hub 0.5-0.7 with lexical 0.03-0.05 get 353-355 of 386 ATEC queries right and
  217-225 of 346 BQ ones. 0.6 / 0.04 is its middle and its best point on both sets, but
  the differences are noise: re-choosing the weights inside 10-fold cross-validation
  scores 0.904 (ATEC) / 0.632 (BQ) on the held-out folds, below the old fixed 0.5 / 0.05
  (0.917 / 0.627), so expect about 0.91-0.92 on unseen ATEC-like queries;
- an FAQ scores as its best phrasing;
- confidence = a logistic model (bot.faq.calibration) of the similarity, the margin over
  the best other FAQ, the query's own mean similarity to the store, the IDF-weighted
  character coverage between the query and the best phrasing (LexicalIndex.coverage) and
  the query's length. The bot answers when the confidence reaches the threshold.

The index is immutable: the store builds a new one when FAQs change and swaps it in.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from bot.faq import calibration
from bot.faq.lexical import LexicalIndex
from bot.faq.semantic import Embedder, MemoryCache, VectorCache, embed_cached

SEMANTIC_WEIGHT = 0.96
HUB_WEIGHT = 0.6
HUB_NEIGHBOURS = 10
RECENT_QUERIES = 4096  # answered matches kept per index (an index lives until the next edit)


@dataclass(frozen=True)
class Entry:
    faq_id: int | str
    questions: tuple[str, ...]  # already normalized
    originals: tuple[str, ...] = ()  # as typed by the operator, for display (same order)


@dataclass(frozen=True)
class Candidate:
    faq_id: int | str
    score: float  # the confidence that this FAQ is the answer (0..1)
    question: str  # its best phrasing, as the operator typed it when known
    similarity: float = 0.0  # the raw similarity of that phrasing


@dataclass(frozen=True)
class Match:
    """The matcher's verdict on one query: the ranked candidates (best first)."""

    candidates: tuple[Candidate, ...] = field(default_factory=tuple)
    stage: str = "empty"  # exact | lexical | semantic | empty
    features: dict[str, float] = field(default_factory=dict)

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    @property
    def runner_up(self) -> Candidate | None:
        return self.candidates[1] if len(self.candidates) > 1 else None

    @property
    def score(self) -> float:
        """The confidence of the best candidate (what the threshold applies to)."""
        return self.candidates[0].score if self.candidates else 0.0


def hubness(vectors: np.ndarray, k: int = HUB_NEIGHBOURS, chunk: int = 256) -> np.ndarray:
    """Each row's mean cosine to its k nearest other rows (0 when alone). In chunks of rows,
    partitioned in place: 1,024 rows and a partitioned copy were 41 MB at 5,000 FAQs, the
    process's peak memory; 256 rows are 5 MB, and as fast."""
    n = len(vectors)
    out = np.zeros(n, dtype=np.float32)
    if n < 2:
        return out
    k = min(k, n - 1)
    for start in range(0, n, chunk):
        sims = vectors[start:start + chunk] @ vectors.T
        rows = np.arange(sims.shape[0])
        sims[rows, rows + start] = -1.0
        sims.partition(-k, axis=1)
        out[start:start + chunk] = sims[:, -k:].mean(1)
    return out


class FaqIndex:
    """Every phrasing of every FAQ, ready to score a normalized query."""

    def __init__(self, entries: Iterable[Entry], embedder: Embedder | None = None,
                 cache: VectorCache | None = None, lexical_shortcut: float = calibration.LEXICAL_SHORTCUT) -> None:
        self._faq_ids: list[int | str] = []
        self._texts: list[str] = []
        self._display: list[str] = []
        rows_of: list[int] = []
        for entry in entries:
            slot = len(self._faq_ids)
            self._faq_ids.append(entry.faq_id)
            seen: set[str] = set()
            for i, q in enumerate(entry.questions):
                if q.strip() and q not in seen:
                    seen.add(q)
                    self._texts.append(q)
                    self._display.append(entry.originals[i] if i < len(entry.originals) else q)
                    rows_of.append(slot)
        self._faq_of = np.array(rows_of, dtype=np.int64)
        self._exact: dict[str, int] = {}
        for row, text in enumerate(self._texts):
            self._exact.setdefault(text, row)
        self._lexical = LexicalIndex(self._texts)
        self._recent: OrderedDict[tuple[str, int], Match] = OrderedDict()  # customers repeat questions
        self._recent_lock = threading.Lock()
        self._lexical_shortcut = lexical_shortcut
        self.embedder = embedder if self._texts else None
        self._vectors: np.ndarray | None = None
        self._hub: np.ndarray | None = None
        if self.embedder is not None:
            self._vectors = embed_cached(self.embedder, self._texts, cache if cache is not None else MemoryCache())
            self._hub = hubness(self._vectors, HUB_NEIGHBOURS)

    def __len__(self) -> int:
        return len(self._texts)

    @property
    def semantic(self) -> bool:
        return self._vectors is not None

    def search(self, query: str, limit: int = 5, exclude: int | str | None = None) -> Match:
        """The best FAQs for a normalized query. `exclude` scores it as if that FAQ were not
        in the store (bot.faq.conflicts: would this phrasing be answered by another FAQ?)."""
        if not self._texts or not query.strip():
            return Match()
        if exclude is not None:
            return self._search(query, limit, self._slot_of(exclude))
        key = (query, limit)
        with self._recent_lock:
            hit = self._recent.get(key)
            if hit is not None:
                self._recent.move_to_end(key)
                return hit
        match = self._search(query, limit)
        with self._recent_lock:
            self._recent[key] = match
            if len(self._recent) > RECENT_QUERIES:
                self._recent.popitem(last=False)
        return match

    def _slot_of(self, faq_id: int | str) -> int:
        return next((slot for slot, fid in enumerate(self._faq_ids) if fid == faq_id), -1)

    def _search(self, query: str, limit: int, skip: int | None = None) -> Match:
        lexical = self._lexical.scores(query)
        exact = self._exact.get(query)
        if exact is not None and skip is not None and int(self._faq_of[exact]) == skip:
            exact = next((r for r, t in enumerate(self._texts) if t == query and int(self._faq_of[r]) != skip), None)
        if exact is not None:
            return self._ranked(query, lexical, limit, "exact", force=exact, skip=skip)
        if self._vectors is None:
            return self._ranked(query, lexical, limit, "lexical", skip=skip)
        # a near-duplicate (its best similarity, what _ranked puts first, reaches the shortcut's)
        # is answered here when the lexical confidence is decisive; the rest go to the model
        # without ranking this stage (0.08 ms)
        if self._best(lexical, skip) >= calibration.LEXICAL_SHORTCUT_SIMILARITY:
            lex_match = self._ranked(query, lexical, limit, "lexical", skip=skip)
            if lex_match.score >= self._lexical_shortcut:
                return lex_match
        similarity, spread = self._similarity(query, lexical)
        return self._ranked(query, similarity, limit, "semantic", spread=spread, skip=skip)

    def _best(self, scores: np.ndarray, skip: int | None) -> float:
        """The best score of any phrasing outside the `skip` slot (what _ranked puts first)."""
        if skip is not None and skip >= 0:
            scores = scores[self._faq_of != skip]
        return float(scores.max()) if len(scores) else float("-inf")

    def _similarity(self, query: str, lexical: np.ndarray) -> tuple[np.ndarray, float]:
        assert self.embedder is not None and self._vectors is not None and self._hub is not None
        embed_query = getattr(self.embedder, "embed_query", None)
        vector = embed_query(query) if embed_query else self.embedder.embed([query])[0]
        cosine = self._vectors @ vector  # BLAS on this thread only (OPENBLAS_NUM_THREADS, bot/__init__)
        similarity = SEMANTIC_WEIGHT * (cosine - HUB_WEIGHT * self._hub) + (1 - SEMANTIC_WEIGHT) * lexical
        return similarity, _top_mean(cosine, HUB_NEIGHBOURS)

    def _ranked(self, query: str, scores: np.ndarray, limit: int, stage: str, force: int | None = None,
                spread: float = 0.0, skip: int | None = None) -> Match:
        """Best phrasing per FAQ, best FAQs first, each with its confidence (`skip`: a slot left out)."""
        limit = max(limit, 2)
        if skip is not None and skip >= 0:
            scores = np.where(self._faq_of == skip, -np.inf, scores)
        want = min(len(scores), limit * 8 + 16)
        top = np.argpartition(-scores, want - 1)[:want] if want < len(scores) else np.arange(len(scores))
        order = top[np.argsort(-scores[top], kind="stable")]
        if force is not None:
            order = np.concatenate([[force], order[order != force]])
        picked: list[int] = []
        seen: set[int] = set()
        for row in order:
            slot = int(self._faq_of[row])
            if slot not in seen and slot != skip:
                seen.add(slot)
                picked.append(int(row))
                if len(picked) >= limit:
                    break
        if not picked:  # every phrasing was the skipped FAQ's
            return Match()
        sims = [float(scores[r]) for r in picked]
        model = calibration.HYBRID if stage == "semantic" else calibration.LEXICAL
        # per candidate where the model reads it (a few microseconds each), else the best only
        coverage = (self._lexical.coverages(query, picked) if "coverage" in model.features
                    else self._lexical.coverages(query, picked[:1]) + [0.0] * (len(picked) - 1))
        if force is not None:
            sims[0] = max(sims[0], 1.0)
        features = {"score": sims[0], "margin": sims[0] - (sims[1] if len(sims) > 1 else 0.0),
                    "spread": spread, "coverage": coverage[0], "length": query_length(query)}
        candidates = []
        for i, row in enumerate(picked):
            other = sims[1] if i == 0 and len(sims) > 1 else (sims[0] if i else 0.0)
            values = {**features, "score": sims[i], "margin": sims[i] - other, "coverage": coverage[i]}
            confidence = 1.0 if (force is not None and i == 0) else model(values)
            candidates.append(Candidate(self._faq_ids[int(self._faq_of[row])], confidence, self._display[row], sims[i]))
        return Match(tuple(candidates), stage, features)


def query_length(query: str) -> float:
    """log(1 + characters, spaces excluded): longer questions say more about what they want,
    so the same similarity is more telling (a calibration feature)."""
    return math.log1p(sum(not c.isspace() for c in query))


def _top_mean(values: np.ndarray, k: int) -> float:
    k = min(k, len(values))
    return float(np.partition(values, -k)[-k:].mean()) if k else 0.0

