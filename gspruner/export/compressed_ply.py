"""PlayCanvas / SuperSplat compressed PLY (`.compressed.ply`), written and read.

Layout as written by @playcanvas/splat-transform 3.7.0 (`writers/write-compressed-ply.ts`,
`compressed-chunk.ts`) and read by its `readers/decompress-ply.ts`:

    element chunk ceil(N/256)   18 float: min_x..z max_x..z | min_scale_x..z max_scale_x..z | min_r..b max_r..b
    element vertex N            4 uint:   packed_position packed_rotation packed_scale packed_color
    element sh N                uchar f_rest_0..{8|23|44}   (only when there are SH bands)

Splats are sorted in Morton order of their positions and grouped in chunks of 256 (the last chunk's
bounds are those of its real splats, as splat-transform's padding by repetition gives). Per splat:
  packed_position  11/10/11-bit unorm of (p - min)/(max - min) per chunk, x<<21 | y<<11 | z
  packed_rotation  smallest three: normalized wxyz, index of the largest |component| in bits 30-31, sign
                   flipped so it is positive, the other three in order as unorm10(c·√2/2 + 0.5)
  packed_scale     11/10/11-bit unorm of the log scale within the chunk's bounds (clamped to [-20, 20])
  packed_color     8/8/8/8: RGB = 0.5 + SH_C0·f_dc within the chunk's colour bounds, A = sigmoid(opacity)
  sh               u8 per coefficient, channel-major like the INRIA PLY f_rest (see "SH bytes" below)
unorm(v, b) = clamp(floor(v·(2^b-1) + 0.5)); normalisation gives 0 when max - min < 1e-5.

Every quantity is written as the code whose *decoded* value is nearest, for the decoders as they are:
splat-transform 3.7.0 `decompress-ply.ts` and the PlayCanvas engine `gsplat-compressed-data.js` both decode
positions, log scales and colours as lerp(min, max, u/(2^b-1)), alpha as u/255 and the rotation's stored
components as (u/1023 - 0.5)·√2 — unorm() above is nearest for those (checked against both sources).
SH bytes: splat-transform decodes b as 0 -> -4, 255 -> +4, else (b + 0.5)/32 - 4 (our reader too); the
engine's iterator uses b·8/255 - 4, within 1/64 of it and equal at b = 127.5, i.e. near 0 where most
coefficients are. We round to the nearest splat-transform level, end levels included (the classic encoder
trunc((v/8 + 0.5)·256) is the same except next to ±4). 0 is not a level: a near-zero coefficient is off by
1/64 either way, which costs 0.145 dB on fox (SH3). With `view_points` (the training camera centres) the
writer picks between the two bracketing levels so the colour errors cancel in the directions the splat is
seen from (`sh_rounding.round_sh_for_views`): −0.027 dB on fox, each coefficient within one level step.
The reader also takes older files with a 12-float chunk element (no colour bounds: RGB is absolute).

Quantization error of a round trip (per splat, c = its chunk):
  position  ≤ (max_c - min_c)/(2·2047) for x and z, /(2·1023) for y
  log scale ≤ the same with the chunk's scale bounds
  colour    ≤ (max_c - min_c)/(2·255) in 0.5 + SH_C0·f_dc units, i.e. /SH_C0 in f_dc
  opacity   ≤ 0.5/255 in sigmoid(opacity)
  rotation  ≤ √2/(2·1023) per stored component, the largest one is recomputed
  SH        ≤ 1/64 for |v| ≤ 4 - 3/64 and ≤ 3/128 next to ±4 (values saturate at ±4); view-aware: one step
            (1/32, 3/64 next to ±4)

gsplat 1.5.3 `splat2ply_bytes_compressed` was the reference for the vectorised packing (pack_unorm,
pack_111011, pack_8888, pack_rotation, the Morton bit interleave, SH quantisation), which follow the spec.
Our own code where gsplat is not right: it drops splats with sigmoid(opacity) ≤ 1/255 (we keep all), it
divides by zero on a degenerate chunk (we use splat-transform's normalisation: 0 when the range < 1e-5),
it writes an empty `element sh` when there are no SH bands (we omit it: splat-transform HEAD's
`isCompressedPly` expects 9/24/45 columns), and its NaN filter is a scalar for opacities (see
`formats.prepare_splats`). Morton codes use 21 bits per axis (gsplat/splat-transform: 10, with
splat-transform refining buckets of > 256 recursively); the order only affects compression, not decoding.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import plyfile
import torch

from gspruner.errors import InputError
from gspruner.export.formats import SH_C0, atomic_write, logit_u8, prepare_splats, sigmoid, to_splat_dict
from gspruner.export.sh_rounding import round_sh_for_views

__all__ = ["write_compressed_ply", "read_compressed_ply", "morton_order", "decode_sh_byte", "encode_sh_bytes", "CHUNK_SIZE"]

CHUNK_SIZE = 256
CHUNK_PROPS = [
    "min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
    "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z",
    "min_r", "min_g", "min_b", "max_r", "max_g", "max_b",
]  # fmt: skip
VERTEX_PROPS = ["packed_position", "packed_rotation", "packed_scale", "packed_color"]
_SQRT1_2 = math.sqrt(0.5)


def _spread_bits_21(v: np.ndarray) -> np.ndarray:
    """Insert two zero bits between each of the low 21 bits of v (uint64)."""
    v = v.astype(np.uint64) & np.uint64(0x1FFFFF)
    v = (v | (v << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
    v = (v | (v << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
    v = (v | (v << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
    v = (v | (v << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
    v = (v | (v << np.uint64(2))) & np.uint64(0x1249249249249249)
    return v


def morton_order(means: np.ndarray) -> np.ndarray:
    """Stable permutation sorting points [N,3] by their 63-bit Morton code (x in the lowest bit)."""
    lo = means.min(axis=0)
    ext = means.max(axis=0) - lo
    ext[ext == 0] = 1.0
    cells = np.clip(np.floor((means - lo) / ext * 2**21), 0, 2**21 - 1).astype(np.uint64)
    code = _spread_bits_21(cells[:, 0]) | (_spread_bits_21(cells[:, 1]) << np.uint64(1))
    code |= _spread_bits_21(cells[:, 2]) << np.uint64(2)
    return np.argsort(code, kind="stable")


def _pack_unorm(v: np.ndarray, bits: int) -> np.ndarray:
    t = (1 << bits) - 1
    return np.clip(np.floor(v * t + 0.5), 0, t).astype(np.uint32)


def _unpack_unorm(v: np.ndarray, bits: int) -> np.ndarray:
    t = (1 << bits) - 1
    return (v & np.uint32(t)).astype(np.float64) / t


def _normalize(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """splat-transform's normalize(): 0 at/below min, 1 at/above max, 0 for a range < 1e-5."""
    rng = hi - lo
    out = (x - lo) / np.where(rng < 1e-5, 1.0, rng)
    out = np.where(rng < 1e-5, 0.0, out)
    out = np.where(x >= hi, 1.0, out)
    return np.where(x <= lo, 0.0, out)


