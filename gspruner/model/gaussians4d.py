"""The 4D Gaussian model (Yang et al., "Real-time Photorealistic Dynamic Scene Representation and Rendering
with 4D Gaussian Splatting", ICLR 2024): anisotropic (x, y, z, t) Gaussians, sliced at a time t into
conditional 3D Gaussians that go through the ordinary rendering entry point.

Storage (pre-activation), the 3D model's names plus three:
  means [N,3], times [N,1] (mu_t), scales [N,3] and scales_t [N,1] (log), quats [N,4] and quats_r [N,4]
  (left and right isoclinic rotations, wxyz, unnormalized), opacities [N] (logit), sh0 [N,1,3], shN [N,K-1,3].
Colour is view-dependent SH only (no band in time: the paper's 4D spherindrical harmonics are left out;
time-varying appearance comes from the slicing).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .gaussians import activated, create_splats

MIN_MARGINAL = 0.05  # 4DGS CUDA: a Gaussian is skipped at t when its temporal marginal p(t) <= 0.05

# 4DGS configs/dnerf: t lr = position lr (x scene scale, as the means), scaling / rotation lr as 3D
LRS_4D = {"times": 1.6e-4, "scales_t": 5e-3, "quats_r": 1e-3}
KEYS_4D = ("times", "scales_t", "quats_r")


def is_4d(splats) -> bool:
    return "times" in splats


def create_splats_4d(
    points: np.ndarray,  # [P,3]
    points_rgb: np.ndarray | None,  # [P,3] uint8 or None
    time_range: tuple[float, float],  # (t0, t1) of the training frames
    sh_degree: int = 3,
    init_opacity: float = 0.1,
    init_scale: float = 1.0,
    seed: int = 0,
) -> torch.nn.ParameterDict:
    """4D splats: the 3D initialisation plus mu_t uniform over the duration widened by 10 % each side, a
    temporal scale sqrt(duration / 5) and identity rotations (4DGS `create_from_pcd`)."""
    splats = create_splats(points, points_rgb, sh_degree, init_opacity, init_scale, seed)
    n = splats["means"].shape[0]
    t0, t1 = time_range
    duration = max(t1 - t0, 1e-3)
    gen = torch.Generator().manual_seed(seed + 1)
    times = (torch.rand((n, 1), generator=gen) * 1.2 - 0.1) * duration + t0
    identity = torch.zeros((n, 4))
    identity[:, 0] = 1.0
    splats["quats"] = torch.nn.Parameter(identity.clone())  # 4DGS starts both rotations at the identity
    splats["times"] = torch.nn.Parameter(times)
    splats["scales_t"] = torch.nn.Parameter(torch.full((n, 1), 0.5 * math.log(duration / 5)))
    splats["quats_r"] = torch.nn.Parameter(identity.clone())
    return splats


def left_matrix(q: Tensor) -> Tensor:
    """[N,4] unit quaternion (a,b,c,d) -> [N,4,4] matrix of left multiplication x -> q x (4DGS Eq. 5, M_l)."""
    a, b, c, d = q.unbind(-1)
    return torch.stack([a, -b, -c, -d, b, a, -d, c, c, d, a, -b, d, -c, b, a], dim=-1).reshape(q.shape[:-1] + (4, 4))


def right_matrix(p: Tensor) -> Tensor:
    """[N,4] unit quaternion (p,q,r,s) -> [N,4,4] matrix of right multiplication x -> x p (4DGS Eq. 5, M_r)."""
    a, b, c, d = p.unbind(-1)
    return torch.stack([a, -b, -c, -d, b, a, d, -c, c, -d, a, b, d, c, -b, a], dim=-1).reshape(p.shape[:-1] + (4, 4))


def rotation_4d(quats_l: Tensor, quats_r: Tensor) -> Tensor:
    """R = M_l(q_l) M_r(q_r) in SO(4) [N,4,4], acting on (x, y, z, t)."""
    return left_matrix(F.normalize(quats_l, dim=-1)) @ right_matrix(F.normalize(quats_r, dim=-1))


def covariance_4d(log_scales: Tensor, log_scales_t: Tensor, quats_l: Tensor, quats_r: Tensor) -> Tensor:
    """Sigma = R S S^T R^T [N,4,4] (4DGS Eq. 4)."""
    R = rotation_4d(quats_l, quats_r)
    s = torch.exp(torch.cat([log_scales, log_scales_t], dim=-1))  # [N,4]
    M = R * s[:, None, :]  # R S
    return M @ M.transpose(1, 2)


def marginal_t(splats, t: float, ids: Tensor | None = None) -> Tensor:
    """p_i(t) = exp(-(t - mu_t)^2 / (2 Sigma_tt)) [N] or [len(ids)], unnormalised (4DGS `get_marginal_t`)."""
    sel = (lambda x: x) if ids is None else (lambda x: x[ids])
    cov = covariance_4d(sel(splats["scales"]), sel(splats["scales_t"]), sel(splats["quats"]), sel(splats["quats_r"]))
    dt = t - sel(splats["times"])[:, 0]
    return torch.exp(-0.5 * dt**2 / cov[:, 3, 3])


def slice_at(splats, t: float, ids: Tensor | None = None) -> dict[str, Tensor]:
    """The conditional 3D Gaussians at time t (4DGS Eq. 7-8), of all Gaussians or of `ids` [M]:

    means  = mu_xyz + Sigma_{xyz,t} / Sigma_tt (t - mu_t)            [M,3]
    covars = Sigma_xyz - Sigma_{xyz,t} Sigma_{xyz,t}^T / Sigma_tt    [M,3,3]
    marginal = exp(-(t - mu_t)^2 / (2 Sigma_tt))                     [M]
    dt = t - mu_t [M] is returned too: its gradient is minus the gradient of mu_t (the strategy's time gradient).
    """
    sel = (lambda x: x) if ids is None else (lambda x: x[ids])
    cov = covariance_4d(sel(splats["scales"]), sel(splats["scales_t"]), sel(splats["quats"]), sel(splats["quats_r"]))
    cov_xt, cov_tt = cov[:, :3, 3], cov[:, 3, 3]  # [M,3], [M]
    dt = t - sel(splats["times"])[:, 0]  # [M]
    means = sel(splats["means"]) + cov_xt / cov_tt[:, None] * dt[:, None]
    covars = cov[:, :3, :3] - cov_xt[:, :, None] * cov_xt[:, None, :] / cov_tt[:, None, None]
    return {"means": means, "covars": covars, "marginal": torch.exp(-0.5 * dt**2 / cov_tt), "dt": dt}


@torch.no_grad()
def active_ids(splats, t: float, candidates: Tensor | None = None, min_marginal: float = MIN_MARGINAL) -> Tensor:
    """Indices [M] of the Gaussians rasterized at t: p(t) > min_marginal, among `candidates` [N] bool if given
    (a temporal filter's key-frame masks)."""
    n = splats["means"].shape[0]
    ids = torch.arange(n, device=splats["means"].device) if candidates is None else torch.nonzero(candidates).squeeze(1)
    return ids[marginal_t(splats, t, ids) > min_marginal]


def rasterizer_inputs(splats, sh_degree: int | None = None, t: float | None = None,
                      candidates: Tensor | None = None) -> dict[str, Tensor | None]:
    """What `rasterize` takes: `activated` for a 3D model (covars None), `activated_at(t)` for a 4D one."""
    if not is_4d(splats):  # SH as the two parameters: read in place by the compiled CPU rasterizer
        return {**activated(splats, sh_degree, split_sh=sh_degree is not None), "covars": None}
    if t is None:
        raise ValueError("a 4D model is rendered at a time: t is required")
    return activated_at(splats, t, sh_degree, candidates)


def activated_at(splats, t: float, sh_degree: int | None = None, candidates: Tensor | None = None) -> dict[str, Tensor]:
    """Rasterizer inputs at time t, for the Gaussians alive at t: means, covars [M,3,3] (quats, scales None),
    opacities sigma * p(t), SH colours, and ids [M] (which Gaussians of `splats` they are) and dt [M] (see `slice_at`)."""
    ids = active_ids(splats, t, candidates)
    s = slice_at(splats, t, ids)
    colors = torch.cat([splats["sh0"][ids], splats["shN"][ids]], dim=1)
    if sh_degree is not None:
        colors = colors[:, : (sh_degree + 1) ** 2]
    return {"means": s["means"], "quats": None, "scales": None, "covars": s["covars"],
            "opacities": torch.sigmoid(splats["opacities"][ids]) * s["marginal"], "colors": colors, "ids": ids, "dt": s["dt"]}


def rotmat_to_quat(R: Tensor) -> Tensor:
    """[M,3,3] rotation matrices -> [M,4] unit quaternions wxyz, w >= 0: the eigenvector of the largest eigenvalue
    of Bar-Itzhack's symmetric 4x4 matrix (batched `gspruner.data.colmap.rotmat_to_qvec`)."""
    r = R.double()
    r00, r01, r02 = r[:, 0, 0], r[:, 0, 1], r[:, 0, 2]
    r10, r11, r12 = r[:, 1, 0], r[:, 1, 1], r[:, 1, 2]
    r20, r21, r22 = r[:, 2, 0], r[:, 2, 1], r[:, 2, 2]
    zero = torch.zeros_like(r00)
    K = torch.stack([
        r00 - r11 - r22, zero, zero, zero,
        r01 + r10, r11 - r00 - r22, zero, zero,
        r02 + r20, r12 + r21, r22 - r00 - r11, zero,
        r21 - r12, r02 - r20, r10 - r01, r00 + r11 + r22,
    ], dim=-1).reshape(-1, 4, 4) / 3.0  # lower triangle, as eigh reads it
    _, vecs = torch.linalg.eigh(K)  # ascending: the last column belongs to the largest eigenvalue
    x, y, z, w = vecs[:, :, -1].unbind(-1)
    q = torch.stack([w, x, y, z], dim=-1)
    return (q * torch.where(q[:, :1] < 0, -1.0, 1.0)).to(R.dtype)


@torch.no_grad()
def snapshot(splats, t: float, candidates: Tensor | None = None) -> dict[str, Tensor]:
    """A static 3D model of the scene at time t (for export and 3D statistics): the Gaussians alive at t, their
    conditional covariance factored as R diag(s^2) R^T (eigendecomposition), opacity sigma * p(t), same SH.
    Returns gsplat-named pre-activation tensors (means, scales log, quats, opacities logit, sh0, shN) and ids [M]."""
    ids = active_ids(splats, t, candidates)
    s = slice_at(splats, t, ids)
    evals, evecs = torch.linalg.eigh(s["covars"].double())  # ascending eigenvalues, orthonormal columns
    evecs = evecs * torch.where(torch.linalg.det(evecs) < 0, -1.0, 1.0)[:, None, None]  # a proper rotation
    opacity = (torch.sigmoid(splats["opacities"][ids]) * s["marginal"]).clamp(1e-6, 1 - 1e-6)
    return {
        "means": s["means"].float(),
        "scales": 0.5 * torch.log(evals.clamp_min(1e-20)).float(),
        "quats": rotmat_to_quat(evecs).float(),
        "opacities": torch.logit(opacity),
        "sh0": splats["sh0"][ids].detach(),
        "shN": splats["shN"][ids].detach(),
        "ids": ids,
    }
