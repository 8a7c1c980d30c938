"""The 3D Gaussian model: splats as a `ParameterDict` in gsplat's naming, and their Adam optimizers.

Storage (pre-activation, as gsplat's simple_trainer):
  means [N,3], scales [N,3] (log), quats [N,4] (wxyz, unnormalized), opacities [N] (logit),
  sh0 [N,1,3] (SH DC), shN [N,K-1,3] (higher bands, K = (sh_degree+1)^2).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.spatial import cKDTree

SH_C0 = 0.28209479177387814  # Y_0^0 = 1 / (2 sqrt(pi))

# Learning rates of gsplat 1.5.3 examples/simple_trainer.py; means are multiplied by the scene scale.
DEFAULT_LRS = {
    "means": 1.6e-4,
    "scales": 5e-3,
    "quats": 1e-3,
    "opacities": 5e-2,
    "sh0": 2.5e-3,
    "shN": 2.5e-3 / 20,
}


REFERENCE_STEPS = 30_000  # the schedule gsplat's learning rates were set for
MEANS_LR_END = 0.01  # gsplat: the means lr decays exponentially to 1 % of its start over the run


def means_lr_schedule(max_steps: int, travel: float = 0.5) -> tuple[float, float]:
    """(start factor, per-step decay gamma) of the means learning rate for a run of `max_steps`.

    gsplat decays lr_means from 1.6e-4 × scene scale to 1 % over the run; in a 1k-step run a Gaussian can then
    travel ~1/30 of what it can in 30k steps (Adam moves a parameter ~lr per step). A shorter run starts higher,
    by (30k / max_steps)^travel (1 from 30k steps on), and still ends at the 30k schedule's final lr (1 % of
    1.6e-4), so it converges as finely.
    """
    start = max(1.0, REFERENCE_STEPS / max_steps) ** travel
    return start, (MEANS_LR_END / start) ** (1.0 / max_steps)


def rgb_to_sh(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh: torch.Tensor) -> torch.Tensor:
    return sh * SH_C0 + 0.5


def knn_mean_distance(points: np.ndarray, k: int = 3) -> np.ndarray:
    """Mean distance of each point to its k nearest neighbours [P] (3DGS init scale)."""
    if len(points) <= 1:
        return np.ones(len(points), dtype=np.float32)
    k = min(k, len(points) - 1)
    dist, _ = cKDTree(points).query(points, k=k + 1)  # [P, k+1], first column is the point itself
    return np.sqrt((dist[:, 1:] ** 2).mean(axis=1)).astype(np.float32)


def create_splats(
    points: np.ndarray,  # [P,3]
    points_rgb: np.ndarray | None,  # [P,3] uint8, or None for random colours
    sh_degree: int = 3,
    init_opacity: float = 0.1,
    init_scale: float = 1.0,
    seed: int = 0,
) -> torch.nn.ParameterDict:
    """Splats from an initial point cloud, as gsplat's `create_splats_with_optimizers`."""
    gen = torch.Generator().manual_seed(seed)
    means = torch.from_numpy(np.asarray(points, dtype=np.float32))
    n = means.shape[0]
    if points_rgb is None:
        rgb = torch.rand((n, 3), generator=gen)
    else:
        rgb = torch.from_numpy(np.asarray(points_rgb, dtype=np.float32) / 255.0)
    dist = torch.from_numpy(knn_mean_distance(means.numpy())).clamp_min(1e-7)
    scales = torch.log(dist * init_scale)[:, None].repeat(1, 3)  # [N,3]
    quats = torch.rand((n, 4), generator=gen)  # gsplat: random, normalized in the rasterizer
    opacities = torch.logit(torch.full((n,), init_opacity))
    sh = torch.zeros((n, (sh_degree + 1) ** 2, 3))
    sh[:, 0, :] = rgb_to_sh(rgb)
    return torch.nn.ParameterDict(
        {
            "means": torch.nn.Parameter(means),
            "scales": torch.nn.Parameter(scales),
            "quats": torch.nn.Parameter(quats),
            "opacities": torch.nn.Parameter(opacities),
            "sh0": torch.nn.Parameter(sh[:, :1, :].contiguous()),
            "shN": torch.nn.Parameter(sh[:, 1:, :].contiguous()),
        }
    )


def random_points(n: int, extent: float, seed: int = 0) -> np.ndarray:
    """Uniform random points in the cube [-extent, extent]^3 (init when there is no SfM cloud)."""
    rng = np.random.default_rng(seed)
    return (rng.random((n, 3), dtype=np.float32) * 2 - 1) * extent


def create_optimizers(
    splats: torch.nn.ParameterDict, scene_scale: float, batch_size: int = 1, lrs: dict | None = None
) -> dict[str, torch.optim.Adam]:
    """One Adam per parameter, as gsplat (lr × sqrt(batch), eps and betas rescaled for the batch).

    The fused implementation (one kernel per step instead of ~10 elementwise passes; on CPU 7x faster
    for the SH coefficients of 200k Gaussians) where torch has it for the parameter's device."""
    lrs = {**DEFAULT_LRS, **(lrs or {})}
    bs = batch_size
    optimizers = {}
    for name, param in splats.items():
        if name not in lrs:  # an extra per-Gaussian parameter (a pruner's mask): its owner optimizes it
            continue
        lr = lrs[name] * (scene_scale if name == "means" else 1.0)
        optimizers[name] = torch.optim.Adam(
            [{"params": param, "lr": lr * math.sqrt(bs), "name": name}],
            eps=1e-15 / math.sqrt(bs),
            betas=(1 - bs * (1 - 0.9), 1 - bs * (1 - 0.999)),
            fused=param.device.type in ("cpu", "cuda") or None,
        )
    return optimizers


def activated(splats, sh_degree: int | None = None, split_sh: bool = False) -> dict[str, torch.Tensor]:
    """Rasterizer inputs: exp scales, sigmoid opacities, SH coefficients [N,K,3] up to `sh_degree`; with
    `split_sh`, colors is the pair (sh0, shN) of parameters as they are, which `render.rasterize` takes with
    its sh_degree (no [N,K,3] copy on the compiled CPU path)."""
    if split_sh:
        colors = (splats["sh0"], splats["shN"])
    else:
        colors = torch.cat([splats["sh0"], splats["shN"]], dim=1)  # [N,K,3]
        if sh_degree is not None:
            colors = colors[:, : (sh_degree + 1) ** 2]
    return {
        "means": splats["means"],
        "quats": splats["quats"],
        "scales": torch.exp(splats["scales"]),
        "opacities": torch.sigmoid(splats["opacities"]),
        "colors": colors,
    }
