"""Micro-batching: questions that arrive together go through one run of the model.

Why: a batch of 32 short questions costs the encoder far less than 32 runs of one (each
weight matrix is streamed once for all of them, and the run's fixed costs are paid once).
Concurrent webhook requests land in the same few milliseconds; each wants one vector.

Why runs used to split (a burst of 32 ran as 1 + 14 + 17): the requests of a burst do not
reach the batcher together. Each first does its own Python work (normalizing, the lexical
scores over every phrasing) one after another under the GIL, so they arrive a few tenths
of a millisecond apart over 10-15 ms. The first ran alone at once; those that had arrived
when it ended ran next, and the stragglers, arriving during that run, made a third.

How, without delaying a lone question by more than SETTLE_S: whoever is to run next (the
first caller, or the first waiting one when a run ends) first lets the arrivals settle: it
runs as soon as SETTLE_S passes with no new arrival (or MAX_BATCH are queued, or LINGER_S
has passed since it began waiting). A lone question waits SETTLE_S once; a burst whose
questions come closer together than that goes as one run. Callers that arrive while a run
is in progress queue up and go in the next run, whole; each caller gets its own row.

A question with no other arrival in the last ALONE_AFTER settles (5 ms) is alone: it runs at
once, without the settle. Questions asked one after another (a lone customer, the learning
loop's sequential calls) pay no wait at all, and a burst's first question runs alone while
the rest gather for the next run, as they did before the settle.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

MAX_BATCH = 64
SETTLE_S = 0.001  # quiet this long after the last arrival: the burst is in
LINGER_S = 0.020  # at most this long gathering (a steady trickle would otherwise never run)
ALONE_AFTER = 5  # settles without another arrival before a question: it is alone, it runs at once


@dataclass
class _Request:
    text: str
    vector: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = field(default=False)


class MicroBatcher:
    """`one(text)` from many threads; `run(texts)` sees them in batches."""

    def __init__(self, run: Callable[[Sequence[str]], np.ndarray], max_batch: int = MAX_BATCH,
                 settle_s: float = SETTLE_S, linger_s: float = LINGER_S) -> None:
        self._run = run
        self._max_batch = max_batch
        self._settle_s = settle_s
        self._linger_s = linger_s
        lock = threading.Lock()
        self._changed = threading.Condition(lock)  # a run ended: its callers, the next runner
        self._arrived = threading.Condition(lock)  # a question queued: the runner gathering
        self._queue: list[_Request] = []
        self._running = False  # a run is in progress, or its runner is gathering
        self._last_arrival = float("-inf")  # time.monotonic() of the last question queued
        self.batch_sizes: list[int] = []  # the last runs' sizes, for tests and the bench

    def one(self, text: str) -> np.ndarray:
        """The vector of `text`, computed with the questions that came with it."""
        request = _Request(text)
        with self._changed:
            now = time.monotonic()
            alone = now - self._last_arrival > ALONE_AFTER * self._settle_s and not self._queue
            self._last_arrival = now
            self._queue.append(request)
            self._arrived.notify()
            while True:
                while self._running and not request.done:
                    self._changed.wait()
                if request.done:
                    break
                self._running = True
                if not (alone and len(self._queue) == 1):  # a lone question does not wait for company
                    self._gather()
                alone = False
                batch = self._queue[:self._max_batch]
                del self._queue[:self._max_batch]
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

    def pending(self) -> int:
        """Questions queued for the next run (tests wait on it)."""
        with self._changed:
            return len(self._queue)

    def _gather(self) -> None:
        """With the lock held: wait until arrivals pause for settle_s (see the module's docstring)."""
        deadline = time.monotonic() + self._linger_s
        while len(self._queue) < self._max_batch:
            seen = len(self._queue)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._arrived.wait(min(self._settle_s, left))
            if len(self._queue) == seen:
                return

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
