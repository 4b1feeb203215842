"""The live FAQ store: an index over the enabled FAQs, rebuilt when the database changes.

Why: an FAQ saved in the admin panel or imported by the CLI must be answered by every
running `kefu serve` process within seconds, without a restart. Each process checks a cheap
fingerprint of the FAQ tables at most every `check_seconds` and rebuilds its immutable
index when the fingerprint moved; other threads keep matching on the previous index
meanwhile. Phrasing vectors are cached in the database (`FaqEmbedding`), so a rebuild
embeds only new text and a second process embeds nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import peewee

from bot.core import clock
from bot.core.db import database, insert_new
from bot.faq.matcher import Entry, FaqIndex, Match
from bot.faq.normalize import apply_synonyms, normalize
from bot.faq.semantic import Embedder, embed_cached, load_embedder, vector_key
from bot.core.models import Faq, FaqEmbedding, FaqQuestion, Synonym

_DEFAULT: Any = object()
INLINE_EMBEDDINGS = 64  # more new phrasings than this are embedded in the background
log = logging.getLogger("kefu.faq")


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


class DbVectorCache:
    """Phrasing vectors in the `faq_embedding` table, shared by every process."""

    def __init__(self, model: str) -> None:
        self.model = model

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        for start in range(0, len(keys), 500):
            chunk = list(keys[start:start + 500])
            for key, blob in FaqEmbedding.select(FaqEmbedding.key, FaqEmbedding.vector).where(
                FaqEmbedding.key.in_(chunk)
            ).tuples():
                found[key] = np.frombuffer(bytes(blob), dtype="<f4")
        return found

    def missing(self, model: str, texts: Sequence[str]) -> list[str]:
        keys = {vector_key(model, t): t for t in texts}
        found = self.get_many(list(keys))
        return [t for k, t in keys.items() if k not in found]

    def put_many(self, vectors: dict[str, np.ndarray]) -> None:
        now = clock.now()
        for key, vector in vectors.items():
            insert_new(FaqEmbedding.insert(key=key, model=self.model, created_at=now,
                                           vector=np.asarray(vector, dtype="<f4").tobytes()).on_conflict_ignore())


class FaqStore:
    def __init__(self, check_seconds: float = 2.0, embedder: Embedder | None = _DEFAULT) -> None:
        self.check_seconds = check_seconds
        self._embedder: Embedder | None = load_embedder() if embedder is _DEFAULT else embedder
        self._lock = threading.Lock()
        self._index = FaqIndex([])
        self._answers: dict[int, tuple[str, str]] = {}
        self._synonyms: dict[str, str] = {}
        self._fingerprint: tuple[Any, ...] | None = None
        self._checked_at = float("-inf")  # the first match builds the index
        self._warmer: threading.Thread | None = None

    @property
    def semantic(self) -> bool:
        return self._index.semantic

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
            originals: dict[int, list[str]] = {}
            for faq in Faq.select(Faq.id, Faq.answer, Faq.category).where(Faq.enabled == True):  # noqa: E712
                answers[faq.id] = (faq.answer, faq.category)
                phrasings[faq.id], originals[faq.id] = [], []
            for fq in FaqQuestion.select(FaqQuestion.faq, FaqQuestion.text).order_by(FaqQuestion.id):
                if fq.faq_id in phrasings:
                    phrasings[fq.faq_id].append(apply_synonyms(normalize(fq.text), synonyms))
                    originals[fq.faq_id].append(fq.text)
            entries = [Entry(fid, tuple(qs), tuple(originals[fid])) for fid, qs in phrasings.items() if qs]
            embedder, cache = self._embedder, None
            if embedder is not None:
                cache = DbVectorCache(embedder.name)
                missing = cache.missing(embedder.name, [q for e in entries for q in e.questions])
                if len(missing) > INLINE_EMBEDDINGS:
                    self._warm(embedder, cache, missing)
                    embedder = None  # lexical until the warmer has stored the vectors
            self._index = FaqIndex(entries, embedder=embedder, cache=cache)
            self._answers, self._synonyms, self._fingerprint = answers, synonyms, current
            return True

    def _warm(self, embedder: Embedder, cache: DbVectorCache, texts: list[str]) -> None:
        """Embed many new phrasings (a fresh start, a big import) off the request path."""
        if self._warmer is not None and self._warmer.is_alive():
            return

        def run() -> None:
            try:
                embed_cached(embedder, texts, cache)
            except Exception:  # the lexical index keeps answering; the next rebuild retries
                log.exception("embedding FAQ phrasings failed")
            finally:
                self._checked_at, self._fingerprint = float("-inf"), None  # rebuild, now with the vectors
            try:  # here rather than in the next customer's request
                self.refresh(force=True)
            except Exception:
                log.exception("rebuilding the FAQ index after embedding failed")
            finally:
                database.close()  # this thread's connection

        self._warmer = threading.Thread(target=run, name="kefu-faq-embed", daemon=True)
        self._warmer.start()

    def wait_warm(self, timeout: float | None = None) -> None:
        """Block until background embedding is done (the CLI import, tests)."""
        if self._warmer is not None:
            self._warmer.join(timeout)

    def match(self, text: str, limit: int = 5, exclude: int | None = None) -> Match:
        """`exclude`: an FAQ to leave out, as if it were not stored (bot.faq.conflicts)."""
        self.refresh()
        return self._index.search(self.normalize(text), limit=limit, exclude=exclude)

    def answer_for(self, faq_id: int, question: str = "") -> Answer | None:
        found = self._answers.get(faq_id)
        if found is None:
            return None
        return Answer(faq_id=faq_id, answer=found[0], category=found[1], question=question)

    def status(self) -> dict[str, Any]:
        """For /healthz: how many FAQs the index answers from, whether it matches by meaning
        (the embedding model) yet, and whether phrasings are being embedded right now (a
        fresh start or a big import: answers are lexical meanwhile). Reads no database."""
        warming = self._warmer is not None and self._warmer.is_alive()
        return {"faqs": len(self._answers), "semantic": self._index.semantic, "warming": warming,
                "model": self._embedder is not None,
                "engine": getattr(self._embedder, "engine", None)}

    def __len__(self) -> int:
        return len(self._answers)

    def __bool__(self) -> bool:  # an empty store is still a store (`store or FaqStore()`)
        return True
