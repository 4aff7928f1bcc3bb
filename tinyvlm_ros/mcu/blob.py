"""Binary formats the firmware reads: the int8 model blob and the text-embedding table blob.

Both are little endian, versioned and CRC-checked; their header layouts come from
``firmware/protocol/protocol.json`` through :mod:`tinyvlm_ros.mcu.protocol_constants`.

Model blob::

    header (48 B) | n_layers x layer record (36 B) | per layer, 4-byte aligned:
    weights int8 | bias int32[out_c] | mult int32[out_c] | shift int32[out_c]

Conv weights are ``[out_c][k][k][in_c]``, depthwise weights ``[k][k][c]`` (CMSIS-NN layouts).

Table blob (the RAM table of LOAD_TABLE and the flash vocabulary alike)::

    header (32 B) | scale_q24 int32[rows] | phrase_hash uint32[rows] | data int8[rows][dims]

The header carries the model id (rows embedded for another model are refused) and a text id (the host's
text embedder that made the rows, see :mod:`tinyvlm_ros.mcu.vocab`).
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from tinyvlm_ros.mcu import protocol_constants as pc


def _pack(name: str, **values: int) -> bytes:
    fmt, names = pc.STRUCTS[name]
    return struct.pack(fmt, *(int(values.get(n, 0)) for n in names))


def _unpack(name: str, data: bytes, offset: int = 0) -> dict:
    fmt, names = pc.STRUCTS[name]
    size = struct.calcsize(fmt)
    if len(data) - offset < size:
        raise ValueError(f"{name}: need {size} bytes at offset {offset}, have {len(data) - offset}")
    return dict(zip(names, struct.unpack_from(fmt, data, offset)))


@dataclass
class Layer:
    """One int8 layer: ``op`` is ``"conv"`` or ``"dw"``; arrays as the firmware stores them.

    Attributes:
        weights: int8, conv ``[out_c, k, k, in_c]``, depthwise ``[k, k, c]``.
        bias, mult, shift: int32 ``[out_c]``; requantization as in :func:`reference.requantize`.
    """

    op: str
    k: int
    stride: int
    pad: int
    in_c: int
    out_c: int
    in_h: int
    in_w: int
    in_zp: int
    out_zp: int
    act_min: int
    act_max: int
    weights: np.ndarray
    bias: np.ndarray
    mult: np.ndarray
    shift: np.ndarray

    @property
    def out_h(self) -> int:
        """Output height."""
        return (self.in_h + 2 * self.pad - self.k) // self.stride + 1

    @property
    def out_w(self) -> int:
        """Output width."""
        return (self.in_w + 2 * self.pad - self.k) // self.stride + 1

    @property
    def macs(self) -> int:
        """Multiply-accumulates per frame."""
        per = self.k * self.k * (self.in_c if self.op == "conv" else 1)
        return self.out_h * self.out_w * self.out_c * per


@dataclass
class Model:
    """An int8 region encoder: ``in_h x in_w x in_c`` uint8 pixels -> ``grid_h x grid_w x embed_dim`` int8.

    ``flags`` holds ``ModelFlag`` bits, e.g. ``RANDOM_WEIGHTS`` for an untrained encoder.
    """

    model_id: int
    in_w: int
    in_h: int
    in_c: int
    layers: List[Layer] = field(default_factory=list)
    flags: int = 0

    @property
    def grid_w(self) -> int:
        """Region grid width."""
        return self.layers[-1].out_w

    @property
    def grid_h(self) -> int:
        """Region grid height."""
        return self.layers[-1].out_h

    @property
    def embed_dim(self) -> int:
        """Region embedding size."""
        return self.layers[-1].out_c

    @property
    def macs(self) -> int:
        """Multiply-accumulates per frame."""
        return sum(layer.macs for layer in self.layers)


_OPS = {"conv": int(pc.LayerOp.CONV), "dw": int(pc.LayerOp.DWCONV)}
_OP_NAMES = {v: k for k, v in _OPS.items()}


def _align(n: int) -> int:
    return (n + 3) & ~3


def pack_model(model: Model) -> bytes:
    """Serialize a model into the firmware's blob format."""
    if not model.layers:
        raise ValueError("model has no layers")
    n = len(model.layers)
    off = _align(pc.MODEL_HEADER_SIZE + n * pc.MODEL_LAYER_SIZE)
    records, arrays = [], []
    for layer in model.layers:
        w = np.ascontiguousarray(layer.weights, dtype=np.int8).tobytes()
        parts = [w, np.asarray(layer.bias, "<i4").tobytes(), np.asarray(layer.mult, "<i4").tobytes(),
                 np.asarray(layer.shift, "<i4").tobytes()]
        offs = []
        for p in parts:
            offs.append(off)
            arrays.append((off, p))
            off = _align(off + len(p))
        records.append(_pack("layer", op=_OPS[layer.op], k=layer.k, stride=layer.stride, pad=layer.pad,
                             in_c=layer.in_c, out_c=layer.out_c, in_h=layer.in_h, in_w=layer.in_w,
                             out_h=layer.out_h, out_w=layer.out_w, in_zp=layer.in_zp,
                             out_zp=layer.out_zp, act_min=layer.act_min,
                             act_max=layer.act_max, w_off=offs[0], b_off=offs[1], m_off=offs[2],
                             s_off=offs[3]))
    body = bytearray(off)
    pos = pc.MODEL_HEADER_SIZE
    for r in records:
        body[pos:pos + len(r)] = r
        pos += len(r)
    for o, p in arrays:
        body[o:o + len(p)] = p
    crc = zlib.crc32(bytes(body[pc.MODEL_HEADER_SIZE:]))
    hdr = _pack("model_header", magic=pc.MODEL_MAGIC, version=pc.MODEL_VERSION,
                header_size=pc.MODEL_HEADER_SIZE, model_id=model.model_id, payload_crc32=crc,
                total_size=len(body), in_w=model.in_w, in_h=model.in_h, in_c=model.in_c, n_layers=n,
                grid_w=model.grid_w, grid_h=model.grid_h, embed_dim=model.embed_dim, in_zp=0,
                flags=model.flags)
    body[:pc.MODEL_HEADER_SIZE] = hdr
    return bytes(body)


