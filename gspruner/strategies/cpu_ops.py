"""PyTorch versions of the two CUDA calls inside gsplat's strategy ops, so MCMC runs on CPU too.

gsplat 1.5.3's `gsplat.strategy.ops` calls `compute_relocation` (MCMC relocation, a CUDA kernel) and
`quat_scale_to_covar_preci` (CUDA) directly. `install()` rebinds those two names inside
`gsplat.strategy.ops` to dispatchers: CUDA tensors still go to gsplat's kernels, CPU tensors to the
functions below. Everything else in gsplat's strategies runs unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor

import gsplat.strategy.ops as _ops
from gsplat.cuda._torch_impl import _quat_scale_to_covar_preci

_cuda_relocation = _ops.compute_relocation
_cuda_covar = _ops.quat_scale_to_covar_preci


def relocation_torch(opacities: Tensor, scales: Tensor, ratios: Tensor, binoms: Tensor):
    """MCMC relocation (Kheradmand et al. 2024, Eq. 9): n copies keep the rendered opacity profile.

    opacities [N], scales [N,3], ratios [N] (copies n), binoms [n_max,n_max] -> (new_opacities [N], new_scales [N,3])
    """
    n_max = binoms.shape[0]
    n = ratios.clamp(1, n_max).int()  # [N]
    new_opacities = 1.0 - torch.pow(1.0 - opacities, 1.0 / n)  # 1 - (1 - o)^(1/n)
    # denominator: sum_{i=1..n} sum_{k=0..i-1} C(i-1,k) (-1)^k o_new^(k+1) / sqrt(k+1)
    i = torch.arange(1, n_max + 1, device=opacities.device)  # [n_max]
    k = torch.arange(n_max, device=opacities.device)  # [n_max]
    term_ik = binoms * ((-1.0) ** k / torch.sqrt(k + 1.0))  # [n_max(i), n_max(k)], binoms[i-1,k]=0 for k>i-1
    powers = new_opacities[:, None] ** (k[None, :] + 1)  # [N, n_max]
    per_i = powers @ term_ik.T  # [N, n_max(i)]
    used = (i[None, :] <= n[:, None]).to(per_i.dtype)  # only i <= n
    denom = (per_i * used).sum(dim=1)
    new_scales = (opacities / denom)[:, None] * scales
    return new_opacities, new_scales


def _relocation(opacities, scales, ratios, binoms):
    if opacities.is_cuda:
        return _cuda_relocation(opacities, scales, ratios, binoms)
    # gsplat's wrapper clamps ratios in place and builds binoms with zeros above the diagonal
    ratios.clamp_(min=1, max=binoms.shape[0])
    return relocation_torch(opacities, scales, ratios, binoms)


def _covar(quats, scales, compute_covar=True, compute_preci=True, triu=False):
    if quats.is_cuda:
        return _cuda_covar(quats, scales, compute_covar, compute_preci, triu)
    return _quat_scale_to_covar_preci(quats, scales, compute_covar, compute_preci, triu)


def install() -> None:
    """Route gsplat's strategy ops to the torch versions for CPU tensors (idempotent)."""
    _ops.compute_relocation = _relocation
    _ops.quat_scale_to_covar_preci = _covar
