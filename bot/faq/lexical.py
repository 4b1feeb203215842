"""Lexical similarity: character unigram and bigram overlap (Dice) against every phrasing.

Why characters and Dice: Chinese customer questions are short and unsegmented, so character
grams need no tokenizer and survive typos; on our evaluation data unigram Dice ranks better
than TF-IDF (0.80 vs 0.78 top-1 on ATEC) and its value is comparable across queries, which
the confidence calibration needs. The index is a set of numpy posting arrays, so one query
costs a few `bincount`s even with tens of thousands of phrasings.

`coverage` adds what Dice misses for the confidence: how much of the *distinctive* content
two texts share. Characters are weighted by their rarity in the store (IDF), so in a store
where every question says 花呗, "手机" vs "电脑" weighs more than 花呗/怎么; the smaller of the two
directions counts, so a phrasing with a distinctive word the query lacks is not "covered".
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def unigrams(text: str) -> set[str]:
    return {c for c in text if not c.isspace()}


def bigrams(text: str) -> set[str]:
    chars = [c for c in text if not c.isspace()]
    return {a + b for a, b in zip(chars, chars[1:])}


class _GramIndex:
    """Postings (gram -> phrasing rows) as one CSR-style array pair."""

    def __init__(self, gram_sets: Sequence[set[str]]) -> None:
        vocab: dict[str, int] = {}
        rows: list[list[int]] = []
        for row, grams in enumerate(gram_sets):
            for g in grams:
                gid = vocab.setdefault(g, len(vocab))
                if gid == len(rows):
                    rows.append([])
                rows[gid].append(row)
        self.vocab = vocab
        self.sizes = np.array([len(g) for g in gram_sets], dtype=np.float32)
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        self.offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        self.postings = np.fromiter((r for posting in rows for r in posting), dtype=np.int64, count=int(lengths.sum()))

    def dice(self, grams: set[str]) -> np.ndarray:
        n = len(self.sizes)
        ids = [self.vocab[g] for g in grams if g in self.vocab]
        if not grams or not ids or n == 0:
            return np.zeros(n, dtype=np.float32)
        hits = np.concatenate([self.postings[self.offsets[i]:self.offsets[i + 1]] for i in ids])
        inter = np.bincount(hits, minlength=n).astype(np.float32)
        return 2.0 * inter / (self.sizes + len(grams))


class LexicalIndex:
    """Scores a normalized query against every normalized phrasing, in row order."""

    def __init__(self, phrasings: Sequence[str]) -> None:
        self._uni = _GramIndex([unigrams(p) for p in phrasings])
        self._bi = _GramIndex([bigrams(p) for p in phrasings])
        self.size = len(phrasings)
        self._chars = [frozenset(unigrams(p)) for p in phrasings]
        offsets = self._uni.offsets
        self._idf = {g: math.log((self.size + 1) / (int(offsets[i + 1] - offsets[i]) + 0.5))
                     for g, i in self._uni.vocab.items()}
        self._idf_unseen = math.log((self.size + 1) / 0.5)
        self._mass = [sum(self.idf(g) for g in chars) for chars in self._chars]  # each phrasing's own

    def idf(self, gram: str) -> float:
        """log((N + 1) / (df + 0.5)) over the N phrasings: rare characters weigh more."""
        return self._idf.get(gram, self._idf_unseen)

    def coverage(self, query: str, row: int) -> float:
        """IDF mass of the characters the query and phrasing `row` share, over the larger
        of their own IDF masses: 1 when they use the same characters, small when either
        has distinctive characters the other lacks."""
        return self.coverages(query, [row])[0]

    def coverages(self, query: str, rows: Sequence[int]) -> list[float]:
        """`coverage` of the query against each of `rows`, the query's own mass summed once."""
        mine = unigrams(query)
        if not mine:
            return [0.0] * len(rows)
        mass = sum(self.idf(g) for g in mine)
        return [sum(self.idf(g) for g in mine & self._chars[row]) / max(mass, self._mass[row])
                if self._chars[row] else 0.0 for row in rows]

    def scores(self, query: str) -> np.ndarray:
        """The mean of unigram and bigram Dice, in [0, 1], one per phrasing."""
        return (self._uni.dice(unigrams(query)) + self._bi.dice(bigrams(query))) / 2.0
