"""Niantic SPZ (`.spz`): version 4 (zstd) written by default, 3 and 2 (gzip) on request, 2-4 read.

Containers (nianticlabs/spz README and `src/cc/load-spz.cc`):
    v2/v3  one gzip stream holding a 16-byte header
           u32 magic 0x5053474e ("NGSP") | u32 version | u32 numPoints | u8 shDegree | u8 fractionalBits | u8 flags | u8 0
           followed by the attribute blocks.
    v4     a plaintext 32-byte header (the same fields, then u8 numStreams, u32 tocByteOffset, 12 zero bytes), the
           extension records [u32 type | u32 byteLength | payload] when flags & 0x2, a table of contents of
           numStreams × (u64 compressed, u64 uncompressed) at tocByteOffset, then one zstd stream per attribute
           (5 streams for SH degree 0, else 6). zstd level 12, the reference's default.
Attribute blocks, in this order, for all splats:
    positions  3 × 24-bit signed fixed point, fractionalBits = 12 (range ±2048, step 1/4096), little endian
    alphas     u8(sigmoid(opacity)·255)
    colors     u8(f_dc·0.15·255 + 127.5)            (the SH DC coefficient, usable range ±3.33)
    scales     u8((log s + 10)·16)                  (range [-10, 5.94] in steps of 1/16)
    rotations  v3/v4: smallest three in 4 bytes: bits 30-31 the index of the largest |component| of the
                   normalized xyzw quaternion, then for each other component in order 1 sign bit (relative
                   to the largest, which is made positive) + a 9-bit magnitude round(511·|c|/√½)
               v2: 3 bytes, u8(xyz·127.5 + 127.5) with the sign chosen so w ≥ 0 (w is recomputed)
    sh         (K-1)·3 bytes, colour-inner (coefficient-major, R G B inner — the [K-1,3] layout of shN),
               round(x·128) + 128, optionally snapped to multiples of 2^(8-bits) (`sh_bits`, see below)
u8(x) = clamp(round(x), 0, 255).

Decoders (reference `load-spz.cc` unpackGaussians, files without the SH-quantization extension): position
fixed/2^fractionalBits, scale b/16 - 10, alpha invSigmoid(b/255), colour (b/255 - 0.5)/0.15, rotation
√½·mag/511 with the largest recomputed, SH (b - 128)/128 (`unquantizeSHLegacy`). Each u8() above rounds
to the nearest of those decoded levels, so every quantity is already the decoder's nearest code.

SH bits: the decoder reads all 8 bits of every SH byte whatever the encoder did; the reference encoder
(PackOptions sh1Bits = 5, shRestBits = 4) snaps them to buckets only so that the entropy coder does better.
That costs 2.49 dB on fox (SH3): errors up to 4.5/128 (degree 1) and 8.5/128 (degree ≥ 2). We default to
8 bits for all bands (`sh_bits=(8, 8)`, error ≤ 0.5/128, +0.000 dB on fox): a plain SPZ that every decoder
reads the same, larger after compression. sh_bits=(5, 4) writes the reference's bucketing (snapped to the
nearest bucket multiple, in one rounding; the reference rounds to a byte first, which differs at ties).
When the reference writes non-default bits it adds an SH-quantization extension record for its min/max
scaling; we keep the legacy [-1, 1) scale, which needs no extension.

Axes. The SPZ spec stores RUB (right, up, back) unless the file says otherwise; PLY/COLMAP/gspruner use RDF
(right, down, front). What the readers do (their sources, read 2026-11):
    splat-transform 3.7.0 (npm), hence SuperSplat: decodes RAW ("CoordinateSystem UNSPECIFIED") and treats
        the data as PLY axes; skips v4 extension records via tocByteOffset.
    PlayCanvas engine SpzParser (v4 only): RAW, warns that extensions are ignored.
    Niantic reference `load-spz.cc`: UnpackOptions.to defaults to UNSPECIFIED (no conversion); with a target
        frame it converts from RUB, or from the frame named by the `SPZ_ADOBE_coordinate_system` extension
        record (type 0xADBE0003, payload u32 CoordinateSystem, RDF = 6) in builds with extensions.
    Babylon.js: the @adobe/spz build of that reference (extension-aware).
So a file holding RUB data (the spec's default) opens turned 180° about x in the PlayCanvas tools, and a
file holding PLY axes without a record opens turned in an RUB-converting reference reader. Our default
(`axes="ply"`) stores the PLY axes and, in v4, declares them with the SPZ_ADOBE_coordinate_system record
(RDF): the PlayCanvas tools show it as they show our .ply, and the reference (built with extensions) and
@adobe/spz convert it correctly. `axes="rub"` writes the spec's RUB without a record (for reference builds
without extension support); v2/v3 cannot carry the record, so there the axes are implicit.
The reader follows the record when there is one; otherwise it assumes `default_axes` ("ply", as the
PlayCanvas tools do: splat-transform's and SuperSplat's files hold PLY axes without a record).
The RDF <-> RUB change: positions (x, -y, -z), quaternion (w, x, y, z) -> (w, x, -y, -z), and the SH
coefficients whose basis function is odd in y·z flip sign (the reference's `flipSh`).

Quantization error of a round trip: position ≤ 1/8192, log scale ≤ 1/32, sigmoid(opacity) ≤ 0.5/255,
f_dc ≤ 0.5/(0.15·255) = 0.0131, rotation component ≤ √½/(2·511) (v3/v4) or ≤ 1/255 on x, y, z (v2, w
recomputed, so w is coarse when small), SH ≤ 2^(8-bits)/256 (+ 0.5/128 where the top bucket is clamped to
255) for x in [-1, 1): 0.5/128 at 8 bits; 4.5/128 (degree 1, 5 bits) and 8.5/128 (4 bits) as the reference.

Our own code: the reference (and gsply) was followed for the encodings above. Differences: positions
beyond ±2048 are clamped with a warning (the reference wraps around silently); SH uses the legacy
round(x·128)+128 quantizer, which is what the legacy/default decoders invert (the current reference
encoder scales by (x+1)/2·255, half a step off that decoder).
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import torch

from gspruner.errors import InputError
from gspruner.export.formats import read_file_bytes, atomic_write, logit_u8, prepare_splats, sigmoid, to_splat_dict

__all__ = ["write_spz", "read_spz", "rdf_to_rub", "SPZ_MAGIC"]

SPZ_MAGIC = 0x5053474E  # "NGSP"
FRACTIONAL_BITS = 12
COLOR_SCALE = 0.15
REFERENCE_SH_BITS = (5, 4)  # the reference encoder's default (degree 1, degree >= 2)
_SQRT1_2 = math.sqrt(0.5)
_HEADER = struct.Struct("<IIIBBBB")  # 16 bytes (v1-v3)
_HEADER_V4 = struct.Struct("<IIIBBBBI12x")  # 32 bytes: ..., flags, numStreams, tocByteOffset, reserved
_FLAG_EXTENSIONS = 0x2  # (0x1 = antialiased: read as ordinary splats)
_EXT_RECORD = struct.Struct("<II")  # type, byteLength
EXT_COORDINATE_SYSTEM = 0xADBE0003  # SPZ_ADOBE_coordinate_system, payload u32 CoordinateSystem
COORDINATE_SYSTEMS = {"rdf": 6, "rub": 4}  # spz::CoordinateSystem values (splat-types.h) we read and write
AXES = ("ply", "rub")  # ply = RDF, gspruner's own axes
ZSTD_LEVEL = 12
_MAX_POINTS = 10_000_000  # the reference loader's limit

# Sign of each SH coefficient (index k in gsplat/INRIA order, degree 1..4) under an axis flip (x, y, z);
# from the reference's CoordinateConverter::flipSh.
def _sh_flips(x: float, y: float, z: float) -> np.ndarray:
    return np.array(
        [y, z, x,  # degree 1
         x * y, y * z, 1, x * z, 1,  # degree 2
         y, x * y * z, y, z, x, z, x,  # degree 3
         x * y, y * z, x * y, y * z, 1, x * z, 1, x * z, y],  # degree 4
        dtype=np.float64,
    )  # fmt: skip


_RDF_RUB_SH = _sh_flips(1.0, -1.0, -1.0)


def rdf_to_rub(splats: dict) -> dict:
    """The RDF <-> RUB change of axes (its own inverse) applied to a splat dict of tensors or arrays:
    positions (x, -y, -z), quaternions (w, x, -y, -z), odd SH coefficients negated."""
    out = dict(splats)
    flip3 = torch.tensor([1.0, -1.0, -1.0])
    out["means"] = torch.as_tensor(splats["means"]) * flip3
    out["quats"] = torch.as_tensor(splats["quats"]) * torch.tensor([1.0, 1.0, -1.0, -1.0])
    if splats.get("shN") is not None:
        sh = torch.as_tensor(splats["shN"])
        out["shN"] = sh * torch.from_numpy(_RDF_RUB_SH[: sh.shape[1]]).to(sh.dtype)[None, :, None]
    return out


def _u8(x: np.ndarray) -> np.ndarray:
    """The reference's toUint8: clamp(round(x), 0, 255) (round half away from zero)."""
    return np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), 0, 255).astype(np.uint8)


