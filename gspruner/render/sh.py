"""Real spherical harmonics, degree 0..4, in gsplat's / INRIA's convention.

Same constants, basis order and signs as `gsplat.cuda._torch_impl._eval_sh_bases_fast`
(Sloan, "Efficient Spherical Harmonic Evaluation", JCGT 2013), so a model trained here renders
identically through gsplat's CUDA kernels. The view direction is normalized inside.
Colour = sum_k Y_k(d) c_k; the renderer then applies `clamp_min(. + 0.5, 0)` (INRIA's offset).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_SH_DEGREE = 4


def num_sh_bases(degree: int) -> int:
    """K = (degree + 1)^2 coefficients per colour channel."""
    return (degree + 1) ** 2


def eval_sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """Basis values Y_k(d) for unit directions `dirs` [..., 3] -> [..., (degree+1)^2]."""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"sh_degree must be in 0..{MAX_SH_DEGREE}, got {degree}")
    x, y, z = dirs.unbind(-1)
    Y = [torch.full_like(x, 0.2820947917738781)]  # l = 0
    if degree >= 1:
        a = 0.48860251190292
        Y += [-a * y, a * z, -a * x]  # l = 1
    if degree >= 2:
        z2 = z * z
        c1, s1 = x * x - y * y, 2 * x * y  # cos(2 phi), sin(2 phi) times sin^2(theta)
        tb = -1.092548430592079 * z
        ta = 0.5462742152960395
        Y += [ta * s1, tb * y, 0.9461746957575601 * z2 - 0.3153915652525201, tb * x, ta * c1]
    if degree >= 3:
        tc = -2.285228997322329 * z2 + 0.4570457994644658
        tb = 1.445305721320277 * z
        ta = -0.5900435899266435
        c2, s2 = x * c1 - y * s1, x * s1 + y * c1
        Y += [ta * s2, tb * s1, tc * y, z * (1.865881662950577 * z2 - 1.119528997770346),
              tc * x, tb * c1, ta * c2]
    if degree >= 4:
        td = z * (-4.683325804901025 * z2 + 2.007139630671868)
        tc = 3.31161143515146 * z2 - 0.47308734787878
        tb = -1.770130769779931 * z
        ta = 0.6258357354491763
        c3, s3 = x * c2 - y * s2, x * s2 + y * c2
        y40 = 1.984313483298443 * z2 * (1.865881662950577 * z2 - 1.119528997770346) \
            - 1.006230589874905 * (0.9461746957575601 * z2 - 0.3153915652525201)
        Y += [ta * s3, tb * s2, tc * s1, td * y, y40, td * x, tc * c1, tb * c2, ta * c3]
    return torch.stack(Y, dim=-1)


def spherical_harmonics(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Colour sum_k Y_k(d/|d|) c_k: dirs [..., 3], coeffs [..., K, 3] with K >= (degree+1)^2 -> [..., 3].

    Only the first (degree+1)^2 coefficients are used (gsplat's partial-band activation); the
    result is the raw SH value, without INRIA's +0.5 offset.
    """
    K = num_sh_bases(degree)
    if coeffs.shape[-2] < K:
        raise ValueError(f"sh_degree {degree} needs {K} coefficients, got {coeffs.shape[-2]}")
    Y = eval_sh_bases(degree, F.normalize(dirs, p=2, dim=-1))  # [..., K]
    return (Y[..., None] * coeffs[..., :K, :]).sum(dim=-2)  # [..., 3]
