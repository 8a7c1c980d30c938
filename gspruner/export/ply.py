"""INRIA 3DGS PLY (Kerbl et al. 2023, graphdeco-inria/gaussian-splatting `save_ply`), read and written with plyfile.

Splat dict (gsplat naming, used everywhere in gspruner), pre-activation values:
    means [N,3], scales [N,3] (log), quats [N,4] (w,x,y,z, not necessarily normalized),
    opacities [N] (logit), sh0 [N,1,3], shN [N,K-1,3] with K = (deg+1)², K-1 may be 0.

File: one `vertex` element, float32, binary little endian, properties in this order:
    x y z | nx ny nz (zeros) | f_dc_0..2 | f_rest_0..3(K-1)-1 | opacity | scale_0..2 | rot_0..3 (w first)
f_rest is channel-major: all R coefficients, then G, then B (shN.transpose(1,2)).
The reader also accepts gsplat's `export_splats` layout, which omits the normals.
"""

from __future__ import annotations

import math
import os
import uuid
import warnings
from pathlib import Path

import numpy as np
import plyfile
import torch

from gspruner.errors import InputError

__all__ = ["write_ply", "read_ply", "ply_property_names"]

_SPLAT_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")


def ply_property_names(num_rest_coeffs: int) -> list[str]:
    """INRIA property order for K-1 = num_rest_coeffs higher-order SH coefficients per channel."""
    return (
        ["x", "y", "z", "nx", "ny", "nz"]
        + [f"f_dc_{i}" for i in range(3)]
        + [f"f_rest_{i}" for i in range(3 * num_rest_coeffs)]
        + ["opacity"]
        + [f"scale_{i}" for i in range(3)]
        + [f"rot_{i}" for i in range(4)]
    )


def validated_splats(splats: dict) -> dict[str, torch.Tensor]:
    """The six splat tensors on the CPU (shN [N,0,3] when absent), shapes checked; ValueError otherwise."""
    missing = [k for k in _SPLAT_KEYS[:5] if k not in splats]
    if missing:
        raise ValueError(f"splat dict lacks {missing}")
    t = {k: torch.as_tensor(splats[k]).detach().to("cpu") for k in _SPLAT_KEYS[:5]}
    n = t["means"].shape[0]
    sh_rest = splats.get("shN")
    t["shN"] = torch.zeros(n, 0, 3) if sh_rest is None else torch.as_tensor(sh_rest).detach().to("cpu")
    expected = {"means": (n, 3), "scales": (n, 3), "quats": (n, 4), "opacities": (n,), "sh0": (n, 1, 3)}
    for key, shape in expected.items():
        if tuple(t[key].shape) != shape:
            raise ValueError(f"splats[{key!r}] has shape {tuple(t[key].shape)}, expected {shape}")
    sh_rest = t["shN"]
    if sh_rest.dim() != 3 or sh_rest.shape[0] != n or sh_rest.shape[2] != 3:
        raise ValueError(f"splats['shN'] has shape {tuple(sh_rest.shape)}, expected ({n}, K-1, 3)")
    return t


def _splats_to_columns(splats: dict) -> np.ndarray:
    """Splat dict -> float32 [N, P] in INRIA property order (normals included)."""
    t = {k: v.float() for k, v in validated_splats(splats).items()}
    n, sh_rest = t["means"].shape[0], t["shN"]
    columns = torch.cat(
        [
            t["means"],  # [N,3]
            torch.zeros(n, 3),  # normals [N,3]
            t["sh0"].reshape(n, 3),  # [N,3]
            sh_rest.transpose(1, 2).reshape(n, -1),  # [N,3(K-1)] channel-major
            t["opacities"][:, None],  # [N,1]
            t["scales"],  # [N,3]
            t["quats"],  # [N,4]
        ],
        dim=1,
    )
    return columns.numpy().astype("<f4", copy=False)