def _quantize_sh(x: np.ndarray, bits: int) -> np.ndarray:
    """The byte b, a multiple of 2^(8-bits) (or 255), whose legacy decoding (b - 128)/128 is nearest to x."""
    bucket = 1 << (8 - bits)
    q = x * (128.0 / bucket) + 128.0 / bucket
    q = (np.sign(q) * np.floor(np.abs(q) + 0.5)) * bucket  # round half away from zero, as the reference
    return np.clip(q, 0, 255).astype(np.uint8)


def _pack_rotations_v3(q_xyzw: np.ndarray) -> np.ndarray:
    rows = np.arange(len(q_xyzw))
    largest = np.argmax(np.abs(q_xyzw), axis=1)
    negate = q_xyzw[rows, largest] < 0
    comp = largest.astype(np.uint32)
    for i in range(4):
        c = q_xyzw[:, i]
        negbit = ((c < 0) ^ negate).astype(np.uint32)
        mag = np.minimum(np.floor(511.0 * (np.abs(c) / _SQRT1_2) + 0.5), 511).astype(np.uint32)
        packed = (comp << 10) | (negbit << 9) | mag
        comp = np.where(largest == i, comp, packed)
    return comp.astype("<u4")


def _unpack_rotations_v3(comp: np.ndarray) -> np.ndarray:
    comp = comp.astype(np.uint32)
    largest = (comp >> 30).astype(np.int64)
    q = np.zeros((len(comp), 4))
    rows = np.arange(len(comp))
    for i in (3, 2, 1, 0):
        take = largest != i
        mag = (comp & np.uint32(511)).astype(np.float64)
        value = _SQRT1_2 * mag / 511.0
        value = np.where((comp >> 9) & np.uint32(1), -value, value)
        q[:, i] = np.where(take, value, 0.0)
        comp = np.where(take, comp >> 10, comp)
    q[rows, largest] = np.sqrt(np.maximum(0.0, 1.0 - (q**2).sum(axis=1)))
    return q  # xyzw


