"""Padding-free runs: the batch's tokens packed row after row, padded only for attention.

Why: questions of a batch differ in length; padded to the longest, every product, layer norm
and GELU also runs over the padding (16 % more tokens over the ATEC questions 32 at a time,
even after the runtime's length buckets). Only attention needs rows of equal length, and
ONNX Runtime's packed attention kernels are CUDA-only; so the converted graph works on the
packed tokens [tokens, hidden] and, around each MultiHeadAttention, spreads them into
[batch, length, …] with one Gather and takes the real tokens back with another.

The packed graph is two-dimensional, [tokens, channels], from `embeddings` to the pooling:
the per-token quantization before each int8 product (int8.py) needs its activations as
[tokens, channels], so on the [batch, length, …] graph it had a Reshape there and back
(and a Shape) around every QuantizeLinear; here they are dropped: 156 of 670 nodes, 3.6 %
of a lone question's time (5.70 → 5.50 ms CPU, median of 5 alternating rounds over the
ATEC questions; a run of 32 unchanged), and the vectors the same (cosine ≥ 0.9999998).

Inputs of the packed graph: `embeddings` [tokens, hidden] (the real tokens only);
`mask` [batch, length] as before (MultiHeadAttention's key lengths); `spread` int64
[batch × length]: for each padded position, its packed token (any token for padding);
`back` int64 [tokens]: for each packed token, its padded position; `pool` [batch, tokens]:
1 / the row's length at the row's tokens (the mean pooling as one product).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from bot.faq.engine.graph import GraphBuilder


def packed(encoder: onnx.ModelProto, hidden: int) -> onnx.ModelProto:
    """The converted `encoder` (MultiHeadAttention after a Split of one Q/K/V product, the mean
    pooling at the end, as graph.build_encoder and int8.int8_products leave it) on packed tokens."""
    graph = encoder.graph
    producers = {out: node for node in graph.node for out in node.output}
    g = GraphBuilder(prefix="packed.")
    mask_shape = g.op("Shape", ["mask"])
    rows_of = {width: g.const(f"rows_of_{width}", np.array([-1, width], np.int64)) for width in (hidden, 3 * hidden)}
    padded_shape = g.op("Concat", [mask_shape, g.const("qkv_width", np.array([3 * hidden], np.int64))], axis=0)
    splits = {node.output[0]: node for node in graph.node if node.op_type == "Split"}
    pooled = next(node for node in graph.node if node.output[0] == "pooled")
    weighted = producers[pooled.input[0]]  # ReduceSum(Mul(x, mask weights))
    last = producers[weighted.input[0]].input[0]
    for node in graph.node:
        if node.op_type == "Split" and any(n.op_type == "MultiHeadAttention" and n.input[0] == node.output[0]
                                           for n in graph.node):
            flat = g.op("Reshape", [node.input[0], rows_of[3 * hidden]])
            spread = g.op("Reshape", [g.op("Gather", [flat, "spread"], axis=0), padded_shape])
            g.nodes.append(helper.make_node("Split", [spread, *node.input[1:]], list(node.output), name=node.name,
                                            axis=next(a.i for a in node.attribute if a.name == "axis")))
        elif node.op_type == "MultiHeadAttention" and node.input[0] in splits:
            attended = g.name("attended")
            g.nodes.append(helper.make_node(node.op_type, list(node.input), [attended], name=node.name,
                                            domain=node.domain, num_heads=next(a.i for a in node.attribute
                                                                               if a.name == "num_heads")))
            g.op("Gather", [g.op("Reshape", [attended, rows_of[hidden]]), "back"], axis=0, output=node.output[0])
        elif node is pooled:
            g.op("MatMul", ["pool", last], output="pooled")
        else:
            g.nodes.append(node)
    del graph.node[:]
    graph.node.extend(_live(_two_dimensional(g.nodes), {"pooled"}))
    graph.initializer.extend(g.initializers)
    graph.input.extend([helper.make_tensor_value_info("spread", TensorProto.INT64, ["padded"]),
                        helper.make_tensor_value_info("back", TensorProto.INT64, ["tokens"]),
                        helper.make_tensor_value_info("pool", TensorProto.FLOAT, ["batch", "tokens"])])
    for value in graph.input:
        if value.name == "embeddings":
            value.CopyFrom(helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["tokens", hidden]))
    used = {name for node in graph.node for name in node.input}
    kept = [tensor for tensor in graph.initializer if tensor.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return encoder


def _two_dimensional(nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """`nodes` on [tokens, channels]: each QuantizeLinear takes its activations as they are,
    without the Reshape to [tokens, channels] before it and the Reshape back (to its input's
    Shape) after it; the per-token zero points count the tokens as the first dimension
    (int8.int8_products counted batch × length)."""
    producers = {out: node for node in nodes for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    dropped: set[int] = set()
    renamed: dict[str, str] = {}
    for node in nodes:
        if node.op_type == "QuantizeLinear":
            before, after = producers[node.input[0]], consumers[node.output[0]]
            if before.op_type != "Reshape" or len(after) != 1 or after[0].op_type != "Reshape":
                continue
            shape = producers[after[0].input[1]]
            node.input[0] = before.input[0]
            renamed[after[0].output[0]] = node.output[0]
            dropped.update({id(after[0]), id(shape)})  # `before` goes by _live when nothing else reads it
        elif node.op_type == "Shape" and list(node.input) == ["embeddings"]:
            for attribute in node.attribute:
                if attribute.name == "end":
                    attribute.i = 1
    kept = [node for node in nodes if id(node) not in dropped]
    for node in kept:
        for i, name in enumerate(node.input):
            node.input[i] = renamed.get(name, name)
    return kept


def _live(nodes: list[onnx.NodeProto], outputs: set[str]) -> list[onnx.NodeProto]:
    """`nodes` without those whose results nothing uses (the padded pooling's mask sums)."""
    needed, live = set(outputs), []
    for node in reversed(nodes):
        if any(out in needed for out in node.output):
            live.append(node)
            needed.update(node.input)
    return live[::-1]


def packed_inputs(rows: list[np.ndarray]) -> dict[str, np.ndarray]:
    """`mask`, `spread`, `back` and `pool` for rows of token ids (the packed graph's inputs
    besides `embeddings`)."""
    lengths = np.array([len(row) for row in rows])
    length, tokens = int(lengths.max()), int(lengths.sum())
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    positions = np.arange(length)
    real = positions[None, :] < lengths[:, None]
    spread = np.where(real, starts[:, None] + positions[None, :], 0).astype(np.int64).reshape(-1)
    back = (np.arange(len(rows))[:, None] * length + positions[None, :])[real].astype(np.int64)
    pool = np.zeros((len(rows), tokens), np.float32)
    for i, (start, count) in enumerate(zip(starts, lengths)):
        pool[i, start:start + count] = 1.0 / count
    return {"mask": real.astype(np.int64), "spread": spread, "back": back, "pool": pool}
