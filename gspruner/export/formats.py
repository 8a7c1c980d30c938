"""Scene-file format registry: write/read any supported format, detect a file's format, shared helpers.

Formats (name -> canonical suffix):
    ply             INRIA 3DGS PLY, float32, lossless (`gspruner.export.ply`)
    sog             PlayCanvas SOG: meta.json + lossless WebP images in a zip, SH by a k-means palette (`sog`)
    spz             Niantic SPZ v4 (zstd; v2/v3 gzip on request), full 8-bit SH by default (`spz`)
    glb             glTF 2.0 binary with KHR_gaussian_splatting, float32, lossless (`gltf`)
    compressed-ply  PlayCanvas/SuperSplat chunked PLY, ~16 B/splat + 45 B of SH3; legacy, SOG replaces it (`compressed_ply`)
    splat           antimatter15 .splat, exactly 32 B/splat, no SH (`splat`)

Every writer takes the splat dict convention of `gspruner.export.ply` (means [N,3], log scales [N,3],
quats [N,4] wxyz unnormalized, logit opacities [N], sh0 [N,1,3], shN [N,K-1,3]), drops splats with
NaN/Inf values (and, for the quantized formats, a zero quaternion) with one warning, raises InputError
rather than writing an empty file, writes atomically and returns the number of splats written.
Every reader returns that dict as float32 CPU tensors, or raises InputError naming the file.
"""

from __future__ import annotations

import importlib
import os
import uuid
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

from gspruner.errors import InputError
from gspruner.export.ply import validated_splats

__all__ = [
    "FORMATS",
    "SH_C0",
    "write_splats",
    "read_splats",
    "detect_format",
    "format_suffix",
    "sh_degree_of",
    "drop_sh_bands",
    "writer_options",
]

SH_C0 = 0.28209479177387814

# name -> canonical suffix (iteration order = the order `--format all` writes them)
FORMATS: dict[str, str] = {
    "ply": ".ply",
    "sog": ".sog",
    "spz": ".spz",
    "glb": ".glb",
    "compressed-ply": ".compressed.ply",
    "splat": ".splat",
}

# name -> (module, writer, reader); imported lazily so the format modules can use the helpers below
_IMPL = {
    "ply": ("gspruner.export.ply", "write_ply", "read_ply"),
    "sog": ("gspruner.export.sog", "write_sog", "read_sog"),
    "glb": ("gspruner.export.gltf", "write_glb", "read_glb"),
    "compressed-ply": ("gspruner.export.compressed_ply", "write_compressed_ply", "read_compressed_ply"),
    "spz": ("gspruner.export.spz", "write_spz", "read_spz"),
    "splat": ("gspruner.export.splat", "write_splat", "read_splat"),
}

_SPLAT_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")


def _impl(fmt: str, which: int):
    if fmt not in _IMPL:
        raise InputError(f"unknown scene format {fmt!r} (expected one of {', '.join(FORMATS)})")
    module, *names = _IMPL[fmt]
    return getattr(importlib.import_module(module), names[which])