def _check_axes(axes: str, what: str = "axes") -> str:
    if axes not in AXES:
        raise InputError(f"SPZ {what} must be one of {', '.join(AXES)}, got {axes!r}")
    return axes


def _change_axes(means: np.ndarray, quats: np.ndarray, sh: np.ndarray):
    """RDF <-> RUB on numpy arrays (its own inverse): means [N,3], quats [N,4] wxyz, sh [N,K-1,3]."""
    num_rest = sh.shape[1]
    return (
        means * np.array([1.0, -1.0, -1.0]),
        quats * np.array([1.0, 1.0, -1.0, -1.0]),
        sh * _RDF_RUB_SH[:num_rest][None, :, None],
    )


def write_spz(
    path: str | os.PathLike,
    splats: dict,
    version: int = 4,
    axes: str = "ply",
    sh_bits: tuple[int, int] = (8, 8),
) -> int:
    """Write splats as an SPZ file, atomically: version 4 (zstd, needs `zstandard`), 3 (gzip, smallest-three
    rotations) or 2 (gzip, xyz rotations).

    `axes="ply"` (default) stores gspruner's own (PLY, RDF) axes, declared in v4 by an SPZ_ADOBE_coordinate_system
    record; "rub" converts to the spec's RUB axes (no record). See the module docstring for which readers
    show which upright. `sh_bits`: bits kept per SH byte for degree 1 and for degree ≥ 2 (8, 8: full
    precision; the reference encoder's default is 5, 4). SH degree ≤ 4. Returns the number of splats written.
    """
    path = Path(path)
    if version not in (2, 3, 4):
        raise InputError(f"{path}: SPZ version {version} cannot be written (2, 3 or 4)")
    sh_bits = tuple(int(b) for b in sh_bits)
    if len(sh_bits) != 2 or not all(1 <= b <= 8 for b in sh_bits):
        raise InputError(f"{path}: SPZ SH bits must be two numbers in 1..8 (degree 1, degree ≥ 2), got {sh_bits}")
    _check_axes(axes)
    zstd = _zstandard(path) if version >= 4 else None
    a = prepare_splats(path, splats)
    n = len(a["means"])
    num_rest = a["shN"].shape[1]
    sh_degree = round(math.sqrt(num_rest + 1)) - 1
    if sh_degree > 4:
        raise InputError(f"{path}: SPZ holds SH up to degree 4, the splats have degree {sh_degree}")
    if n > _MAX_POINTS:
        warnings.warn(f"{path}: {n} splats; the reference SPZ loader reads at most {_MAX_POINTS}", stacklevel=2)

    means, quats, sh = a["means"], a["quats"], a["shN"].astype(np.float64)
    if axes == "rub":
        means, quats, sh = _change_axes(means, quats, sh)

    fixed = np.sign(means) * np.floor(np.abs(means) * (1 << FRACTIONAL_BITS) + 0.5)
    limit = (1 << 23) - 1
    num_clamped = int((np.abs(fixed) > limit).any(axis=1).sum())
    if num_clamped:
        warnings.warn(
            f"{path}: {num_clamped} splats lie beyond SPZ's ±2048 position range and were clamped to it",
            stacklevel=2,
        )
    fixed = np.clip(fixed, -limit - 1, limit).astype("<i4")  # [N,3]
    positions = fixed.view(np.uint8).reshape(n, 3, 4)[:, :, :3]  # low 3 bytes, little endian

    q = quats / np.linalg.norm(quats, axis=1, keepdims=True)
    q_xyzw = q[:, [1, 2, 3, 0]]
    if version >= 3:
        rotations = _pack_rotations_v3(q_xyzw).tobytes()
    else:
        sign = np.where(q_xyzw[:, 3] < 0, -1.0, 1.0)[:, None]
        rotations = _u8(q_xyzw[:, :3] * sign * 127.5 + 127.5).tobytes()

    alphas = _u8(sigmoid(a["opacities"]) * 255.0)
    colors = _u8(a["sh0"].astype(np.float64) * (COLOR_SCALE * 255.0) + 127.5)
    scales = _u8((a["scales"] + 10.0) * 16.0)
    sh_q = np.empty((n, num_rest, 3), dtype=np.uint8)
    sh_q[:, :3] = _quantize_sh(sh[:, :3], sh_bits[0])
    sh_q[:, 3:] = _quantize_sh(sh[:, 3:], sh_bits[1])

    blocks = [np.ascontiguousarray(positions).tobytes(), alphas.tobytes(), colors.tobytes(), scales.tobytes(), rotations]
    if num_rest:
        blocks.append(sh_q.tobytes())
    if version >= 4:
        atomic_write(path, _v4_chunks(n, sh_degree, axes, blocks, zstd))
    else:
        raw = b"".join([_HEADER.pack(SPZ_MAGIC, version, n, sh_degree, FRACTIONAL_BITS, 0, 0), *blocks])
        atomic_write(path, [gzip.compress(raw, compresslevel=6, mtime=0)])  # the reference: Z_DEFAULT_COMPRESSION
    return n