def unpack_model(blob: bytes) -> Model:
    """Parse a model blob (checks magic, version, size and CRC)."""
    h = _unpack("model_header", blob)
    if h["magic"] != pc.MODEL_MAGIC:
        raise ValueError("not a TinyVLM model blob (bad magic)")
    if h["version"] != pc.MODEL_VERSION:
        raise ValueError(f"model blob version {h['version']}, this code reads {pc.MODEL_VERSION}")
    if h["total_size"] != len(blob):
        raise ValueError(f"model blob is {len(blob)} bytes, header says {h['total_size']}")
    if zlib.crc32(blob[pc.MODEL_HEADER_SIZE:]) != h["payload_crc32"]:
        raise ValueError("model blob CRC mismatch")
    model = Model(model_id=h["model_id"], in_w=h["in_w"], in_h=h["in_h"], in_c=h["in_c"], flags=h["flags"])
    for i in range(h["n_layers"]):
        r = _unpack("layer", blob, pc.MODEL_HEADER_SIZE + i * pc.MODEL_LAYER_SIZE)
        op = _OP_NAMES.get(r["op"])
        if op is None:
            raise ValueError(f"layer {i}: unknown op {r['op']}")
        k, cin, cout = r["k"], r["in_c"], r["out_c"]
        shape = (cout, k, k, cin) if op == "conv" else (k, k, cout)
        nw = int(np.prod(shape))
        w = np.frombuffer(blob, np.int8, nw, r["w_off"]).reshape(shape)

        def arr(o: int) -> np.ndarray:
            """One int32 array of out_c values at offset o."""
            return np.frombuffer(blob, "<i4", cout, o).astype(np.int32)

        model.layers.append(Layer(op, k, r["stride"], r["pad"], cin, cout, r["in_h"], r["in_w"],
                                  r["in_zp"], r["out_zp"], r["act_min"], r["act_max"],
                                  w.copy(), arr(r["b_off"]), arr(r["m_off"]), arr(r["s_off"])))
    return model


@dataclass
class Table:
    """Int8 text-embedding rows with a per-row scale (float = int8 * scale_q24 / 2^24) and phrase hash."""

    data: np.ndarray         # int8 [rows, dims]
    scale_q24: np.ndarray    # int32 [rows]
    model_id: int = 0
    phrase_hash: Optional[np.ndarray] = None  # uint32 [rows]; None: all 0 (rows nobody looks up)
    text_id: int = 0

    def __post_init__(self) -> None:
        if self.phrase_hash is None:
            self.phrase_hash = np.zeros(self.rows, np.uint32)
        self.phrase_hash = np.asarray(self.phrase_hash, np.uint32)
        if self.phrase_hash.shape != (self.rows,):
            raise ValueError(f"phrase_hash must have one entry per row ({self.rows}), "
                             f"got {self.phrase_hash.shape}")

    @property
    def rows(self) -> int:
        """Return the number of rows."""
        return int(self.data.shape[0])

    @property
    def dims(self) -> int:
        """Dims per row (the Matryoshka prefix)."""
        return int(self.data.shape[1])


