"""Per-Gaussian importance scores, accumulated over all training views in one pass per view (their names:
configs.py's SCORES, which `--prune.score` chooses from).

All come from the rasterizer's hit statistics (gspruner/render/stats.py): a pixel is "hit" by Gaussian i
when alpha >= 1/255 and i is composited before the pixel's T < 1e-4 stop; w = alpha T.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import Tensor

from ..model import activated
from ..render.stats import ContributionStats, contribution_stats
from .removal import removal_error
from .sensitivity import fisher, scale_invariant_offset, sensitivity

LIGHTGAUSSIAN_BETA = 0.1  # v_pow of LightGaussian's prune.py


@torch.no_grad()
def accumulate_stats(splats, views: Iterable, pixel_weights: Callable | None = None,
                     near_plane: float = 0.01, far_plane: float = 1e10) -> ContributionStats:
    """Statistics summed (max for weight_max) over `views` = iterable of (camera, image)."""
    p = activated(splats, 0)
    total = ContributionStats.zeros(p["means"].shape[0], p["means"].device)
    for cam, image in views:
        dev = p["means"].device
        total.accumulate(contribution_stats(
            p["means"], p["quats"], p["scales"], p["opacities"], cam.viewmat.to(dev), cam.K.to(dev),
            cam.width, cam.height, None if pixel_weights is None else pixel_weights(cam, image),
            near_plane=near_plane, far_plane=far_plane))
    return total


def lightgaussian_volume_factor(log_scales: Tensor, beta: float = LIGHTGAUSSIAN_BETA) -> Tensor:
    """gamma(Sigma) = min(V / V_max90, 1)^beta (LightGaussian, Fan et al. 2024, Eq. 7), V = prod of scales.

    The paper's convention: V_max90 is the 90th percentile of the volumes and the ratio is clipped
    at 1, so the largest 10 % are not favoured further. (The released code divides by the volume at
    the 10th percentile without clipping, which is a constant factor for every Gaussian: it cannot
    change a ranking, so only the paper's convention is a different score.) The constant 4/3 pi cancels.
    """
    log_v = log_scales.sum(dim=-1)  # log V [N]
    log_v90 = torch.quantile(log_v.float(), 0.9)
    return torch.exp(beta * (log_v - log_v90).clamp_max(0.0))


def importance_from_stats(name: str, stats: ContributionStats, splats) -> Tensor:
    """importance [N] for the named score."""
    opacity = torch.sigmoid(splats["opacities"].detach())
    if name == "lightgaussian":
        # GS_j = sum over hit pixels of sigma_j T, times gamma(Sigma_j) (LightGaussian Eq. 6-7)
        return opacity * stats.trans_sum * lightgaussian_volume_factor(splats["scales"].detach())
    if name == "radsplat":
        return stats.weight_max  # h_i = max over views and rays of alpha T (RadSplat Eq. 7)
    if name == "minisplatting":
        # sum of blending weights; never the max-weight Gaussian of any pixel -> 0 (Mini-Splatting Sec. 4.2)
        return torch.where(stats.max_count > 0, stats.weight_sum, torch.zeros_like(stats.weight_sum))
    if name == "minisplatting-area":
        # outdoor variant: sum of weights per unit projected area (hit pixels), same max-weight rule
        per_area = stats.weight_sum / stats.hit_count.clamp_min(1.0)
        return torch.where(stats.max_count > 0, per_area, torch.zeros_like(per_area))
    if name == "opacity":
        return opacity  # the naive baseline
    raise ValueError(f"unknown importance score {name!r}")


def compute_importance(name: str, splats, views: Iterable, near_plane: float = 0.01, far_plane: float = 1e10,
                       background=None) -> Tensor:
    if name == "opacity":
        return importance_from_stats(name, None, splats)
    if name in ("pup", "pup-scale"):  # not a hit statistic: each Gaussian's Fisher information over its mean and scale
        U = sensitivity(fisher(splats, views, background, near_plane, far_plane))
        return U if name == "pup" else U + scale_invariant_offset(splats["scales"].detach())
    if name in ("removal", "removal-sum"):  # not a hit statistic: the loss each Gaussian's removal costs a view
        return removal_error(splats, views, background, near_plane, far_plane, "sum" if name == "removal-sum" else "max")

    stats = accumulate_stats(splats, views, near_plane=near_plane, far_plane=far_plane)
    return importance_from_stats(name, stats, splats)