def _zstandard(path: Path):
    try:
        import zstandard
    except ImportError:
        raise InputError(f"{path}: SPZ version 4 (zstd) needs the 'zstandard' package (pip install zstandard)") from None
    return zstandard


def _v4_chunks(n: int, sh_degree: int, axes: str, blocks: list[bytes], zstd) -> list[bytes]:
    """Header, the axes record, TOC and one zstd stream per attribute block."""
    frame = COORDINATE_SYSTEMS["rdf" if axes == "ply" else "rub"]
    records = b"" if axes == "rub" else _EXT_RECORD.pack(EXT_COORDINATE_SYSTEM, 4) + struct.pack("<I", frame)
    compressor = zstd.ZstdCompressor(level=ZSTD_LEVEL)
    streams = [compressor.compress(block) for block in blocks]
    flags = _FLAG_EXTENSIONS if records else 0
    toc_offset = _HEADER_V4.size + len(records)
    header = _HEADER_V4.pack(SPZ_MAGIC, 4, n, sh_degree, FRACTIONAL_BITS, flags, len(streams), toc_offset)
    toc = b"".join(struct.pack("<QQ", len(c), len(b)) for c, b in zip(streams, blocks))
    return [header, records, toc, *streams]


def _read_records(path: Path, data: bytes, toc: int) -> str | None:
    """The axes named by an SPZ_ADOBE_coordinate_system record in [32, toc) ("ply"/"rub"), or None."""
    offset, axes = _HEADER_V4.size, None
    while offset < toc:
        if offset + _EXT_RECORD.size > toc:
            raise InputError(f"{path}: corrupt SPZ v4 extension records")
        kind, length = _EXT_RECORD.unpack_from(data, offset)
        payload = data[offset + _EXT_RECORD.size : offset + _EXT_RECORD.size + length]
        if len(payload) != length or offset + _EXT_RECORD.size + length > toc:
            raise InputError(f"{path}: corrupt SPZ v4 extension records")
        if kind == EXT_COORDINATE_SYSTEM:
            if length != 4:
                raise InputError(f"{path}: corrupt SPZ coordinate-system record")
            (frame,) = struct.unpack("<I", payload)
            names = {v: k for k, v in COORDINATE_SYSTEMS.items()}
            if frame == 0:
                axes = None  # UNSPECIFIED: as if absent
            elif frame in names:
                axes = "ply" if names[frame] == "rdf" else "rub"
            else:
                raise InputError(f"{path}: SPZ data stored in coordinate system {frame}; only RDF (6) and RUB (4) are read")
        offset += _EXT_RECORD.size + length
    return axes


