"""Measuring the learning loop: how much the bot gains from an operator working its unanswered list.

Why a simulation over labelled queries: the loop's worth (grouping, which phrasings to keep,
the confidence) shows only in what the *next* customers get, and a shop cannot try variants
on its customers. `kefu faq learn-eval` splits labelled queries in two halves by a seed. The
bot answers the first half through the production matcher (normalization, `FaqIndex`'s
cascade, calibration, the threshold); what it leaves unanswered is grouped by the admin's
own `learning.group_questions`. Each round an operator acts on the K largest groups with the
admin's one-step actions: "add as phrasing" to the FAQ most of the group belongs to (the
labels play the operator's knowledge), or "dismiss" when most have no FAQ; the phrasings kept
are the ones `learning.choose_phrasings` keeps. Then the second half is answered by the
rebuilt index and scored, beside its ceiling: how many second-half misses name an FAQ that a
first-half unanswered question names (no loop can teach the others). A naive loop runs beside it on the same split: every unanswered
question alone, the first K, each added to its own FAQ or dismissed.

No database: the store is in memory, as in `kefu faq eval`; vectors come through a cache, so
the rounds and the naive loop embed nothing twice.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from bot.faq import learning
from bot.faq.eval import Query, answer_all, entries_of, score
from bot.faq.io import FaqRecord
from bot.faq.matcher import FaqIndex, Match
from bot.faq.normalize import normalize
from bot.faq.semantic import Embedder, MemoryCache, VectorCache, embed_cached

Grouper = Callable[[Sequence[str], "np.ndarray | None"], list[list[int]]]


@dataclass
class Pending:
    """One open unanswered question of the first half."""

    text: str
    normalized: str
    gold: str | None
    vector: np.ndarray | None


@dataclass
class Store:
    """The in-memory FAQ store: phrasings per FAQ id, in the order they were added."""

    records: list[FaqRecord]
    added: dict[str, list[str]] = field(default_factory=dict)

    def phrasings(self, faq_id: str) -> list[str]:
        base = next(r.questions for r in self.records if r.id == faq_id)
        return [*base, *self.added.get(faq_id, [])]

    def current(self) -> list[FaqRecord]:
        return [FaqRecord(r.id, (*r.questions, *self.added.get(r.id, ())), r.answer, r.category)
                for r in self.records]


class CachedEmbedder:
    """An embedder whose every vector, queries included, goes through one cache: the rounds
    rebuild the index and answer the same queries again without embedding them again."""

    def __init__(self, inner: Embedder, cache: VectorCache) -> None:
        self.inner, self.cache = inner, cache
        self.name = inner.name
        self.engine = getattr(inner, "engine", None)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return embed_cached(self.inner, texts, self.cache)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed([text])[0]


class Simulation:
    """One split of the queries, and the loops played on it."""

    def __init__(self, records: Sequence[FaqRecord], first: Sequence[Query], second: Sequence[Query],
                 embedder: Embedder | None, threshold: float, cache: VectorCache | None = None,
                 grouper: Grouper | None = None) -> None:
        self.records = list(records)
        self.threshold = threshold
        self.embedder = CachedEmbedder(embedder, cache if cache is not None else MemoryCache()) if embedder else None
        self.first, self.second = list(first), list(second)
        self.grouper = grouper or (lambda texts, vectors: learning.group_questions(texts, vectors))
        index = self.index(Store(self.records))
        matches, _ = answer_all(index, self.first)
        # newest first, as the admin lists them: the first half arrives in its shuffled order
        unanswered = [q for q, m in zip(self.first, matches) if not (m.best and m.score >= threshold)][::-1]
        texts = [normalize(q.text) for q in unanswered]
        vectors = self.embedder.embed(texts) if self.embedder and texts else None
        self.unanswered = [Pending(q.text, t, q.faq_id, None if vectors is None else vectors[i])
                           for i, (q, t) in enumerate(zip(unanswered, texts))]
        matches, _ = answer_all(index, self.second)
        self.before = self._figures(matches)
        self.reachable = reachable(self.second, matches, threshold, {p.gold for p in self.unanswered})

    def index(self, store: Store) -> FaqIndex:
        return FaqIndex(entries_of(store.current()), embedder=self.embedder)

    def measure(self, index: FaqIndex) -> dict[str, float]:
        return self._figures(answer_all(index, self.second)[0])

    def _figures(self, matches: Sequence[Match]) -> dict[str, float]:
        figures = score(self.second, matches, self.threshold)
        figures.pop("threshold", None)
        return figures

    def play(self, rounds: int, actions: int, naive: bool = False) -> list[dict[str, Any]]:
        """Rounds of K operator actions, each followed by answering the second half."""
        store = Store(self.records)
        pending = list(self.unanswered)
        out: list[dict[str, Any]] = []
        for number in range(1, rounds + 1):
            if naive:
                groups = [[i] for i in range(len(pending))][:actions]
            else:
                vectors = np.stack([p.vector for p in pending]) if pending and self.embedder else None
                groups = self.grouper([p.normalized for p in pending], vectors)[:actions]
            taken = Counter[str]()
            mixed = 0
            resolved: set[int] = set()
            for members in groups:
                labels = [pending[j].gold for j in members]
                mixed += len(set(labels)) > 1
                target = operator_choice(labels)
                if target is None:
                    taken["dismissed"] += 1
                else:
                    taken["added"] += 1
                    taken["phrasings"] += self.teach(store, target, [pending[j] for j in members])
                same = {pending[j].normalized for j in members}  # learning._resolve: the same text too
                resolved |= {i for i, p in enumerate(pending) if p.normalized in same} | set(members)
            pending = [p for i, p in enumerate(pending) if i not in resolved]
            out.append({"round": number, **self.measure(self.index(store)), "groups": len(groups),
                        "mixed": mixed, "questions": len(resolved), "added": taken["added"],
                        "dismissed": taken["dismissed"], "phrasings": taken["phrasings"]})
        return out

    def teach(self, store: Store, faq_id: str, members: Sequence[Pending]) -> int:
        """The admin's "add as phrasing" on the in-memory store; how many phrasings it added."""
        existing = store.phrasings(faq_id)
        kept = learning.choose_phrasings([p.text for p in members], existing)
        store.added.setdefault(faq_id, []).extend(kept)
        return len(kept)


