"""Per-Gaussian contribution statistics of one view: how much each Gaussian shows up in the image.

For every hit pair (Gaussian i, pixel p) — hit as the rasterizer decides: alpha >= 1/255 and
composited before the pixel's T < 1e-4 stop — with weight w = alpha T (3DGS Eq. 3):
  weight_sum[i]  = sum_p m_p w_ip          (Mini-Splatting / EAGLES; LightGaussian uses sigma T)
  weight_max[i]  = max_p m_p w_ip          (RadSplat)
  hit_count[i]   = sum_p m_p               (FastGS with the high-error mask m)
  trans_sum[i]   = sum_p m_p T_ip          (LightGaussian: sigma_i * trans_sum[i])
  max_count[i]   = #pixels where i has the largest w of the pixel (Mini-Splatting's "intersection preserving")
with m_p an optional per-pixel weight (default 1).

`contribution_stats` hides the backend: CUDA tensors use our fused kernel (cuda/, built just in time)
when it builds; on CPU the compiled backend sums them in C++ without building pairs
(`compiled.contribution_stats`), the PyTorch one from its pairs (`stats_from_pairs`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor



@dataclass
class ContributionStats:
    weight_sum: Tensor  # [N]
    weight_max: Tensor  # [N]
    hit_count: Tensor  # [N]
    trans_sum: Tensor  # [N]
    max_count: Tensor  # [N]

    @classmethod
    def zeros(cls, n: int, device) -> "ContributionStats":
        return cls(*(torch.zeros(n, device=device) for _ in fields(cls)))

    def accumulate(self, other: "ContributionStats") -> None:
        """Sums add, maxima take the max (statistics over several views)."""
        self.weight_sum += other.weight_sum
        self.weight_max = torch.maximum(self.weight_max, other.weight_max)
        self.hit_count += other.hit_count
        self.trans_sum += other.trans_sum
        self.max_count += other.max_count


def stats_from_pairs(pairs, n: int, pixel_weights: Tensor | None = None) -> ContributionStats:
    """Statistics from the rasterizer's contributing pairs; pixel_weights [C, H, W] or None."""
    g, w = pairs.gaussian_ids, pairs.weights.float()
    dev = w.device
    m = torch.ones_like(w) if pixel_weights is None else pixel_weights.reshape(pixel_weights.shape[0], -1)[pairs.camera_ids, pairs.pixel_ids].float()
    zeros = lambda: torch.zeros(n, device=dev)  # noqa: E731
    weight_max = zeros().scatter_reduce_(0, g, m * w, reduce="amax", include_self=True)
    # per (camera, pixel) segment, the pair of largest weight: segment max, then the first pair reaching it
    seg = torch.repeat_interleave(torch.diff(pairs.pixel_starts))  # [P] segment index of each pair
    n_seg = pairs.pixel_starts.numel() - 1
    seg_max = torch.zeros(n_seg, device=dev).scatter_reduce_(0, seg, w, reduce="amax", include_self=True)
    is_max = w >= seg_max[seg]
    first = torch.full((n_seg,), len(w), device=dev, dtype=torch.long)
    first.scatter_reduce_(0, seg[is_max], torch.nonzero(is_max).squeeze(1), reduce="amin", include_self=True)
    winners = first[first < len(w)]
    return ContributionStats(
        weight_sum=zeros().index_add_(0, g, m * w),
        weight_max=weight_max,
        hit_count=zeros().index_add_(0, g, m),
        trans_sum=zeros().index_add_(0, g, m * pairs.transmittances.float()),
        max_count=zeros().index_add_(0, g[winners], m[winners]),
    )


@torch.no_grad()
def contribution_stats(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3] activated
    opacities: Tensor,  # [N] activated
    viewmat: Tensor,  # [4, 4]
    K: Tensor,  # [3, 3]
    width: int,
    height: int,
    pixel_weights: Tensor | None = None,  # [H, W]
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> ContributionStats:
    """Statistics of one view (see the module docstring)."""
    n = means.shape[0]
    pw = None if pixel_weights is None else pixel_weights[None]
    if means.is_cuda:
        from . import cuda_stats  # our fused kernel in cuda/, built just in time

        if cuda_stats.available():
            return ContributionStats(**cuda_stats.stats(
                means, quats, scales, opacities, viewmat, K, width, height, pw, near_plane, far_plane))
    from . import compiled, contributing_pairs, project  # the chosen CPU backend

    proj = project(means, quats, scales, opacities, viewmat[None], K[None], width, height,
                   near_plane=near_plane, far_plane=far_plane)
    if compiled.handles(proj.means2d, proj.conics, proj.opacities, pw):  # the same sums, no pairs built
        return ContributionStats(*compiled.contribution_stats(proj, width, height, pw)[:, 0])
    pairs = contributing_pairs(proj.means2d, proj.conics, proj.opacities, proj.depths, proj.radii, width, height)
    return stats_from_pairs(pairs, n, pw)
