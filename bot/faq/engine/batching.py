"""Micro-batching: questions that arrive together go through one run of the model.

Why: a batch of 32 short questions costs the encoder far less than 32 runs of one (each
weight matrix is streamed once for all of them, and the run's fixed costs are paid once).
Concurrent webhook requests land in the same few milliseconds; each wants one vector.

How, without delaying a lone question: the first caller runs at once, by itself. Callers
that arrive while a run is in progress queue up; when it ends, one of them (the first
waiting) runs everything queued meanwhile as one batch, and hands each caller its row.
So a question waits at most for the run in progress, never for a timer, and under load
the batches grow by themselves to what arrived during the previous run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

MAX_BATCH = 64


@dataclass
class _Request:
    text: str
    vector: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class MicroBatcher:
    """`one(text)` from many threads; `run(texts)` sees them in batches."""

    def __init__(self, run: Callable[[Sequence[str]], np.ndarray], max_batch: int = MAX_BATCH) -> None:
        self._run = run
        self._max_batch = max_batch
        self._changed = threading.Condition()
        self._queue: list[_Request] = []
        self._running = False
        self.batch_sizes: list[int] = []  # the last runs' sizes, for tests and the bench

    def one(self, text: str) -> np.ndarray:
        """The vector of `text`, computed alone or with the questions that came with it."""
        request = _Request(text)
        with self._changed:
            self._queue.append(request)
            while True:
                while self._running and not request.done:
                    self._changed.wait()
                if request.done:
                    break
                batch = self._queue[:self._max_batch]
                del self._queue[:self._max_batch]
                self._running = True
                self._changed.release()
                try:
                    self._compute(batch)
                finally:
                    self._changed.acquire()
                    self._running = False
                    self._changed.notify_all()
        if request.error is not None:
            raise request.error
        assert request.vector is not None
        return request.vector

    def _compute(self, batch: list[_Request]) -> None:
        try:
            vectors = self._run([r.text for r in batch])
        except BaseException as error:  # every caller of the batch hears of it
            for r in batch:
                r.error, r.done = error, True
            return
        self.batch_sizes = [*self.batch_sizes[-99:], len(batch)]
        for r, vector in zip(batch, vectors):
            r.vector, r.done = vector, True