def _pack_111011(v: np.ndarray) -> np.ndarray:
    return (_pack_unorm(v[:, 0], 11) << 21) | (_pack_unorm(v[:, 1], 10) << 11) | _pack_unorm(v[:, 2], 11)


def _unpack_111011(p: np.ndarray) -> np.ndarray:
    return np.stack([_unpack_unorm(p >> 21, 11), _unpack_unorm(p >> 11, 10), _unpack_unorm(p, 11)], axis=1)


_OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])


def _pack_rotation(quats: np.ndarray) -> np.ndarray:
    q = quats / np.linalg.norm(quats, axis=1, keepdims=True)  # [N,4] wxyz (= rot_0..3)
    rows = np.arange(len(q))
    largest = np.argmax(np.abs(q), axis=1)  # first index on ties, as splat-transform's reduce
    q = q * np.where(q[rows, largest] < 0, -1.0, 1.0)[:, None]
    rest = q[rows[:, None], _OTHERS[largest]]  # [N,3], in component order
    packed = _pack_unorm(rest * _SQRT1_2 + 0.5, 10)
    return (largest.astype(np.uint32) << 30) | (packed[:, 0] << 20) | (packed[:, 1] << 10) | packed[:, 2]


def _unpack_rotation(p: np.ndarray) -> np.ndarray:
    rest = np.stack([_unpack_unorm(p >> 20, 10), _unpack_unorm(p >> 10, 10), _unpack_unorm(p, 10)], axis=1)
    rest = (rest - 0.5) / _SQRT1_2  # [N,3]
    largest = (p >> 30).astype(np.int64)
    rows = np.arange(len(p))
    q = np.empty((len(p), 4))
    q[rows, largest] = np.sqrt(np.maximum(0.0, 1.0 - (rest**2).sum(axis=1)))
    q[rows[:, None], _OTHERS[largest]] = rest
    return q


def decode_sh_byte(b: np.ndarray) -> np.ndarray:
    """splat-transform's SH decoder: 0 -> -4, 255 -> +4, else (b + 0.5)/256 -> (· - 0.5)·8."""
    b = np.asarray(b, dtype=np.float64)
    return np.where(b == 0, -4.0, np.where(b == 255, 4.0, (b + 0.5) / 32 - 4))