def write_ply(path: str | os.PathLike, splats: dict) -> int:
    """Write splats as an INRIA 3DGS PLY, atomically (temp file in the same folder, then os.replace).

    Splats with any NaN/Inf attribute are dropped with a warning. Returns the number written.
    Raises InputError if no finite splat remains (no file is written).
    """
    path = Path(path)
    columns = _splats_to_columns(splats)  # [N,P]
    num_rest = (columns.shape[1] - 17) // 3
    finite = np.isfinite(columns).all(axis=1)  # [N]
    num_dropped = int((~finite).sum())
    if num_dropped == len(columns):
        raise InputError(f"{path}: no finite splats to write ({num_dropped} have NaN/Inf values)")
    if num_dropped:
        warnings.warn(f"{path}: dropped {num_dropped} of {len(columns)} splats with NaN/Inf values", stacklevel=2)
        columns = columns[finite]
    names = ply_property_names(num_rest)
    records = np.ascontiguousarray(columns).view(np.dtype([(name, "<f4") for name in names])).reshape(-1)
    ply = plyfile.PlyData([plyfile.PlyElement.describe(records, "vertex")], text=False, byte_order="<")
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as f:
            ply.write(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return len(columns)


def read_ply(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an INRIA 3DGS PLY (normals optional) into a splat dict of float32 CPU tensors.

    The SH degree follows from the number of f_rest properties (0, 9, 24, 45, ... = 3((deg+1)²-1)).
    Raises InputError naming the file and the problem for anything that is not such a PLY.
    """
    path = Path(path)
    try:
        ply = plyfile.PlyData.read(str(path))
        vertex = ply["vertex"]
        data = vertex.data
        if len(data) != vertex.count:
            raise plyfile.PlyParseError("early end-of-file")
    except KeyError:
        raise InputError(f"{path}: PLY file has no 'vertex' element") from None
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a PLY file (header is not ASCII text)") from None
    except Exception as e:  # plyfile raises PlyParseError, ValueError, EOFError, UnicodeDecodeError, ...
        reason = " ".join(str(e).split()) or type(e).__name__
        raise InputError(f"{path}: not a readable PLY file ({reason})") from None

    names = set(data.dtype.names or ())
    num_rest_props = sum(1 for name in names if name.startswith("f_rest_"))
    required = [n for n in ply_property_names(num_rest_props // 3) if n not in ("nx", "ny", "nz")]
    missing = [n for n in required if n not in names]
    if missing or num_rest_props % 3:
        if missing:
            problem = f"lacks properties {', '.join(missing[:6])}{' ...' if len(missing) > 6 else ''}"
        else:
            problem = f"has {num_rest_props} f_rest properties, not a multiple of 3"
        raise InputError(f"{path}: not a 3DGS PLY, vertex element {problem}")
    num_rest = num_rest_props // 3  # K-1
    degree = math.isqrt(num_rest + 1) - 1
    if (degree + 1) ** 2 != num_rest + 1:
        raise InputError(f"{path}: {num_rest_props} f_rest properties match no SH degree (0, 9, 24, 45, ...)")

    def stack(prefix_names: list[str]) -> torch.Tensor:  # [N, len(names)] float32
        return torch.from_numpy(np.stack([np.asarray(data[name], dtype=np.float32) for name in prefix_names], axis=1))

    n = len(data)
    f_rest = stack([f"f_rest_{i}" for i in range(3 * num_rest)]) if num_rest else torch.zeros(n, 0)
    splats = {
        "means": stack(["x", "y", "z"]),
        "scales": stack([f"scale_{i}" for i in range(3)]),
        "quats": stack([f"rot_{i}" for i in range(4)]),
        "opacities": stack(["opacity"])[:, 0].contiguous(),
        "sh0": stack([f"f_dc_{i}" for i in range(3)]).reshape(n, 1, 3),
        "shN": f_rest.reshape(n, 3, num_rest).transpose(1, 2).contiguous(),  # [N,K-1,3]
    }
    bad = torch.zeros(n, dtype=torch.bool)
    for value in splats.values():
        bad |= ~torch.isfinite(value.reshape(n, -1)).all(dim=1)
    if bad.any():
        names = [k for k, v in splats.items() if not torch.isfinite(v).all()]
        raise InputError(f"{path}: {int(bad.sum())} of {n} Gaussians hold NaN or infinite values ({', '.join(names)})")
    return splats
