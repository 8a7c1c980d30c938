"""PUP-3DGS sensitivity (Hanson et al., "PUP 3D-GS: Principled Uncertainty Pruning for 3D Gaussian Splatting",
CVPR 2025): each Gaussian's Fisher information over its mean and log-scale,

    F_i = Σ_views Σ_patches Σ_channels ∇_{(μ_i, s_i)} I_patch ∇_{(μ_i, s_i)} I_patchᵀ      [6, 6]    (PUP Eq. 9-10)

with I_patch the summed colour of a 4×4-pixel patch, and the score U_i = log |F_i| (Eq. 12): the Gaussians the
rendered views are least sensitive to have the lowest score.

Computed analytically from the composited pairs of one render per view, not with one backward pass per patch:
for a pair (Gaussian i, pixel p) with alpha a, transmittance T and colour c,

    ∂C_p/∂a = T c − (Σ_{j behind i} a_j T_j c_j + T_final · background) / (1 − a)    (0 where a is clamped at 0.999)
    ∂a/∂(mean2d, conic) = −a ∂σ/∂(mean2d, conic),  σ = ½(A dx² + C dy²) + B dx dy,  d = mean2d − pixel centre

which are summed over each patch's pixels per channel (G [5]) and taken to (μ, log s) by the projection's
Jacobian J_i = ∂(mean2d, conic)/∂(μ, log s) [5, 6] (five vector-Jacobian products of the projection: each
Gaussian's outputs depend on its own inputs only), plus the path through the view-dependent SH colour,
(Σ_patch a T) ∂c/∂μ. On the compiled CPU backend the pairs are not built: `compiled.fisher_patches` sums the
same per-patch gradients and 6×6 products in C++ (tests/test_render_compiled.py compares the two).
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import Tensor

from ..render import compiled, contributing_pairs, torch_raster
from ..render.torch_raster import view_colors

PATCH = 4  # PUP's --fisher_resolution
MAX_ALPHA = 0.999


def projection_jacobian(means: Tensor, quats: Tensor, log_scales: Tensor, opacities: Tensor, viewmat: Tensor,
                        K: Tensor, width: int, height: int, near_plane: float, far_plane: float):
    """(projection of one camera, J [N, 5, 6] = ∂(mean2d x, y, conic A, B, C)/∂(μ xyz, log s xyz))."""
    means = means.detach().requires_grad_(True)
    log_scales = log_scales.detach().requires_grad_(True)
    proj = torch_raster.project(means, quats.detach(), torch.exp(log_scales), opacities.detach(), viewmat[None],
                                K[None], width, height, near_plane, far_plane)
    outputs = torch.cat([proj.means2d[0], proj.conics[0]], dim=-1)  # [N, 5]
    J = means.new_zeros(means.shape[0], 5, 6)
    for k in range(5):
        cotangent = torch.zeros_like(outputs)
        cotangent[:, k] = 1.0
        d_means, d_scales = torch.autograd.grad(outputs, (means, log_scales), cotangent, retain_graph=k < 4,
                                                allow_unused=True)
        J[:, k, :3] = 0.0 if d_means is None else d_means
        J[:, k, 3:] = 0.0 if d_scales is None else d_scales
    return proj, J


def colour_jacobian(means: Tensor, sh: Tensor, viewmat: Tensor, sh_degree: int):
    """(colours [N, 3] at this view, ∂colour/∂μ [N, 3, 3]): SH colour depends on the view direction μ − camera."""
    means = means.detach().requires_grad_(True)
    colors = view_colors(means, sh, viewmat[None], sh_degree)[0]
    J = means.new_zeros(means.shape[0], 3, 3)
    if sh_degree > 0:
        for k in range(3):
            (d_means,) = torch.autograd.grad(colors[:, k].sum(), means, retain_graph=k < 2)
            J[:, k] = d_means
    return colors.detach(), J


@torch.no_grad()
def alpha_derivative(pairs, colors: Tensor, background: Tensor | None) -> tuple[Tensor, Tensor]:
    """(∂C/∂a [P, 3], the pixel's colour C [P, 3]) of every pair of one camera, float64, alpha clamp ignored.

    ∂C/∂a = T c − S / (1 − a), S = Σ over later pairs of the same pixel of a T c + T_final · background."""
    g, pix = pairs.gaussian_ids, pairs.pixel_ids
    a, T = pairs.alphas.double(), pairs.transmittances.double()
    c = colors.double()[g]  # [P, 3]
    csum = torch.cumsum((a * T)[:, None] * c, dim=0)  # pairs are sorted by (pixel, depth): a pixel's pairs are one run
    first, last = pairs.pixel_starts[pix], pairs.pixel_starts[pix + 1] - 1  # [P] the pixel's first and last pair
    before_pixel = torch.where((first > 0)[:, None], csum[(first - 1).clamp_min(0)], torch.zeros_like(csum[:1]))
    t_final = pairs.final_transmittances.reshape(-1)[pix].double()
    background_term = t_final[:, None] * (background.double().reshape(1, 3) if background is not None else 0.0)
    S = csum[last] - csum + background_term  # [P, 3] what lies behind the pair
    return T[:, None] * c - S / (1.0 - a)[:, None], csum[last] - before_pixel + background_term


@torch.no_grad()
def patch_gradients(pairs, means2d: Tensor, conics: Tensor, colors: Tensor, background: Tensor | None,
                    patch: int = PATCH):
    """Per (Gaussian, patch) of one camera: ids [U], G [U, 3, 5] = ∂I_patch,channel/∂(mean2d, conic) through
    alpha, and the patch's Σ a T [U] (∂I_patch/∂colour). means2d [N, 2], conics [N, 3], colors [N, 3]."""
    dtype = torch.float64
    g, pix = pairs.gaussian_ids, pairs.pixel_ids
    a, T = pairs.alphas.to(dtype), pairs.transmittances.to(dtype)
    w = a * T
    dC_da, _ = alpha_derivative(pairs, colors, background)  # [P, 3]
    dC_da = torch.where((a >= MAX_ALPHA)[:, None], torch.zeros_like(dC_da), dC_da)  # clamped alpha: no gradient
    x = (pix % pairs.width).to(dtype) + 0.5
    y = torch.div(pix, pairs.width, rounding_mode="floor").to(dtype) + 0.5
    m2, q = means2d.to(dtype)[g], conics.to(dtype)[g]
    dx, dy = m2[:, 0] - x, m2[:, 1] - y
    A, B, Cq = q[:, 0], q[:, 1], q[:, 2]
    dsigma = torch.stack([A * dx + B * dy, B * dx + Cq * dy, 0.5 * dx * dx, dx * dy, 0.5 * dy * dy], dim=-1)
    da = -a[:, None] * dsigma  # [P, 5] ∂a/∂(mean2d, conic)
    patches_x = -(-pairs.width // patch)
    patch_id = torch.div(y.long(), patch, rounding_mode="floor") * patches_x + torch.div(x.long(), patch, rounding_mode="floor")
    n_patches = patches_x * -(-pairs.height // patch)
    groups, inverse = torch.unique(g * n_patches + patch_id, return_inverse=True)
    U = len(groups)
    G = torch.zeros(U, 3, 5, dtype=dtype, device=da.device).index_add_(0, inverse, dC_da[:, :, None] * da[:, None, :])
    weight = torch.zeros(U, dtype=dtype, device=da.device).index_add_(0, inverse, w)
    return torch.div(groups, n_patches, rounding_mode="floor"), G, weight


def fisher(splats, views: Iterable, background=None, near_plane: float = 0.01, far_plane: float = 1e10,
           patch: int = PATCH) -> Tensor:
    """F [N, 6, 6] float64 summed over `views` = iterable of (camera, image) (PUP Eq. 10)."""
    means, quats, log_scales = splats["means"].detach(), splats["quats"].detach(), splats["scales"].detach()
    opacities = torch.sigmoid(splats["opacities"].detach())
    sh = torch.cat([splats["sh0"], splats["shN"]], dim=1).detach()  # [N, K, 3]
    sh_degree = round(sh.shape[1] ** 0.5) - 1
    n, dev = means.shape[0], means.device
    bg = None if background is None else torch.as_tensor(background, dtype=torch.float32, device=dev)
    F = torch.zeros(n, 6, 6, dtype=torch.float64, device=dev)
    for cam, _ in views:
        viewmat, K = cam.viewmat.to(dev, means.dtype), cam.K.to(dev, means.dtype)
        proj, J = projection_jacobian(means, quats, log_scales, opacities, viewmat, K, cam.width, cam.height,
                                      near_plane, far_plane)
        colors, J_colour = colour_jacobian(means, sh, viewmat, sh_degree)
        with torch.no_grad():
            fused_tiles_hold_patches = 16 % patch == 0  # compiled.fisher_patches' 16-pixel tiles, whole patches
            if compiled.handles(proj.means2d, proj.conics, proj.opacities, colors, bg) and fused_tiles_hold_patches:
                F += compiled.fisher_patches(proj, colors[None], J[None], J_colour[None], cam.width, cam.height,
                                             None if bg is None else bg.reshape(1, 3), patch)[0]  # fused, no pairs
                continue
            pairs = contributing_pairs(proj.means2d.detach(), proj.conics.detach(), proj.opacities.detach(),
                                       proj.depths.detach(), proj.radii, cam.width, cam.height)
            if len(pairs) == 0:
                continue
            ids, G, weight = patch_gradients(pairs, proj.means2d[0].detach(), proj.conics[0].detach(), colors, bg, patch)
            g6 = torch.einsum("ukm,umj->ukj", G, J.detach().to(torch.float64)[ids])  # [U, 3, 6] through alpha
            g6[:, :, :3] += weight[:, None, None] * J_colour.to(torch.float64)[ids]  # through the view-dependent colour
            F.index_add_(0, ids, torch.einsum("uki,ukj->uij", g6, g6))
    return F


def sensitivity(F: Tensor, floor: float = 1e-30) -> Tensor:
    """U = log |F| = Σ log of the singular values [N] (PUP Eq. 12; floored so an unseen Gaussian scores lowest)."""
    return torch.linalg.eigvalsh(F).clamp_min(floor).log().sum(dim=-1).to(torch.float32)


def scale_invariant_offset(log_scales: Tensor) -> Tensor:
    """2 Σ log s [N]: log |F| with each mean measured in units of its own scale (μ = μ₀ + diag(s) δ gives
    F_δ = diag(s, 1) F diag(s, 1)), so a far or large Gaussian is not ranked low for its distance alone."""
    return 2.0 * log_scales.sum(dim=-1).to(torch.float32)