def _read_v4(path: Path, data: bytes, sizes: list[int]) -> tuple[list[bytes], str | None]:
    zstandard = _zstandard(path)
    *_, flags, num_streams, toc = _HEADER_V4.unpack_from(data)
    expected = sizes if sizes[-1] else sizes[:5]  # no SH stream for degree 0
    if num_streams != len(expected) or toc < _HEADER_V4.size or toc + 16 * num_streams > len(data):
        raise InputError(f"{path}: corrupt SPZ v4 table of contents")
    axes = _read_records(path, data, toc) if flags & _FLAG_EXTENSIONS else None
    offset = toc + 16 * num_streams
    streams = []
    for i in range(num_streams):
        compressed, uncompressed = struct.unpack_from("<QQ", data, toc + 16 * i)
        if uncompressed != expected[i] or offset + compressed > len(data):
            raise InputError(f"{path}: corrupt SPZ v4 stream {i} (truncated or wrong size)")
        try:
            block = zstandard.ZstdDecompressor().decompress(data[offset : offset + compressed], max_output_size=uncompressed)
        except zstandard.ZstdError as e:
            raise InputError(f"{path}: corrupt SPZ v4 stream {i} ({e})") from None
        if len(block) != uncompressed:
            raise InputError(f"{path}: corrupt SPZ v4 stream {i} (wrong size)")
        streams.append(block)
        offset += compressed
    if len(streams) < len(sizes):
        streams.append(b"")
    return streams, axes