def reachable(queries: Sequence[Query], matches: Sequence[Match], threshold: float,
              taught: set[str | None]) -> dict[str, float]:
    """The loop's ceiling on the second half: its misses (answerable, not answered right) and how
    many of them name an FAQ that some first-half unanswered question names, the only FAQs an
    operator working that list can teach. Without this, "recall did not move" cannot tell a weak
    loop from a split that leaves it nothing to learn (ATEC: 0-1 of about 50 misses per seed)."""
    answerable = [q for q in queries if q.faq_id is not None]
    misses = [q for q, m in zip(queries, matches) if q.faq_id is not None
              and not (m.best is not None and m.score >= threshold and str(m.best.faq_id) == q.faq_id)]
    shared = sum(q.faq_id in taught for q in misses)
    correct = len(answerable) - len(misses)
    return {"misses": len(misses), "reachable": shared,
            "recall_ceiling": round((correct + shared) / max(len(answerable), 1), 4)}


def operator_choice(labels: Sequence[str | None]) -> str | None:
    """What the operator does with a group: None (dismiss) when most of its questions have no
    FAQ, else the FAQ most of the others belong to (the earliest listed on a tie)."""
    known = [label for label in labels if label is not None]
    if len(known) * 2 < len(labels) or not known:
        return None
    return Counter(known).most_common(1)[0][0]


def split(queries: Sequence[Query], seed: int) -> tuple[list[Query], list[Query]]:
    """The queries in two halves, shuffled by `seed`: the first arrives before the operator works."""
    order = list(range(len(queries)))
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    return [queries[i] for i in order[:half]], [queries[i] for i in order[half:]]


def _gain(before: dict[str, float], rounds: list[dict[str, Any]]) -> float:
    return round(rounds[-1]["recall"] - before["recall"], 4) if rounds else 0.0


def learn_eval(records: Sequence[FaqRecord], queries: Sequence[Query], embedder: Embedder | None, threshold: float,
               rounds: int = 1, actions: int = 30, seed: int = 0, cache: VectorCache | None = None) -> dict[str, Any]:
    """One JSON-ready object: the second half before learning, then per round for kefu's loop
    and the naive one, and the recall each gained."""
    sim = Simulation(records, *split(queries, seed), embedder, threshold, cache)
    kefu = sim.play(rounds, actions)
    naive = sim.play(rounds, actions, naive=True)
    kefu_gain, naive_gain = _gain(sim.before, kefu), _gain(sim.before, naive)
    acted = sum(r["groups"] for r in kefu)
    return {
        "seed": seed, "threshold": threshold, "rounds": rounds, "actions": actions, "faqs": len(records),
        "first_half": len(sim.first), "second_half": len(sim.second), "unanswered": len(sim.unanswered),
        "unanswered_answerable": sum(p.gold is not None for p in sim.unanswered),
        "semantic": sim.embedder is not None, "before": sim.before, "second_half_misses": sim.reachable,
        "kefu": {"rounds": kefu, "recall_gain": kefu_gain,
                 "mixed_share": round(sum(r["mixed"] for r in kefu) / acted, 4) if acted else 0.0},
        "naive": {"rounds": naive, "recall_gain": naive_gain},
        "gain_ratio": round(kefu_gain / naive_gain, 2) if naive_gain > 0 else None,
    }


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Several seeds: each run's headline figures and their means."""
    keys = ("precision", "recall", "rej_neg", "top1")
    rows = [{"seed": r["seed"], "kefu_gain": r["kefu"]["recall_gain"], "naive_gain": r["naive"]["recall_gain"],
             "mixed_share": r["kefu"]["mixed_share"], "reachable": r["second_half_misses"]["reachable"],
             "misses": r["second_half_misses"]["misses"],
             "min_precision": min(x["precision"] for x in r["kefu"]["rounds"]),
             "min_rej_neg": min(x["rej_neg"] for x in r["kefu"]["rounds"])} for r in runs]
    mean = {k: round(float(np.mean([row[k] for row in rows])), 4)
            for k in ("kefu_gain", "naive_gain", "mixed_share", "min_precision", "min_rej_neg", "reachable", "misses")}
    mean["before"] = {k: round(float(np.mean([r["before"][k] for r in runs])), 4) for k in keys}
    mean["gain_ratio"] = round(mean["kefu_gain"] / mean["naive_gain"], 2) if mean["naive_gain"] > 0 else None
    return {"seeds": rows, "mean": mean, "runs": list(runs)}