def format_suffix(fmt: str) -> str:
    """Canonical file suffix of a format name (`compressed-ply` -> `.compressed.ply`)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown scene format {fmt!r} (expected one of {', '.join(FORMATS)})")
    return FORMATS[fmt]


def write_splats(path: str | os.PathLike, splats: dict, fmt: str, **kwargs) -> int:
    """Write `splats` to `path` in format `fmt` (a FORMATS key); returns the number of splats written.

    Extra keyword arguments go to the format's writer (e.g. `version=2` for spz).
    """
    return _impl(fmt, 0)(path, splats, **kwargs)


def writer_options(
    fmt: str, spz_version: int = 4, spz_sh_bits=(8, 8), spz_axes: str = "ply", sog_palette=None, view_points=None
) -> dict:
    """The keyword arguments of `fmt`'s writer among the export options: spz takes version, sh_bits and
    axes, sog its SH palette size (None: the reference's rule), compressed-ply the camera centres [C,3] its
    SH rounding is done for (None: nearest)."""
    if fmt == "sog":
        return {"palette_size": sog_palette}
    if fmt == "spz":
        return {"version": spz_version, "sh_bits": tuple(spz_sh_bits), "axes": spz_axes}
    if fmt == "compressed-ply":
        return {"view_points": view_points}
    return {}


def read_splats(path: str | os.PathLike, fmt: str | None = None) -> dict[str, torch.Tensor]:
    """Read a scene file of any supported format into a splat dict (float32 CPU tensors).

    `fmt=None` detects the format (see `detect_format`). Raises InputError naming the file on any problem.
    """
    path = Path(path)
    if fmt is None:
        fmt = detect_format(path)
    return _impl(fmt, 1)(path)


def detect_format(path: str | os.PathLike) -> str:
    """Format of a scene file: by suffix (`.compressed.ply` before `.ply`, `.sog`, `.spz`, `.glb`, `.splat`),
    and for `.ply` by content (a PLY with a `chunk` element is a compressed PLY)."""
    path = Path(path)
    name = path.name.lower()
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    if name.endswith(".compressed.ply"):
        return "compressed-ply"
    if name.endswith(".spz"):
        return "spz"
    if name.endswith(".sog"):
        return "sog"
    if name.endswith(".glb"):
        return "glb"
    if name.endswith(".splat"):
        return "splat"
    if name.endswith(".ply"):
        return "compressed-ply" if _ply_has_chunk_element(path) else "ply"
    raise InputError(
        f"{path}: unknown scene file type (expected .ply, .sog, .spz, .glb, .compressed.ply or .splat)"
    )


def _ply_has_chunk_element(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(64 * 1024)
    end = head.find(b"end_header")
    header = head if end < 0 else head[:end]
    return any(line.split()[:2] == [b"element", b"chunk"] for line in header.splitlines())


def sh_degree_of(splats: dict) -> int:
    """SH degree of a splat dict: shN [N, (d+1)²-1, 3] -> d."""
    sh_rest = splats.get("shN")
    num_rest = 0 if sh_rest is None else int(sh_rest.shape[1])
    return int(round((num_rest + 1) ** 0.5)) - 1


def drop_sh_bands(splats: dict, sh_degree: int) -> dict:
    """A shallow copy of `splats` keeping SH bands up to `sh_degree` (no-op when it has no more)."""
    if sh_degree < 0:
        raise InputError(f"--sh-degree must be ≥ 0 (got {sh_degree})")
    out = dict(splats)
    if sh_degree_of(splats) > sh_degree:
        out["shN"] = splats["shN"][:, : (sh_degree + 1) ** 2 - 1, :]
    return out


# ----------------------------------------------------------------------------------------------------
# Helpers shared by the quantized writers/readers
# ----------------------------------------------------------------------------------------------------


def prepare_splats(path: Path, splats: dict, require_rotation: bool = True) -> dict[str, np.ndarray]:
    """Validate shapes and return finite splats as numpy arrays (means/scales/quats/opacities float64,
    sh0 [N,3] and shN [N,K-1,3] float32).

    Splats with a NaN/Inf value or (with `require_rotation`) a zero-length quaternion are dropped with one
    warning giving the count; InputError if none is left (no file is written then).
    """
    t = validated_splats(splats)
    n, sh_rest = t["means"].shape[0], t["shN"]
    num_rest = sh_rest.shape[1]
    if (round((num_rest + 1) ** 0.5)) ** 2 != num_rest + 1:
        raise ValueError(f"splats['shN'] has {num_rest} coefficients per channel, not (d+1)²-1")

    arrays = {k: t[k].to(torch.float64).numpy() for k in ("means", "scales", "quats", "opacities")}
    arrays["sh0"] = t["sh0"].to(torch.float32).numpy().reshape(n, 3)
    arrays["shN"] = sh_rest.to(torch.float32).numpy()
    valid = np.ones(n, dtype=bool)
    for key, a in arrays.items():
        valid &= np.isfinite(a.reshape(n, -1)).all(axis=1)
    num_bad_values = int((~valid).sum())
    if require_rotation:
        with np.errstate(invalid="ignore", over="ignore"):
            valid &= np.linalg.norm(arrays["quats"], axis=1) > 0
    num_dropped = int((~valid).sum())
    if n == 0:
        raise InputError(f"{path}: no splats to write")
    if num_dropped == n:
        raise InputError(f"{path}: no valid splats to write ({num_dropped} have NaN/Inf values or a zero quaternion)")
    if num_dropped:
        reason = f"{num_bad_values} with NaN/Inf values"
        if num_dropped > num_bad_values:
            reason += f", {num_dropped - num_bad_values} with a zero quaternion"
        warnings.warn(f"{path}: dropped {num_dropped} of {n} splats ({reason})", stacklevel=3)
        arrays = {k: a[valid] for k, a in arrays.items()}
    return arrays


def read_file_bytes(path: Path) -> bytes:
    """The file's bytes; InputError naming the file when it is missing or unreadable."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read ({e.strerror})") from None


def atomic_write(path: Path, chunks: Iterable[bytes]) -> None:
    """Write bytes to `path` via a temp file in the same folder and os.replace (no partial file on error)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            for chunk in chunks:
                f.write(chunk)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def logit_u8(alpha_u8: np.ndarray) -> np.ndarray:
    """Opacity logit of an 8-bit alpha, clamped half a step off 0 and 1 (a finite value within the step)."""
    a = np.clip(alpha_u8.astype(np.float64) / 255.0, 0.5 / 255.0, 254.5 / 255.0)
    return np.log(a / (1.0 - a))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def to_splat_dict(
    means: np.ndarray, scales: np.ndarray, quats: np.ndarray, opacities: np.ndarray, sh0: np.ndarray, shN: np.ndarray
) -> dict[str, torch.Tensor]:
    """Numpy arrays -> the splat dict of contiguous float32 CPU tensors (sh0 -> [N,1,3]; shN given as [N,K-1,3])."""
    n = len(means)

    def t(a, shape):
        return torch.from_numpy(np.ascontiguousarray(np.asarray(a, dtype=np.float32).reshape(shape)))

    return {
        "means": t(means, (n, 3)),
        "scales": t(scales, (n, 3)),
        "quats": t(quats, (n, 4)),
        "opacities": t(opacities, (n,)),
        "sh0": t(sh0, (n, 1, 3)),
        "shN": t(shN, shN.shape),  # callers pass [N,K-1,3]
    }