def read_spz(path: str | os.PathLike, default_axes: str = "ply", return_axes: bool = False):
    """Read an SPZ file (v2/v3 gzip; v4 zstd with `zstandard`) into a splat dict in gspruner's (PLY) axes.

    The file's SPZ_ADOBE_coordinate_system record decides its axes; without one they are `default_axes`
    ("ply": as splat-transform/SuperSplat write and read them; "rub": the SPZ spec's default).
    `return_axes=True` returns (splats, axes the data was stored in). Raises InputError naming the file.
    """
    path = Path(path)
    _check_axes(default_axes, "default axes")
    data = read_file_bytes(path)
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise InputError(f"{path}: not a readable SPZ file (gzip stream is corrupt or truncated: {e})") from None
    if len(data) < _HEADER.size:
        raise InputError(f"{path}: not an SPZ file (shorter than its 16-byte header)")
    magic, version, n, sh_degree, fractional_bits, flags, _ = _HEADER.unpack_from(data)
    if magic != SPZ_MAGIC:
        raise InputError(f"{path}: not an SPZ file (no NGSP magic)")
    if version not in (2, 3, 4):
        raise InputError(f"{path}: SPZ version {version} is not supported (2, 3 or 4)")
    if sh_degree > 4:
        raise InputError(f"{path}: SPZ SH degree {sh_degree} is not supported (0-4)")
    if n == 0:
        raise InputError(f"{path}: SPZ file has no splats")
    if n > _MAX_POINTS * 10:
        raise InputError(f"{path}: SPZ header claims {n} splats")
    if version < 4 and flags & _FLAG_EXTENSIONS:
        raise InputError(f"{path}: SPZ extensions in a version {version} file are not supported")
    num_rest = (sh_degree + 1) ** 2 - 1
    rot_bytes = 4 if version >= 3 else 3
    sizes = [9 * n, n, 3 * n, 3 * n, rot_bytes * n, 3 * num_rest * n]
    stored_axes = None
    if version >= 4:
        if len(data) < _HEADER_V4.size:
            raise InputError(f"{path}: truncated SPZ v4 header")
        blocks, stored_axes = _read_v4(path, data, sizes)
    else:
        if len(data) < _HEADER.size + sum(sizes):
            raise InputError(f"{path}: truncated SPZ file ({len(data)} bytes for {n} splats, needs {_HEADER.size + sum(sizes)})")
        blocks, offset = [], _HEADER.size
        for size in sizes:
            blocks.append(data[offset : offset + size])
            offset += size
    stored_axes = stored_axes or default_axes
    pos_b, alpha_b, color_b, scale_b, rot_b, sh_b = (np.frombuffer(b, dtype=np.uint8) for b in blocks)

    p = pos_b.reshape(n, 3, 3).astype(np.int32)
    fixed = p[:, :, 0] | (p[:, :, 1] << 8) | (p[:, :, 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    means = fixed.astype(np.float64) / (1 << fractional_bits)
    scales = scale_b.reshape(n, 3).astype(np.float64) / 16.0 - 10.0
    opacities = logit_u8(alpha_b)
    sh0 = (color_b.reshape(n, 3).astype(np.float64) / 255.0 - 0.5) / COLOR_SCALE
    if version >= 3:
        q_xyzw = _unpack_rotations_v3(rot_b.view("<u4"))
    else:
        xyz = rot_b.reshape(n, 3).astype(np.float64) / 127.5 - 1.0
        w = np.sqrt(np.maximum(0.0, 1.0 - (xyz**2).sum(axis=1)))
        q_xyzw = np.concatenate([xyz, w[:, None]], axis=1)
    quats = q_xyzw[:, [3, 0, 1, 2]]
    shN = (sh_b.reshape(n, num_rest, 3).astype(np.float64) - 128.0) / 128.0
    if stored_axes == "rub":
        means, quats, shN = _change_axes(means, quats, shN)
    splats = to_splat_dict(means, scales, quats, opacities, sh0, shN)
    return (splats, stored_axes) if return_axes else splats
