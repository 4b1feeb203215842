"""Turning similarity into a confidence: small logistic models over three numbers.

Why: a raw similarity of 0.9 means different things for a query that resembles everything
("花呗怎么用") and one that resembles one FAQ only. The confidence is the probability that
the best FAQ is the right answer, from (best score, margin over the runner-up FAQ, how
similar the query is to the store in general). Few parameters fit on the dev split only
(`python bench/faq_quality.py --fit`), so the shipped threshold carries to unseen data;
the threshold is then a probability an operator can read: 0.6 = "right 6 times in 10".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Logistic:
    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    def __call__(self, values: dict[str, float]) -> float:
        z = self.bias + sum(w * values[f] for f, w in zip(self.features, self.weights))
        if z < -60:
            return 0.0
        return 1.0 / (1.0 + math.exp(-z))


def fit(rows: Sequence[dict[str, float]], labels: Sequence[int], features: Sequence[str],
        l2: float = 1e-2, iterations: int = 50) -> Logistic:
    """Newton-Raphson logistic regression (standardized inside, returned on raw features)."""
    import numpy as np

    X = np.array([[r[f] for f in features] for r in rows], dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    mu, sd = X.mean(0), X.std(0) + 1e-9
    Z = np.c_[(X - mu) / sd, np.ones(len(X))]
    w = np.zeros(Z.shape[1])
    reg = l2 * np.eye(len(w))
    reg[-1, -1] = 0.0
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(Z @ w)))
        hessian = (Z * (p * (1 - p))[:, None]).T @ Z + reg
        w -= np.linalg.solve(hessian, Z.T @ (p - y) + reg @ w)
    raw = w[:-1] / sd
    bias = float(w[-1] - (raw * mu).sum())
    return Logistic(tuple(features), tuple(round(float(x), 4) for x in raw), round(bias, 4))


# Fit on the ATEC dev split by `python bench/faq_quality.py --fit` (see the README's "FAQ engine").
# The ATEC store is one dense topic (花呗/借呗), which makes margins small; the same weights
# fit on BQ rank thresholds alike (cross-checked while choosing the features).
HYBRID = Logistic(("score", "margin", "spread"), (88.1219, 59.8848, -19.9962), -24.7976)
# The lexical fallback uses the similarity alone: its margin over other FAQs means little in
# a small multi-topic shop store, where one shared word already sets a question apart.
LEXICAL = Logistic(("score",), (10.0552,), -5.2321)

# A lexical answer this confident and this similar skips the embedding model (on ATEC dev
# 47 of 48 such queries, on BQ 26 of 27, were right). The similarity condition guards small
# stores, where one shared word already gives a large margin over unrelated FAQs.
LEXICAL_SHORTCUT = 0.9
LEXICAL_SHORTCUT_SIMILARITY = 0.7

# The shipped default threshold on the confidence (config `faq.threshold`): on ATEC dev it
# keeps precision (0.94) and rej_neg (0.96) above their goals with a margin for unseen data,
# at a recall of 0.70; 0.6 would give 0.92 / 0.94 / 0.74.
DEFAULT_THRESHOLD = 0.7