def quantize_table(embeddings: np.ndarray, dims: int, model_id: int = 0,
                   phrase_hash: Optional[Sequence[int]] = None, text_id: int = 0) -> Table:
    """Text embeddings [N, D] float -> Matryoshka prefix of ``dims`` -> unit rows -> int8 + per-row scale."""
    emb = np.asarray(embeddings, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] == 0:
        raise ValueError(f"embeddings must be a non-empty [N, D] array, got shape {emb.shape}")
    if dims <= 0 or dims % 4 or dims > emb.shape[1]:
        raise ValueError(f"dims must be a positive multiple of 4 and <= {emb.shape[1]}, got {dims}")
    if emb.shape[0] >= pc.ROW_RAM:
        raise ValueError(f"a table holds at most {pc.ROW_RAM - 1} rows, got {emb.shape[0]}")
    pre = emb[:, :dims]
    norm = np.linalg.norm(pre, axis=1, keepdims=True)
    if np.any(norm == 0) or not np.all(np.isfinite(pre)):
        raise ValueError("an embedding prefix is zero or not finite")
    unit = pre / norm
    peak = np.max(np.abs(unit), axis=1, keepdims=True)
    scale = peak / 127.0
    q = np.clip(np.rint(unit / scale), -127, 127).astype(np.int8)
    scale_q24 = np.rint(scale[:, 0] * (1 << pc.TABLE_SCALE_Q)).astype(np.int32)
    return Table(q, scale_q24, model_id, None if phrase_hash is None else np.asarray(phrase_hash, np.uint32),
                 text_id)


def pack_table(table: Table) -> bytes:
    """Serialize a table into the firmware's blob format."""
    body = (np.asarray(table.scale_q24, "<i4").tobytes() + np.asarray(table.phrase_hash, "<u4").tobytes()
            + np.ascontiguousarray(table.data, np.int8).tobytes())
    hdr = _pack("table_header", magic=pc.TABLE_MAGIC, version=pc.TABLE_VERSION,
                header_size=pc.TABLE_HEADER_SIZE, rows=table.rows, dims=table.dims,
                model_id=table.model_id, text_id=table.text_id, body_crc32=zlib.crc32(body))
    return hdr + body


def table_blob_size(rows: int, dims: int) -> int:
    """Bytes of a table blob of ``rows`` x ``dims`` (what it takes in flash)."""
    return pc.TABLE_HEADER_SIZE + rows * (8 + dims)


def unpack_table(blob: bytes) -> Table:
    """Parse a table blob (checks magic, version, size and CRC)."""
    h = _unpack("table_header", blob)
    if h["magic"] != pc.TABLE_MAGIC or h["version"] != pc.TABLE_VERSION:
        raise ValueError(f"not a version-{pc.TABLE_VERSION} TinyVLM table blob")
    rows, dims = h["rows"], h["dims"]
    if len(blob) != table_blob_size(rows, dims):
        raise ValueError("table blob size does not match its header")
    if zlib.crc32(blob[pc.TABLE_HEADER_SIZE:]) != h["body_crc32"]:
        raise ValueError("table blob CRC mismatch")
    off = pc.TABLE_HEADER_SIZE
    scale = np.frombuffer(blob, "<i4", rows, off).astype(np.int32)
    hashes = np.frombuffer(blob, "<u4", rows, off + 4 * rows).astype(np.uint32)
    data = np.frombuffer(blob, np.int8, rows * dims, off + 8 * rows).reshape(rows, dims)
    return Table(data.copy(), scale, h["model_id"], hashes, h["text_id"])


def quantize_multiplier(real: float) -> Tuple[int, int]:
    """Split a real scale > 0 into (mult, shift): real ~= mult * 2^-shift, mult in [2^30, 2^31)."""
    if not real > 0 or not math.isfinite(real):
        raise ValueError(f"requantization scale must be positive and finite, got {real}")
    m, e = math.frexp(real)
    mult = int(round(m * (1 << 31)))
    if mult == 1 << 31:
        mult //= 2
        e += 1
    shift = 31 - e
    if not 1 <= shift <= 62:
        raise ValueError(f"requantization scale {real} out of range")
    return mult, shift


def table_from_embeddings(embeddings: np.ndarray, dims: int, model_id: int = 0) -> bytes:
    """Text embeddings [N, D] float -> table blob of their ``dims``-prefix, int8 with per-row scale."""
    return pack_table(quantize_table(embeddings, dims, model_id))
