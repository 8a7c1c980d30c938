"""Removal error: how much the training loss rises when one Gaussian alone is removed (ours).

A pixel's colour is affine in each of its Gaussians' alphas, C = C_front + T_i (a_i c_i + (1 − a_i) R_i), so
removing Gaussian i (a_i → 0) changes it by exactly

    ΔC_i = a_i ∂C/∂a_i = a_i (T_i c_i − S_i / (1 − a_i)),   S_i = Σ_{j behind i} a_j T_j c_j + T_final · background

(the pairs beyond the pixel's T < 1e-4 stop, which the removal would let through, are not seen), and the L1
loss of that pixel by |C − ΔC_i − gt|₁ − |C − gt|₁. Summed over the pixels i is composited into, that is the
view's loss increase; a Gaussian the view would not miss scores ~0, one whose removal brings the render
closer to the image (a floater) below 0. Over the training views the score takes the sum (`removal-sum`) or
the most any view loses, 0 when none does (`removal`: RadSplat's max over views, so a Gaussian only a few
views need is kept). On the compiled CPU backend the pairs are not built: `compiled.removal_loss` sums the
same per-pair changes in C++ (tests/test_render_compiled.py compares the two).
"""

from __future__ import annotations

from typing import Iterable, Literal

import torch
from torch import Tensor

from ..render import compiled, contributing_pairs, project
from ..render.torch_raster import view_colors
from .sensitivity import alpha_derivative


@torch.no_grad()
def removal_delta(pairs, colors: Tensor, image: Tensor, background: Tensor | None) -> tuple[Tensor, Tensor]:
    """(Gaussian ids [P], per pair the L1 loss change of its pixel [P] when the pair's Gaussian is removed).

    pairs: one camera's composited pairs; colors [N, 3] at that view; image [H, W, ≥3]."""
    g, pix, a = pairs.gaussian_ids, pairs.pixel_ids, pairs.alphas.double()
    dC_da, C = alpha_derivative(pairs, colors, background)  # [P, 3] each
    dC = a[:, None] * dC_da  # [P, 3] ΔC_i, exact as a_i -> 0
    gt = image.reshape(-1, image.shape[-1])[pix, :3].double()
    return g, (C - dC - gt).abs().sum(-1) - (C - gt).abs().sum(-1)


@torch.no_grad()
def view_removal_loss(proj, colors: Tensor, image: Tensor, background: Tensor | None, width: int,
                      height: int) -> Tensor:
    """[N] float64: one camera's L1 loss increase per Gaussian removed alone. proj: that camera's projection
    (C = 1); colors [N, 3]; image [H, W, >=3]. Fused in C++ on the compiled CPU backend, else from the pairs."""
    if compiled.handles(proj.means2d, proj.conics, proj.opacities, colors, image, background):
        return compiled.removal_loss(proj, colors[None], image[None], width, height,
                                     None if background is None else background.reshape(1, 3))[0]
    view_loss = torch.zeros(colors.shape[0], dtype=torch.float64, device=colors.device)
    pairs = contributing_pairs(proj.means2d, proj.conics, proj.opacities, proj.depths, proj.radii, width, height)
    if len(pairs) > 0:
        g, delta = removal_delta(pairs, colors, image, background)
        view_loss.index_add_(0, g, delta)
    return view_loss


@torch.no_grad()
def removal_error(splats, views: Iterable, background=None, near_plane: float = 0.01, far_plane: float = 1e10,
                  reduce: Literal["max", "sum"] = "max") -> Tensor:
    """importance [N]: each Gaussian's L1 loss increase over a view when it alone is removed, summed over
    `views` = iterable of (camera, image [H, W, 3]), or their maximum and 0."""
    means, quats = splats["means"].detach(), splats["quats"].detach()
    scales, opacities = torch.exp(splats["scales"].detach()), torch.sigmoid(splats["opacities"].detach())
    sh = torch.cat([splats["sh0"], splats["shN"]], dim=1).detach()  # [N, K, 3]
    sh_degree = round(sh.shape[1] ** 0.5) - 1
    n, dev = means.shape[0], means.device
    bg = None if background is None else torch.as_tensor(background, dtype=torch.float32, device=dev)
    total = torch.zeros(n, dtype=torch.float64, device=dev)  # with "max": max(0, the views' increases)
    for cam, image in views:
        viewmat, K = cam.viewmat.to(dev, means.dtype), cam.K.to(dev, means.dtype)
        proj = project(means, quats, scales, opacities, viewmat[None], K[None], cam.width, cam.height, near_plane,
                       far_plane)
        colors = view_colors(means, sh, viewmat[None], sh_degree)[0]
        view_loss = view_removal_loss(proj, colors, image.to(dev), bg, cam.width, cam.height)  # [N]
        total = total + view_loss if reduce == "sum" else torch.maximum(total, view_loss)
    return total.float()