def encode_sh_bytes(
    sh: np.ndarray, means: np.ndarray | None = None, view_points: np.ndarray | None = None
) -> np.ndarray:
    """SH coefficients [N,K-1,3] -> bytes [N,K-1,3]: the nearest decoded level, or with `view_points` [C,3]
    (and `means` [N,3]) the bracketing level that minimises the colour error seen from those points."""
    v = np.asarray(sh, dtype=np.float64)
    lo = np.clip(np.floor(32 * (v + 4) - 0.5), 0, 255)  # level(b) = (b + 0.5)/32 - 4 <= v
    lo = np.where(decode_sh_byte(lo) > v, np.maximum(lo - 1, 0), lo)  # the end levels are ±4 exactly
    hi = np.where(decode_sh_byte(lo) < v, np.minimum(lo + 1, 255), lo)
    nearest = np.where(np.abs(decode_sh_byte(hi) - v) < np.abs(decode_sh_byte(lo) - v), hi, lo)
    lo, hi, nearest = (a.astype(np.uint8) for a in (lo, hi, nearest))
    if view_points is None or len(view_points) == 0:
        return nearest
    return round_sh_for_views(v, lo, hi, nearest, decode_sh_byte, means, view_points)


def _chunk_bounds(values: np.ndarray, num_chunks: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-chunk min and max [C,D] of values [N,D] (already in file order); the last chunk may be short."""
    n = len(values)
    pad = num_chunks * CHUNK_SIZE - n
    padded = np.concatenate([values, np.repeat(values[-1:], pad, axis=0)]) if pad else values
    blocks = padded.reshape(num_chunks, CHUNK_SIZE, -1)
    return blocks.min(axis=1), blocks.max(axis=1)


def write_compressed_ply(path: str | os.PathLike, splats: dict, view_points=None) -> int:
    """Write splats as a PlayCanvas compressed PLY, atomically. Returns the number of splats written.

    `view_points` [C,3] (the training camera centres, in the splats' world): SH bytes are rounded for
    those views (see the module docstring); None: to the nearest level.
    NaN/Inf splats (and zero quaternions) are dropped with a warning; InputError if none is left.
    """
    path = Path(path)
    a = prepare_splats(path, splats)
    order = morton_order(a["means"])
    a = {k: v[order] for k, v in a.items()}
    n = len(a["means"])
    num_chunks = -(-n // CHUNK_SIZE)
    chunk_of = np.arange(n) // CHUNK_SIZE

    def bounds(values: np.ndarray, clamp: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = _chunk_bounds(values, num_chunks)
        if clamp is not None:
            lo, hi = np.clip(lo, -clamp, clamp), np.clip(hi, -clamp, clamp)
        # the file stores float32 bounds: normalise against exactly those
        return lo.astype(np.float32).astype(np.float64), hi.astype(np.float32).astype(np.float64)

    colors = SH_C0 * a["sh0"].astype(np.float64) + 0.5  # [N,3]
    pos_lo, pos_hi = bounds(a["means"])
    scale_lo, scale_hi = bounds(a["scales"], clamp=20.0)
    col_lo, col_hi = bounds(colors)

    vertex = np.empty((n, 4), dtype="<u4")
    vertex[:, 0] = _pack_111011(_normalize(a["means"], pos_lo[chunk_of], pos_hi[chunk_of]))
    vertex[:, 1] = _pack_rotation(a["quats"])
    vertex[:, 2] = _pack_111011(_normalize(a["scales"], scale_lo[chunk_of], scale_hi[chunk_of]))
    rgb = _pack_unorm(_normalize(colors, col_lo[chunk_of], col_hi[chunk_of]), 8)
    alpha = _pack_unorm(sigmoid(a["opacities"]), 8)
    vertex[:, 3] = (rgb[:, 0] << 24) | (rgb[:, 1] << 16) | (rgb[:, 2] << 8) | alpha
    chunk = np.concatenate([pos_lo, pos_hi, scale_lo, scale_hi, col_lo, col_hi], axis=1).astype("<f4")

    num_rest = a["shN"].shape[1]
    header = [
        "ply",
        "format binary_little_endian 1.0",
        "comment Generated by gspruner (PlayCanvas compressed PLY)",
        f"element chunk {num_chunks}",
        *(f"property float {p}" for p in CHUNK_PROPS),
        f"element vertex {n}",
        *(f"property uint {p}" for p in VERTEX_PROPS),
    ]
    sh_bytes = b""
    if num_rest:
        points = None if view_points is None else np.asarray(view_points, dtype=np.float64).reshape(-1, 3)
        codes = encode_sh_bytes(a["shN"], a["means"], points)  # [N,K-1,3]
        sh_bytes = np.ascontiguousarray(codes.transpose(0, 2, 1)).reshape(n, 3 * num_rest).tobytes()  # channel-major
        header += [f"element sh {n}", *(f"property uchar f_rest_{i}" for i in range(3 * num_rest))]
    header.append("end_header\n")
    atomic_write(path, ["\n".join(header).encode("ascii"), chunk.tobytes(), vertex.tobytes(), sh_bytes])
    return n


def read_compressed_ply(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a PlayCanvas compressed PLY (18- or 12-float chunk element, optional `sh`) into a splat dict.

    The splats come back in file (Morton) order. Raises InputError naming the file on any problem.
    """
    path = Path(path)
    try:
        ply = plyfile.PlyData.read(str(path))
        for element in ply.elements:
            if len(element.data) != element.count:
                raise plyfile.PlyParseError("early end-of-file")
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a PLY file (header is not ASCII text)") from None
    except Exception as e:  # PlyParseError, ValueError, EOFError, ...
        reason = " ".join(str(e).split()) or type(e).__name__
        raise InputError(f"{path}: not a readable PLY file ({reason})") from None

    names = [e.name for e in ply.elements]
    if "chunk" not in names or "vertex" not in names:
        raise InputError(f"{path}: not a compressed PLY (no 'chunk' and 'vertex' elements)")
    chunk, vertex = ply["chunk"].data, ply["vertex"].data
    chunk_names, vertex_names = set(chunk.dtype.names or ()), set(vertex.dtype.names or ())
    missing = [p for p in CHUNK_PROPS[:12] if p not in chunk_names] + [p for p in VERTEX_PROPS if p not in vertex_names]
    if missing:
        raise InputError(f"{path}: not a compressed PLY, lacks properties {', '.join(missing[:6])}")
    n = len(vertex)
    if n == 0:
        raise InputError(f"{path}: compressed PLY has no splats")
    if len(chunk) < -(-n // CHUNK_SIZE):
        raise InputError(f"{path}: compressed PLY has {len(chunk)} chunks for {n} splats (needs {-(-n // CHUNK_SIZE)})")
    has_colors = all(p in chunk_names for p in CHUNK_PROPS[12:])

    ci = np.arange(n) // CHUNK_SIZE

    def col(name: str) -> np.ndarray:
        return np.asarray(chunk[name], dtype=np.float64)[ci]

    def lerp(prefix: str, suffixes: tuple[str, str, str], t: np.ndarray) -> np.ndarray:
        lo = np.stack([col(f"min_{prefix}{s}") for s in suffixes], axis=1)
        hi = np.stack([col(f"max_{prefix}{s}") for s in suffixes], axis=1)
        return lo * (1 - t) + hi * t

    packed = {p: np.asarray(vertex[p]).astype(np.uint32) for p in VERTEX_PROPS}
    means = lerp("", ("x", "y", "z"), _unpack_111011(packed["packed_position"]))
    scales = lerp("scale_", ("x", "y", "z"), _unpack_111011(packed["packed_scale"]))
    quats = _unpack_rotation(packed["packed_rotation"])
    pc = packed["packed_color"]
    rgb = np.stack([_unpack_unorm(pc >> 24, 8), _unpack_unorm(pc >> 16, 8), _unpack_unorm(pc >> 8, 8)], axis=1)
    if has_colors:
        rgb = lerp("", ("r", "g", "b"), rgb)
    sh0 = (rgb - 0.5) / SH_C0
    opacities = logit_u8((pc & np.uint32(0xFF)))

    num_rest = 0
    f_rest = np.zeros((n, 0))
    if "sh" in names:
        sh = ply["sh"].data
        sh_names = [p for p in (sh.dtype.names or ()) if p.startswith("f_rest_")]
        if sh_names:  # an empty `sh` element (gsplat 1.5.3 writes one for SH0) means no SH
            if len(sh) != n:
                raise InputError(f"{path}: compressed PLY 'sh' element has {len(sh)} rows for {n} splats")
            if len(sh_names) not in (9, 24, 45) or any(f"f_rest_{i}" not in sh_names for i in range(len(sh_names))):
                raise InputError(f"{path}: compressed PLY 'sh' element has {len(sh_names)} f_rest columns (expected 9, 24 or 45)")
            num_rest = len(sh_names) // 3
            q = np.stack([np.asarray(sh[f"f_rest_{i}"], dtype=np.float64) for i in range(3 * num_rest)], axis=1)
            unit = np.where(q == 0, 0.0, np.where(q == 255, 1.0, (q + 0.5) / 256))
            f_rest = (unit - 0.5) * 8
    shN = f_rest.reshape(n, 3, num_rest).transpose(0, 2, 1)  # channel-major -> [N,K-1,3]
    return to_splat_dict(means, scales, quats, opacities, sh0, shN)
