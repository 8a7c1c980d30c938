"""The one rendering entry point: `rasterize(...)`, gsplat.rasterization semantics on CPU and CUDA.

CUDA tensors go straight to `gsplat.rasterization` (its kernels); CPU tensors go to our
differentiable pure-PyTorch rasterizer (`torch_raster`), which reproduces gsplat 1.5.3's
projection, culling, tile binning, alpha rules and gradients, and returns the same `info` keys as
gsplat's non-packed path so gsplat's strategies run unchanged.
"""

from __future__ import annotations

import warnings
from typing import Dict, Optional, Tuple

from torch import Tensor

from . import torch_raster
from .sh import spherical_harmonics
from .torch_raster import Pairs, Projection, contributing_pairs, project

__all__ = ["rasterize", "contributing_pairs", "project", "Pairs", "Projection", "spherical_harmonics"]


def rasterize(
    means: Tensor,  # [N, 3]
    quats: Optional[Tensor],  # [N, 4] wxyz, need not be normalized
    scales: Optional[Tensor],  # [N, 3] activated
    opacities: Tensor,  # [N] activated
    colors: Tensor,  # [(C,) N, D] post-activation, or [(C,) N, K, 3] SH coefficients with sh_degree
    viewmats: Tensor,  # [C, 4, 4] world-to-camera (OpenCV)
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: Optional[int] = None,
    packed: bool = False,
    tile_size: int = 16,
    backgrounds: Optional[Tensor] = None,  # [C, D]
    render_mode: str = "RGB",
    absgrad: bool = False,
    rasterize_mode: str = "classic",
    covars: Optional[Tensor] = None,  # [N, 6] upper triangle (xx, xy, xz, yy, yz, zz), or [N, 3, 3]
    compact_box: float = 1.0,
) -> Tuple[Tensor, Tensor, Dict]:
    """Render Gaussians -> (render_colors [C, H, W, D'], render_alphas [C, H, W, 1], info).

    Same meaning as `gsplat.rasterization`; dispatch on `means.device.type`. `covars`, if given,
    replaces quats/scales. On CPU `packed` is ignored (info is always gsplat's non-packed layout:
    radii [C, N, 2], means2d [C, N, 2], ..., gaussian_ids None) and info also holds "pairs", the
    `torch_raster.Pairs` that were composited.

    `compact_box` = beta < 1 (CPU only): FastGS's compact box, pixels with d^2 > beta 2 ln(255 o) are
    skipped. gsplat's CUDA tile intersection has no such cut; on CUDA it is ignored (with a warning).
    """
    if means.device.type == "cuda":
        if compact_box < 1.0:  # Python's default filter shows this once per call site, not every step
            warnings.warn("compact_box is a CPU-rasterizer option; gsplat's CUDA rasterizer renders without it", stacklevel=2)
        import gsplat

        if covars is not None and covars.shape[-1] == 6:  # gsplat 1.5.3 takes [N, 3, 3]
            covars = torch_raster.covariance_from_upper(covars)
        return gsplat.rasterization(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height,
            near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
            sh_degree=sh_degree, packed=packed, tile_size=tile_size, backgrounds=backgrounds,
            render_mode=render_mode, absgrad=absgrad, rasterize_mode=rasterize_mode, covars=covars,
        )
    return torch_raster.rasterize(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
        sh_degree=sh_degree, packed=packed, tile_size=tile_size, backgrounds=backgrounds,
        render_mode=render_mode, absgrad=absgrad, rasterize_mode=rasterize_mode, covars=covars,
        compact_box=compact_box,
    )
