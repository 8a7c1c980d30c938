"""View-aware rounding of quantized SH coefficients: pick, for each coefficient, one of the two codes whose
decoded values bracket it, so that the colour error seen from the training cameras is smallest.

Why: a format's SH decoder has a fixed set of levels. PlayCanvas compressed PLY decodes a byte b as
(b + 0.5)/32 - 4 (splat-transform `decompress-ply.ts`), so 0 is not a level: every near-zero coefficient
is off by 1/64 whichever neighbour is taken, and nearest rounding picks the neighbour by the sign of a
tiny value — 45 independent ±1/64 errors per splat. Both neighbours are equally close, but their signs
can be chosen so that the errors cancel in the directions the splat is actually seen from.

The colour error of one splat and channel is E(d) = Σ_k Y_k(d)·e_k (e_k = decoded − true coefficient,
Y_k the real SH basis of degree ≥ 1, d the direction from the camera to the splat as the renderer uses).
We minimise  eᵀ H e,  H = mean_views Y(d_v) Y(d_v)ᵀ + λ/(4π) I  (the ridge term is λ times the error
averaged over the whole sphere, so directions no training camera sees stay bounded), over e_k ∈ {lo_k, hi_k}
by coordinate descent from nearest rounding: each flip is kept only when it lowers the objective, so the
result is never worse than nearest rounding for this objective, and every coefficient stays within one
quantization step of its value (the codes bracket it).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from gspruner.render.sh import eval_sh_bases

__all__ = ["round_sh_for_views", "SPHERE_WEIGHT"]

SPHERE_WEIGHT = 0.1  # λ: measured on fox (SH3, 177k splats): 0.1 → −0.027 dB, 1.0 → −0.036 dB, nearest −0.145 dB
_SWEEPS = 4
_BLOCK = 16384  # splats per block ([B, C, K-1] basis values in float64)


def round_sh_for_views(
    sh: np.ndarray,  # [N,K-1,3] coefficients (gsplat order: coefficient-major, RGB inner)
    lo: np.ndarray,  # [N,K-1,3] code whose decoded value is ≤ sh (or the lowest code)
    hi: np.ndarray,  # [N,K-1,3] code whose decoded value is ≥ sh (or the highest code)
    nearest: np.ndarray,  # [N,K-1,3] the nearest code (lo or hi): the starting point
    decode: Callable[[np.ndarray], np.ndarray],  # codes -> decoded coefficient values
    means: np.ndarray,  # [N,3] splat positions
    view_points: np.ndarray,  # [C,3] camera centres, same world as means
    sphere_weight: float = SPHERE_WEIGHT,
) -> np.ndarray:
    """Codes [N,K-1,3] (dtype of `nearest`), each lo or hi, minimising the view-weighted colour error."""
    n, num_rest, _ = sh.shape
    if num_rest == 0 or n == 0:
        return nearest
    degree = round(np.sqrt(num_rest + 1)) - 1
    centres = torch.as_tensor(np.asarray(view_points, dtype=np.float64))  # [C,3]
    ridge = sphere_weight / (4 * np.pi) * torch.eye(num_rest, dtype=torch.float64)
    out = nearest.copy()
    for i0 in range(0, n, _BLOCK):
        rows = slice(i0, i0 + _BLOCK)
        d = torch.as_tensor(means[rows], dtype=torch.float64)[:, None] - centres[None]  # [B,C,3] camera -> splat
        d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        basis = eval_sh_bases(degree, d)[..., 1:]  # [B,C,K-1]
        H = basis.transpose(1, 2) @ basis / basis.shape[1] + ridge  # [B,K-1,K-1]
        value = torch.as_tensor(sh[rows], dtype=torch.float64)
        lo_v = torch.as_tensor(decode(lo[rows]), dtype=torch.float64)
        hi_v = torch.as_tensor(decode(hi[rows]), dtype=torch.float64)
        at_hi = torch.as_tensor(nearest[rows] == hi[rows]) & torch.as_tensor(lo[rows] != hi[rows])  # [B,K-1,3]
        err = torch.where(at_hi, hi_v, lo_v) - value  # [B,K-1,3]
        H_err = H @ err  # [B,K-1,3]
        for _ in range(_SWEEPS):
            for k in range(num_rest):
                step = torch.where(at_hi[:, k], lo_v[:, k] - hi_v[:, k], hi_v[:, k] - lo_v[:, k])  # [B,3]
                # change of eᵀHe when e_k moves by `step`: 2·step·(He)_k + step²·H_kk
                gain = 2 * step * H_err[:, k] + step**2 * H[:, k, k, None]
                flip = gain < -1e-15
                step = torch.where(flip, step, 0.0)
                at_hi[:, k] ^= flip
                H_err += H[:, :, k, None] * step[:, None, :]
        out[rows] = np.where(at_hi.numpy(), hi[rows], lo[rows])
    return out
