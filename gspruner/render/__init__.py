"""The one rendering entry point: `rasterize(...)`, gsplat.rasterization semantics on CPU and CUDA.

CUDA tensors go straight to `gsplat.rasterization` (its kernels). CPU tensors go to one of our two
CPU rasterizers, which reproduce gsplat 1.5.3's projection, culling, tile binning, alpha rules and
gradients and return the same `info` keys as gsplat's non-packed path, so gsplat's strategies run
unchanged:
- `compiled` (default): C++/OpenMP kernels (csrc/cpu_raster.cpp), built on first use;
- `torch`: the pure-PyTorch rasterizer (`torch_raster`), the reference the compiled one is tested
  against, and the fallback when no C++ compiler is present or for float64 inputs.
GSPRUNER_CPU_BACKEND=torch|compiled chooses (see `compiled.py`).
"""

from __future__ import annotations

import warnings
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from . import compiled, torch_raster
from .distributed import rasterize_sharded
from .sh import spherical_harmonics
from .torch_raster import Pairs, Projection

__all__ = ["rasterize", "contributing_pairs", "project", "Pairs", "Projection", "spherical_harmonics",
           "cpu_backend"]


def cpu_backend() -> str:
    """'compiled' or 'torch': the CPU rasterizer that float32 renders use now (GSPRUNER_CPU_BACKEND)."""
    return compiled.backend()


def project(means, quats, scales, opacities, viewmats, Ks, width, height, near_plane=0.01, far_plane=1e10,
            radius_clip=0.0, eps2d=0.3, covars=None, antialiased=False) -> Projection:
    """EWA projection of 3D Gaussians (`torch_raster.project`'s contract), on the chosen CPU backend."""
    use = compiled.handles(means, quats, scales, opacities, covars, cameras=(viewmats, Ks))
    fn = compiled.project if use else torch_raster.project
    return fn(means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane, radius_clip,
              eps2d, covars, antialiased)


def contributing_pairs(means2d, conics, opacities, depths, radii, width, height, tile_size=16,
                       compact_box=1.0) -> Pairs:
    """Every composited (camera, Gaussian, pixel) pair (`torch_raster.contributing_pairs`' contract)."""
    use = compiled.handles(means2d, conics, opacities, depths, tile_size=tile_size)
    fn = compiled.contributing_pairs if use else torch_raster.contributing_pairs
    return fn(means2d, conics, opacities, depths, radii, width, height, tile_size, compact_box)


def rasterize(
    means: Tensor,  # [N, 3]
    quats: Optional[Tensor],  # [N, 4] wxyz, need not be normalized
    scales: Optional[Tensor],  # [N, 3] activated
    opacities: Tensor,  # [N] activated
    colors,  # [(C,) N, D] post-activation, [(C,) N, K, 3] SH coefficients with sh_degree, or (sh0, shN)
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
    distributed: bool = False,
) -> Tuple[Tensor, Tensor, Dict]:
    """Render Gaussians -> (render_colors [C, H, W, D'], render_alphas [C, H, W, 1], info).

    Same meaning as `gsplat.rasterization`; dispatch on `means.device.type`, then on the CPU backend
    (float32 inputs without camera gradients use the compiled one when it is chosen and built). `covars`, if given,
    replaces quats/scales. On CPU `packed` is ignored (info is always gsplat's non-packed layout:
    radii [C, N, 2], means2d [C, N, 2], ..., gaussian_ids None) and info also holds "pairs", the
    `torch_raster.Pairs` that were composited.

    `colors` may also be the model's two SH parameters (sh0 [N, 1, 3], shN [N, K-1, 3]) with `sh_degree`: the
    compiled CPU path reads them in place and returns their gradients directly (no [N, K, 3] copy each way);
    other paths concatenate them.

    `compact_box` = beta < 1 (CPU only): FastGS's compact box, pixels with d^2 > beta 2 ln(255 o) are
    skipped. gsplat's CUDA tile intersection has no such cut; on CUDA it is ignored (with a warning).

    `distributed=True` inside a `torch.distributed` process group (any size): the Gaussians given are
    this rank's shard and the cameras this rank's; every rank's Gaussians are rendered into them (CUDA:
    gsplat's `distributed=True`; CPU: `render/distributed.py`, the same scheme). info then describes this
    rank's Gaussians in every rank's cameras. RGB only, no absgrad.
    """
    sharded = distributed and torch.distributed.is_available() and torch.distributed.is_initialized()
    if sharded and (render_mode != "RGB" or absgrad or packed):
        raise ValueError("a sharded render supports render_mode RGB without absgrad or packed")
    split_sh = isinstance(colors, (tuple, list))
    if split_sh:  # (sh0 [N, 1, 3], shN [N, K-1, 3]): the compiled CPU path reads them in place
        if sh_degree is None or len(colors) != 2:
            raise ValueError("colors as a pair is (sh0, shN) SH coefficients and needs sh_degree")
        use_split = compiled.handles(means, quats, scales, opacities, *colors, backgrounds, covars,
                                     tile_size=tile_size, cameras=(viewmats, Ks))
        if not use_split or means.device.type == "cuda":
            colors = torch.cat(list(colors), dim=-2)[..., : (sh_degree + 1) ** 2, :]
            split_sh = False
    if means.device.type == "cuda":
        if compact_box < 1.0:  # Python's default filter shows this once per call site, not every step
            warnings.warn("compact_box is a CPU-rasterizer option; gsplat's CUDA rasterizer renders without it", stacklevel=2)
        import gsplat

        if covars is not None and covars.shape[-1] == 6:  # gsplat 1.5.3 takes [N, 3, 3]
            covars = torch_raster.covariance_from_upper(covars)
        render_colors, render_alphas, info = gsplat.rasterization(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height,
            near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
            sh_degree=sh_degree, packed=packed, tile_size=tile_size, backgrounds=backgrounds,
            render_mode=render_mode, absgrad=absgrad, rasterize_mode=rasterize_mode, covars=covars,
            distributed=sharded,
        )
        if sharded:  # as the CPU path: each rank's loss averages its own cameras
            info["n_cameras"] = viewmats.shape[0]
        return render_colors, render_alphas, info
    use = split_sh or compiled.handles(means, quats, scales, opacities, colors, backgrounds, covars,
                                       tile_size=tile_size, cameras=(viewmats, Ks))
    if sharded:
        return rasterize_sharded(
            compiled if use else torch_raster, means, quats, scales, opacities, colors, viewmats, Ks, width, height,
            near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d, sh_degree=sh_degree,
            tile_size=tile_size, backgrounds=backgrounds, covars=covars, compact_box=compact_box,
            antialiased=rasterize_mode == "antialiased",
        )
    return (compiled.rasterize if use else torch_raster.rasterize)(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
        sh_degree=sh_degree, packed=packed, tile_size=tile_size, backgrounds=backgrounds,
        render_mode=render_mode, absgrad=absgrad, rasterize_mode=rasterize_mode, covars=covars,
        compact_box=compact_box,
    )
