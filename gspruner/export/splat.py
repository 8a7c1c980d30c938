"""antimatter15 `.splat` (github.com/antimatter15/splat, `convert.py`), written and read.

No header; N = file size / 32. Per splat, 32 bytes little endian:
    f32 x, y, z | f32 exp(scale_0..2) | u8 R, G, B, A | u8 rot_0..3
with RGB = (0.5 + SH_C0·f_dc)·255, A = sigmoid(opacity)·255, rot = q/|q|·128 + 128 (w first), each
clamped to [0, 255]. No SH bands (the writer warns when it drops them). Splats are sorted by descending
exp(Σ scale)·sigmoid(opacity), as antimatter15's converter does, so viewers that stream the file draw
the big opaque splats first.

Quantization error of a round trip: position and scale exact (float32; the log scale up to float32
rounding), f_dc ≤ 0.5/(255·SH_C0) = 0.007 for f_dc in [-1.77, 1.77] (colour in [0, 1]; outside it is
clamped), sigmoid(opacity) ≤ 0.5/255, quaternion components ≤ 0.5/128 before renormalisation.

Our own code: antimatter15's converter and gsplat 1.5.3 `splat2splat_bytes` truncate to u8; we round to
nearest (half the error, same decoders). gsplat Morton-sorts instead of the size·opacity order and writes
records in a Python loop; we write one numpy structured array.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from gspruner.errors import InputError
from gspruner.export.formats import read_file_bytes, SH_C0, atomic_write, logit_u8, prepare_splats, sigmoid, to_splat_dict

__all__ = ["write_splat", "read_splat", "SPLAT_RECORD", "BYTES_PER_SPLAT"]

SPLAT_RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
BYTES_PER_SPLAT = SPLAT_RECORD.itemsize  # 32
_F32_TINY, _F32_MAX = float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)


def write_splat(path: str | os.PathLike, splats: dict) -> int:
    """Write splats as an antimatter15 .splat file (32 B/splat), atomically; SH bands are dropped with a
    warning. Returns the number of splats written."""
    path = Path(path)
    a = prepare_splats(path, splats)
    n = len(a["means"])
    if a["shN"].shape[1]:
        degree = round((a["shN"].shape[1] + 1) ** 0.5) - 1
        warnings.warn(f"{path}: .splat has no SH: dropped SH bands 1-{degree} (view-dependent colour)", stacklevel=2)
    # descending exp(Σ scale)·sigmoid(opacity), compared in log space (no overflow): Σ scale + log σ(o)
    log_sigmoid = -np.logaddexp(0.0, -a["opacities"])
    order = np.argsort(-(a["scales"].sum(axis=1) + log_sigmoid), kind="stable")
    a = {k: v[order] for k, v in a.items()}

    records = np.empty(n, dtype=SPLAT_RECORD)
    records["position"] = a["means"]
    records["scale"] = np.clip(np.exp(a["scales"]), _F32_TINY, _F32_MAX)
    records["rgba"][:, :3] = _u8((0.5 + SH_C0 * a["sh0"].astype(np.float64)) * 255.0)
    records["rgba"][:, 3] = _u8(sigmoid(a["opacities"]) * 255.0)
    q = a["quats"] / np.linalg.norm(a["quats"], axis=1, keepdims=True)
    records["rot"] = _u8(q * 128.0 + 128.0)
    atomic_write(path, [records.tobytes()])
    return n


def read_splat(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an antimatter15 .splat file into a splat dict (shN empty). Raises InputError naming the file."""
    path = Path(path)
    data = read_file_bytes(path)
    if not data:
        raise InputError(f"{path}: empty .splat file")
    if len(data) % BYTES_PER_SPLAT:
        raise InputError(f"{path}: not a .splat file (size {len(data)} is not a multiple of 32 bytes; truncated?)")
    records = np.frombuffer(data, dtype=SPLAT_RECORD)
    n = len(records)
    scale = records["scale"].astype(np.float64)
    if not (np.isfinite(scale).all() and (scale > 0).all() and np.isfinite(records["position"]).all()):
        raise InputError(f"{path}: not a .splat file (non-finite position or non-positive scale values)")
    rgba = records["rgba"].astype(np.float64)
    quats = (records["rot"].astype(np.float64) - 128.0) / 128.0
    quats[(quats == 0).all(axis=1), 0] = 1.0  # (128,128,128,128): identity rather than a zero quaternion
    return to_splat_dict(
        means=records["position"],
        scales=np.log(scale),
        quats=quats,
        opacities=logit_u8(records["rgba"][:, 3]),
        sh0=(rgba[:, :3] / 255.0 - 0.5) / SH_C0,
        shN=np.zeros((n, 0, 3)),
    )
