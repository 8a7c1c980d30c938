"""Loader for our fused contribution-statistics kernel (cuda/csrc/contribution_stats.cu).

Built just in time with `torch.utils.cpp_extension.load` on first CUDA use, like gsplat builds its
own kernels. When it cannot be built (no CUDA, no compiler, sources not shipped with a wheel install)
`available()` is False and callers use the PyTorch path.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch

SOURCE = Path(__file__).resolve().parents[2] / "cuda" / "csrc" / "contribution_stats.cu"
_ext = None
_tried = False


def _load():
    global _ext, _tried
    if not _tried:
        _tried = True
        if torch.cuda.is_available() and SOURCE.is_file():
            try:
                from torch.utils.cpp_extension import load

                _ext = load(name="gspruner_contribution_stats", sources=[str(SOURCE)],
                            extra_cuda_cflags=["-O3", "--use_fast_math"], verbose=False)
            except Exception as exc:  # no nvcc, incompatible toolkit, ...
                warnings.warn(f"gspruner: CUDA statistics kernel not built ({exc}); using the PyTorch path")
    return _ext


def available() -> bool:
    return _load() is not None


def stats(means, quats, scales, opacities, viewmat, K, width, height, pixel_weights=None,
          near_plane=0.01, far_plane=1e10, tile_size: int = 16) -> dict:
    """One view's statistics on CUDA: gsplat's projection and tile intersection, then our kernel."""
    from gsplat.cuda._wrapper import fully_fused_projection, isect_offset_encode, isect_tiles

    radii, means2d, depths, conics, _ = fully_fused_projection(
        means, None, quats, scales, viewmat[None], K[None], width, height,
        eps2d=0.3, near_plane=near_plane, far_plane=far_plane, opacities=opacities)
    tile_width, tile_height = math.ceil(width / tile_size), math.ceil(height / tile_size)
    _, isect_ids, flatten_ids = isect_tiles(means2d, radii, depths, tile_size, tile_width, tile_height)
    offsets = isect_offset_encode(isect_ids, 1, tile_width, tile_height)  # [1, th, tw]
    C, N = means2d.shape[:2]
    opac = opacities[None].expand(C, N).contiguous().float()
    pw = pixel_weights.float().contiguous() if pixel_weights is not None else means.new_zeros(0)
    out = _load().contribution_stats(means2d.contiguous(), conics.contiguous(), opac, offsets.int().contiguous(),
                                     flatten_ids.int().contiguous(), pw, width, height, tile_size)
    return dict(zip(("weight_sum", "weight_max", "hit_count", "trans_sum", "max_count"), out))
