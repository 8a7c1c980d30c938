"""Differentiable pure-PyTorch (CPU) rasterizer for 3D Gaussian splats, matching gsplat 1.5.3.

Pipeline (classic 3DGS, Kerbl et al. 2023; EWA splatting, Zwicker et al. 2001):

1. `project`: world -> camera -> pixels with the EWA Jacobian (gsplat `persp_proj`, including its
   x/z, y/z clamp at 1.3x the field of view), 2D blur `eps2d`, conic = inverse 2D covariance,
   opacity-aware radii and gsplat's culling rules. Differentiable (plain autograd), O(C N).
2. `contributing_pairs`: under no_grad, every (camera, Gaussian, pixel) pair that gsplat's tile
   rasterizer composites: pixels of the 16x16 tiles touched by [mean +- radius], restricted
   (exactly, without changing the result) to the ellipse where alpha >= 1/255 can hold; the alpha
   test; front-to-back order (rows sorted by (image row, depth), pairs stably sorted by pixel);
   transmittance by a segmented exclusive cumsum of log(1 - alpha) in float64; and gsplat's
   exclusive T (1 - alpha) <= 1e-4 early stop. Reusable for per-Gaussian statistics.
3. `composite` (`_Composite`): C = sum_i alpha_i T_i c_i + T_final bg (3DGS Eq. 3) as one autograd
   Function whose backward is gsplat's analytic back-to-front gradient, written with segmented
   cumsums; it fills `means2d.absgrad` (AbsGS) when asked.

Everything is vectorized. The Python loops are over cameras and over chunks of ~`_CHUNK` pairs
(bands of image rows, or runs of whole pixels), which keeps temporaries cache-sized and memory
bounded: only the final pairs (~36 bytes each) live until the backward pass.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from .sh import spherical_harmonics

ALPHA_THRESHOLD = 1.0 / 255.0  # gsplat Common.h: a pair is skipped if alpha < 1/255
MAX_ALPHA = 0.999  # gsplat RasterizeToPixels3DGSFwd.cu: alpha = min(0.999, o * exp(-sigma))
T_MIN = 1e-4  # a pixel stops (exclusively) when T * (1 - alpha) <= 1e-4
EXTEND_MAX = 3.33  # opacity-aware radius: extend = min(3.33, sqrt(2 ln(255 o)))
_LOG_T_MIN = math.log(float(torch.tensor(T_MIN, dtype=torch.float32)))  # log of 1e-4f
_SIGMA_MARGIN = 1e-3  # slack on sigma <= ln(255 o) when bounding the ellipse (exactness guard)
_CHUNK = 1 << 17  # pairs per vectorized step: cache-sized temporaries, bounded memory
_INT16_MAX = 32767  # a band's pixel offsets sort as int16 keys when they fit (faster stable sort)
# torch threads inside the chunk loops (thousands of short ops). 1 is robust: with more, every op is an
# OpenMP region, and on a busy 2-core machine each region can stall for a scheduler tick (measured
# 10-40x slowdowns); on an idle machine 2 threads gain only ~10-25%. 0 = keep torch's setting.
LOOP_THREADS = 1

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")


# --------------------------------------------------------------------------------------------
# 1. Projection (EWA splatting)
# --------------------------------------------------------------------------------------------


@dataclass
class Projection:
    """Per (camera, Gaussian) screen-space quantities, gsplat's non-packed layout.

    Entries with radii == 0 are culled; their other values are finite but meaningless.
    """

    radii: Tensor  # [C, N, 2] int32, 0 = culled
    means2d: Tensor  # [C, N, 2] pixels
    depths: Tensor  # [C, N] camera z
    conics: Tensor  # [C, N, 3] inverse 2D covariance (xx, xy, yy)
    opacities: Tensor  # [C, N] times compensation in antialiased mode
    compensations: Optional[Tensor]  # [C, N] sqrt(det Sigma' / det(Sigma' + eps I)), antialiased only


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """R from (not necessarily unit) quaternions wxyz [N, 4] -> [N, 3, 3] (gsplat `quat_to_rotmat`)."""
    w, x, y, z = torch.nn.functional.normalize(quats, p=2, dim=-1).unbind(-1)
    R = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
         2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
         2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return torch.stack(R, dim=-1).reshape(quats.shape[:-1] + (3, 3))


def covariance_from_quat_scale(quats: Tensor, scales: Tensor) -> Tensor:
    """Sigma = R S S^T R^T (3DGS Eq. 6): quats [N, 4] wxyz, scales [N, 3] -> [N, 3, 3]."""
    M = quat_to_rotmat(quats) * scales[..., None, :]  # R S, [N, 3, 3]
    return (M[..., :, None, :] * M[..., None, :, :]).sum(-1)  # M M^T (broadcast: faster than bmm for 3x3)


def covariance_from_upper(covars: Tensor) -> Tensor:
    """[N, 6] upper triangle (xx, xy, xz, yy, yz, zz) -> symmetric [N, 3, 3]; [N, 3, 3] passes through."""
    if covars.shape[-2:] == (3, 3):
        return covars
    xx, xy, xz, yy, yz, zz = covars.unbind(-1)
    return torch.stack([xx, xy, xz, xy, yy, yz, xz, yz, zz], dim=-1).reshape(covars.shape[:-1] + (3, 3))


def project(
    means: Tensor,  # [N, 3]
    quats: Optional[Tensor],  # [N, 4] wxyz
    scales: Optional[Tensor],  # [N, 3]
    opacities: Tensor,  # [N]
    viewmats: Tensor,  # [C, 4, 4] world-to-camera
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    covars: Optional[Tensor] = None,  # [N, 6] or [N, 3, 3], replaces quats/scales
    antialiased: bool = False,
) -> Projection:
    """EWA projection of 3D Gaussians, gsplat's `projection_ewa_3dgs_fused` (pinhole) in autograd."""
    Sigma = covariance_from_upper(covars) if covars is not None else covariance_from_quat_scale(quats, scales)
    W, t = viewmats[:, :3, :3], viewmats[:, :3, 3]  # [C, 3, 3], [C, 3]
    mean_c = torch.einsum("cij,nj->cni", W, means) + t[:, None]  # t = W mu + t, [C, N, 3]
    x, y, z = mean_c.unbind(-1)  # [C, N]
    in_depth = (z >= near_plane) & (z <= far_plane)  # [C, N] near/far culling
    z = torch.where(in_depth, z, torch.ones_like(z))  # keep culled entries finite (no NaN grads)

    fx, fy, cx, cy = (v[:, None] for v in (Ks[:, 0, 0], Ks[:, 1, 1], Ks[:, 0, 2], Ks[:, 1, 2]))  # [C, 1]
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    lim_x_pos, lim_x_neg = (width - cx) / fx + 0.3 * tan_fovx, cx / fx + 0.3 * tan_fovx
    lim_y_pos, lim_y_neg = (height - cy) / fy + 0.3 * tan_fovy, cy / fy + 0.3 * tan_fovy
    rz = 1.0 / z
    tx = z * torch.clamp(x * rz, min=-lim_x_neg, max=lim_x_pos)  # gsplat clamps x/z to 1.3 FOV
    ty = z * torch.clamp(y * rz, min=-lim_y_neg, max=lim_y_pos)
    # EWA Jacobian J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]]; rows of J W, [C, N, 3] each
    Wc = W[:, None]  # [C, 1, 3, 3]
    JW0 = (fx * rz)[..., None] * Wc[..., 0, :] - (fx * tx * rz * rz)[..., None] * Wc[..., 2, :]
    JW1 = (fy * rz)[..., None] * Wc[..., 1, :] - (fy * ty * rz * rz)[..., None] * Wc[..., 2, :]
    S0, S1 = (Sigma * JW0[..., None, :]).sum(-1), (Sigma * JW1[..., None, :]).sum(-1)  # Sigma (J W)^T columns
    # Sigma' = J W Sigma W^T J^T (Zwicker et al. Eq. 31), [[a, b], [b, c]]
    a, b, c = (JW0 * S0).sum(-1), (JW0 * S1).sum(-1), (JW1 * S1).sum(-1)
    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)  # [C, N, 2]

    det_orig = a * c - b * b
    a, c = a + eps2d, c + eps2d  # add_blur: Sigma' + eps2d I
    det = a * c - b * b
    ok_det = det > 0
    det = torch.where(ok_det, det, torch.ones_like(det))
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)  # (Sigma' + eps I)^-1, [C, N, 3]

    opac = opacities[None].expand(z.shape)  # [C, N]
    comp = None
    if antialiased:  # Mip-Splatting compensation rho = sqrt(det / det_blur); floor only keeps sqrt' finite
        comp = torch.sqrt((det_orig / det).clamp_min(1e-12))
        opac = opac * comp

    with torch.no_grad():  # radii and culling (non-differentiable), float32 like the CUDA kernel
        o = opac.detach()
        ok_opac = o >= ALPHA_THRESHOLD
        extend = torch.sqrt(2.0 * torch.log(o.clamp_min(ALPHA_THRESHOLD) / ALPHA_THRESHOLD)).clamp_max(EXTEND_MAX)
        rx = torch.ceil(extend * torch.sqrt(a.detach().clamp_min(0)))
        ry = torch.ceil(extend * torch.sqrt(c.detach().clamp_min(0)))
        mx, my = means2d.detach().unbind(-1)
        valid = in_depth & ok_det & ok_opac & ~((rx <= radius_clip) & (ry <= radius_clip))
        valid &= ~((mx + rx <= 0) | (mx - rx >= width) | (my + ry <= 0) | (my - ry >= height))
        radii = torch.where(valid[..., None], torch.stack([rx, ry], dim=-1), 0).to(torch.int32)  # [C, N, 2]
    return Projection(radii, means2d, mean_c[..., 2], conics, opac, comp)


def tile_ranges(means2d: Tensor, radii: Tensor, tile_size: int, tile_width: int, tile_height: int):
    """gsplat `isect_tiles` rule: tiles [x0, x1) x [y0, y1) touched by mean +- radius (float32 math).

    tile_min = clamp(floor(m/ts - r/ts), 0, n_tiles), tile_max = clamp(ceil(m/ts + r/ts), 0, n_tiles).
    Returns four int64 tensors of the input's leading shape.
    """
    m = means2d.detach().float() / float(tile_size)
    r = radii.float() / float(tile_size)
    lo, hi = torch.floor(m - r), torch.ceil(m + r)
    n = torch.tensor([tile_width, tile_height], dtype=torch.float32, device=m.device)
    lo = torch.minimum(lo.clamp_min(0), n).nan_to_num(0).long()
    hi = torch.minimum(hi.clamp_min(0), n).nan_to_num(0).long()
    return lo[..., 0], lo[..., 1], hi[..., 0], hi[..., 1]


# --------------------------------------------------------------------------------------------
# 2. Contributing pairs (no grad)
# --------------------------------------------------------------------------------------------


@dataclass
class Pairs:
    """Every (camera, Gaussian, pixel) pair composited by gsplat's rasterizer, front to back.

    Sorted by (camera, pixel, depth). Pixel ids are y * width + x. For each pair, with
    T = prod over earlier pairs of the same pixel of (1 - alpha):
    weight = alpha * T is the pair's share of the pixel colour (3DGS Eq. 3).
    """

    gaussian_ids: Tensor  # [P] int64, index into N
    camera_ids: Tensor  # [P] int64
    pixel_ids: Tensor  # [P] int64, y * width + x
    alphas: Tensor  # [P] alpha = min(0.999, o exp(-sigma))
    transmittances: Tensor  # [P] T before this Gaussian
    weights: Tensor  # [P] alpha * T
    final_transmittances: Tensor  # [C, H * W] T after the last composited Gaussian (1 - render_alpha)
    pixel_starts: Tensor  # [C * H * W + 1] int64, first pair of each (camera, pixel) segment, then P
    width: int
    height: int

    def __len__(self) -> int:
        return self.gaussian_ids.numel()


def _row_spans(m: Tensor, q: Tensor, o: Tensor, xr: Tensor, yr: Tensor, beta: float = 1.0):
    """Pixel rows of V Gaussians: the touched-tile box cut to the ellipse sigma <= beta ln(255 o) + margin.

    alpha = o exp(-sigma) >= 1/255 needs sigma <= ln(255 o), so with beta = 1 this drops only pixels
    gsplat skips too. m [V, 2], q [V, 3] (conic a, b, c), o [V] in float64; xr, yr [V, 2] inclusive
    pixel ranges of the touched tiles. Returns per row [R]: Gaussian (index into V), y, first x, width,
    dy = m_y - p_y.
    """
    mx, my = m.unbind(-1)
    qa, qb, qc = q.unbind(-1)
    L = beta * torch.log(o * 255.0) + _SIGMA_MARGIN
    det = qa * qc - qb * qb  # det of the conic, > 0 (inverse of a blurred covariance)
    ey, ex = torch.sqrt(2 * L * qa / det), torch.sqrt(2 * L * qc / det)  # ellipse half-extents
    y0 = torch.maximum(torch.ceil(my - ey - 0.5).long(), yr[:, 0])
    y1 = torch.minimum(torch.floor(my + ey - 0.5).long(), yr[:, 1])
    x_lo = torch.maximum(torch.ceil(mx - ex - 0.5).long(), xr[:, 0])
    x_hi = torch.minimum(torch.floor(mx + ex - 0.5).long(), xr[:, 1])
    h = (y1 - y0 + 1).clamp_min(0) * (x_hi >= x_lo)  # rows per Gaussian, [V]
    rg = torch.repeat_interleave(h)  # row -> Gaussian, [R]
    at = lambda t: t.index_select(0, rg)  # noqa: E731  per-Gaussian value at each row
    y = at(y0 - torch.cumsum(h, 0) + h) + torch.arange(len(rg), device=h.device)  # [R]
    # row span: 0.5 a dx^2 + b dy dx + 0.5 c dy^2 <= L with (dx, dy) = mean - pixel centre
    a, dy = at(qa), at(my) - (y + 0.5)
    s = torch.sqrt((2 * a * at(L) - at(det) * dy * dy).clamp_min(0)) / a
    mid = at(mx) + at(qb) * dy / a - 0.5
    x0 = torch.maximum(torch.ceil(mid - s).long(), at(x_lo))
    x1 = torch.minimum(torch.floor(mid + s).long(), at(x_hi))
    return rg, y, x0, (x1 - x0 + 1).clamp_min(0), dy


def check_compact_box(compact_box: float) -> None:
    """FastGS's compact box beta is in (0, 1]; 1 = gsplat's cut (ValueError otherwise)."""
    if not 0.0 < compact_box <= 1.0:
        raise ValueError(f"compact_box must be in (0, 1], got {compact_box}")


@contextlib.contextmanager
def _loop_threads():
    """Run the chunk loops with `LOOP_THREADS` torch threads, restoring the setting afterwards."""
    before = torch.get_num_threads()
    if LOOP_THREADS and LOOP_THREADS != before:
        torch.set_num_threads(LOOP_THREADS)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _segment_starts(ids: Tensor, n: int) -> Tensor:
    """Offsets of the n segments of a sorted id tensor: [n + 1] int64, segment k = [out[k], out[k+1])."""
    return torch.cat([torch.zeros(1, dtype=torch.long, device=ids.device), torch.cumsum(torch.bincount(ids, minlength=n), 0)])


def _chunks(offsets: Tensor, size: int):
    """Split [0, offsets[-1]) into ranges of about `size` items, cut only at the given offsets."""
    total = int(offsets[-1])
    targets = torch.arange(1, max(1, (total + size - 1) // size), device=offsets.device) * size
    edges = sorted(set([0, total] + offsets[torch.searchsorted(offsets, targets)].tolist()))
    return list(zip(edges[:-1], edges[1:]))


@torch.no_grad()
@_loop_threads()
def contributing_pairs(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    opacities: Tensor,  # [C, N]
    depths: Tensor,  # [C, N]
    radii: Tensor,  # [C, N, 2] int32
    width: int,
    height: int,
    tile_size: int = 16,
    compact_box: float = 1.0,
) -> Pairs:
    """All contributing (camera, Gaussian, pixel) pairs of a projection, exactly as gsplat composites them.

    Use with a `Projection` (`project(...)`) to compute per-Gaussian statistics without rendering,
    e.g. sum / max / count of `weights` (alpha T) per Gaussian, optionally weighted by a pixel mask:
        p = contributing_pairs(proj.means2d, proj.conics, proj.opacities, proj.depths, proj.radii, W, H)
        score = torch.zeros(N).index_add_(0, p.gaussian_ids, p.weights * mask[p.camera_ids, p.pixel_ids])
    Not differentiable (computed under no_grad); `composite` adds the gradients.

    Work goes band by band of image rows (about `_CHUNK` candidate pairs each), so temporaries stay
    cache-sized and only the final pairs are stored.

    `compact_box` = beta < 1 keeps only pixels with sigma <= beta ln(255 o), i.e. d^2 <= beta 2 ln(255 o)
    (FastGS's compact box, Sec. 3.4, `mult`); FastGS cuts 16x16 tiles, this cuts single pixels (our
    CPU rasterizer enumerates pixels, not tiles), which drops more of the faint tail. 1 = gsplat exactly.
    """
    check_compact_box(compact_box)
    C, N = means2d.shape[:2]
    dev, dt = means2d.device, means2d.dtype
    HW = width * height
    tw, th = math.ceil(width / tile_size), math.ceil(height / tile_size)
    tx0, ty0, tx1, ty1 = tile_ranges(means2d, radii, tile_size, tw, th)  # [C, N]
    logTfin = torch.zeros(C, HW, dtype=torch.float64, device=dev)  # log T_final
    outs = []
    for cam in range(C):
        ids = ((radii[cam] > 0).all(-1) & (tx1[cam] > tx0[cam]) & (ty1[cam] > ty0[cam])).nonzero().squeeze(1)
        ids = ids[torch.argsort(depths[cam, ids], stable=True)]  # front to back, ties by id (gsplat's sort)
        xr = torch.stack([tx0[cam, ids] * tile_size, (tx1[cam, ids] * tile_size).clamp_max(width) - 1], -1)
        yr = torch.stack([ty0[cam, ids] * tile_size, (ty1[cam, ids] * tile_size).clamp_max(height) - 1], -1)
        m, q, o = means2d[cam, ids].double(), conics[cam, ids].double(), opacities[cam, ids].double()
        rg, y, x0, w, dy = _row_spans(m, q, o, xr, yr, compact_box)  # [R] rows, depth-major
        y, order = torch.sort(y.to(torch.int16 if height <= _INT16_MAX else torch.int32), stable=True)  # rows by (image row, depth)
        y = y.long()
        rg, x0, w, dy = (t.index_select(0, order) for t in (rg, x0, w, dy))
        # per-row constants: sigma = 0.5 a dx^2 + (b dy) dx + 0.5 c dy^2, dx = (m_x - x0 - 0.5) - j at pixel x0 + j
        qa, qb, qc = (q[:, k].index_select(0, rg) for k in range(3))
        A, B, Cy = (0.5 * qa).to(dt), (qb * dy).to(dt), (0.5 * qc * dy * dy).to(dt)
        dx0 = (m[:, 0].index_select(0, rg) - x0 - 0.5).to(dt)
        o_r = o.index_select(0, rg).to(dt)
        cut_r = (compact_box * torch.log(o * 255.0)).index_select(0, rg).to(dt) if compact_box < 1 else None
        pix0 = y * width + x0  # pixel id of the row's first pair
        gid_r = ids.index_select(0, rg)  # row -> Gaussian id
        row_off = torch.cat([w.new_zeros(1), torch.cumsum(w, 0)])  # first pair of each row, [R + 1]
        y_rows = torch.searchsorted(y, torch.arange(height + 1, device=dev))  # first row of each image row
        del qa, qb, qc, x0, dy, order
        n_cand = int(row_off[-1])
        out = {"g": torch.empty(n_cand, dtype=torch.long, device=dev), "pix": torch.empty(n_cand, dtype=torch.long, device=dev),
               "alpha": torch.empty(n_cand, dtype=dt, device=dev), "T": torch.empty(n_cand, dtype=dt, device=dev)}
        n = 0
        for k0, k1 in _chunks(row_off[y_rows], _CHUNK):  # bands of whole image rows
            r0, r1 = (int(v) for v in torch.searchsorted(row_off, torch.tensor([k0, k1], device=dev)))
            p0 = int(y[r0]) * width  # first pixel of the band
            key_dt = torch.int16 if (int(y[r1 - 1]) + 1) * width - p0 <= _INT16_MAX else torch.int32
            # (a) candidate pairs and their alpha, ordered (image row, depth, x)
            pr = torch.repeat_interleave(w[r0:r1])  # pair -> row (local)
            at = lambda t: t[r0:r1].index_select(0, pr)  # noqa: E731  per-row value at each pair
            j = torch.arange(k0, k1, device=dev) - at(row_off)  # pixel index within the row
            dx = at(dx0) - j.to(dt)  # mean_x - pixel centre x
            sigma = (at(A) * dx + at(B)) * dx + at(Cy)  # 3DGS Eq. 4: 0.5 d^T Sigma'^-1 d
            a = (at(o_r) * torch.exp(-sigma)).clamp_max(MAX_ALPHA)  # 3DGS Eq. 3: alpha = o G
            a = torch.where((sigma >= 0) & (a >= ALPHA_THRESHOLD), a, 0.0)  # 0 = skipped (gsplat's alpha < 1/255 test)
            if cut_r is not None:  # compact box: sigma <= beta ln(255 o)
                a = torch.where(sigma <= at(cut_r), a, 0.0)
            pix, perm = torch.sort((at(pix0) + j - p0).to(key_dt), stable=True)  # pixel-major, depth order kept
            pr, a, pix = pr.index_select(0, perm), a.index_select(0, perm), pix.long()
            # (b) T_i = prod_{j<i} (1 - alpha_j): segmented exclusive cumsum of log(1 - alpha) in float64,
            #     keeping pairs until gsplat's exclusive stop T (1 - alpha) <= 1e-4
            counts = torch.bincount(pix)
            la = torch.log1p(-a.double())  # log(1 - alpha)
            cs = torch.cumsum(la, 0) - la  # exclusive
            logT = cs - cs.index_select(0, (torch.cumsum(counts, 0) - counts).index_select(0, pix))  # from pixel start
            keep = (a > 0) & (logT + la > _LOG_T_MIN)
            idx = keep.nonzero().squeeze(1)
            n1 = n + len(idx)
            torch.add(pix.index_select(0, idx), p0, out=out["pix"][n:n1])
            logTfin[cam].scatter_add_(0, out["pix"][n:n1], la.index_select(0, idx))  # the kept pairs' log(1 - alpha)
            torch.index_select(gid_r[r0:r1], 0, pr.index_select(0, idx), out=out["g"][n:n1])
            torch.index_select(a, 0, idx, out=out["alpha"][n:n1])
            torch.exp(logT.index_select(0, idx), out=out["T"][n:n1])
            n = n1
        outs.append({k: v[:n] for k, v in out.items()})  # views; the early-stopped tail is left unused
    cat = {k: outs[0][k] if C == 1 else torch.cat([o[k] for o in outs]) for k in outs[0]}
    counts = torch.tensor([len(o["g"]) for o in outs], device=dev)
    if C > 1:
        cams = torch.repeat_interleave(torch.arange(C, device=dev), counts)
    else:  # all zeros: a stride-0 view, no P-long buffer to allocate and fill (read-only)
        cams = torch.zeros(1, dtype=torch.long, device=dev).expand(len(cat["g"]))
    pix = cat["pix"]
    starts = _segment_starts(pix if C == 1 else cams * HW + pix, C * HW)
    return Pairs(cat["g"], cams, pix, cat["alpha"], cat["T"], cat["alpha"] * cat["T"],
                 torch.exp(logTfin).to(dt), starts, width, height)


# --------------------------------------------------------------------------------------------
# 3. Compositing with gsplat's analytic gradients
# --------------------------------------------------------------------------------------------


def _flat_ids(pairs: Pairs, i0: int, i1: int, N: int):
    """(camera * N + Gaussian, camera * H W + pixel) of pairs i0..i1."""
    g, p = pairs.gaussian_ids[i0:i1], pairs.pixel_ids[i0:i1]
    if len(pairs.final_transmittances) == 1:
        return g, p
    cam = pairs.camera_ids[i0:i1]
    return cam * N + g, cam * (pairs.width * pairs.height) + p


class _Composite(torch.autograd.Function):
    """C(p) = sum_i c_i alpha_i T_i + T_final bg, A(p) = 1 - T_final (3DGS Eq. 3) over precomputed pairs.

    Inputs are gsplat's non-packed rasterizer inputs; the backward gives gsplat's
    `rasterize_to_pixels_3dgs_bwd` gradients (means2d, conics, opacities, colors, backgrounds, and
    the AbsGS `means2d.absgrad`), vectorized over chunks of whole pixels.
    """

    @staticmethod
    def forward(ctx, means2d, conics, opacities, colors, backgrounds, pairs: Pairs, absgrad: bool):
        C, N, D = colors.shape
        H, W = pairs.height, pairs.width
        Tfin = pairs.final_transmittances.reshape(-1)  # [C H W]
        cols = colors.reshape(C * N, D).t().contiguous()  # [D, C N], contiguous rows for the gathers
        out = torch.zeros(D, C * H * W, dtype=colors.dtype, device=colors.device)
        with _loop_threads():
            for i0, i1 in _chunks(pairs.pixel_starts, _CHUNK):
                fid, img = _flat_ids(pairs, i0, i1, N)
                w = pairs.weights[i0:i1]
                for d in range(D):
                    out[d].scatter_add_(0, img, w * cols[d].index_select(0, fid))  # sum_i w_i c_i
        out = out.t()
        if backgrounds is not None:
            out = out + (Tfin.reshape(C, H * W, 1) * backgrounds[:, None, :]).reshape(C * H * W, D)  # + T_final bg
        ctx.save_for_backward(means2d, conics, opacities, colors, backgrounds, Tfin)
        ctx.pairs, ctx.absgrad = pairs, absgrad
        return out.reshape(C, H, W, D), (1 - Tfin).reshape(C, H, W, 1)

    @staticmethod
    def backward(ctx, v_out, v_alpha_out):
        means2d, conics, opacities, colors, bg, Tfin = ctx.saved_tensors
        pairs = ctx.pairs
        C, N, D = colors.shape
        M, W, dt, dev = C * N, pairs.width, Tfin.dtype, Tfin.device
        g = v_out.reshape(-1, D)  # dL/dC per (camera, pixel), [C H W, D]
        tail = v_alpha_out.reshape(-1)  # dL/dA
        if bg is not None:
            tail = tail - (g.reshape(C, -1, D) * bg[:, None, :]).sum(-1).reshape(-1)
        tail = Tfin * tail  # T_final (dL/dA - bg . dL/dC), [C H W]
        # per-channel / per-component rows made contiguous once: the chunk loop gathers from them per pair
        g, cols = g.t().contiguous(), colors.reshape(M, D).t().contiguous()  # [D, C H W], [D, M]
        mx, my = means2d.detach().reshape(M, 2).t().contiguous()
        q_rows = conics.detach().reshape(M, 3).t().contiguous()  # [3, M] conic (a, b, c)
        xs = torch.arange(W, dtype=dt, device=dev) + 0.5
        px = xs.repeat(pairs.height)  # pixel centres by pixel id, [H W]
        py = (torch.arange(pairs.height, dtype=dt, device=dev) + 0.5).repeat_interleave(W)
        starts = pairs.pixel_starts
        # per (camera, Gaussian) sums over its pairs of u = alpha dL/dalpha (unclamped alpha) times
        # 1, dx, dy, dx^2, dx dy, dy^2: enough for dL/do, dL/dmeans2d and dL/dconics
        acc = torch.zeros(6, M, dtype=dt, device=dev)
        absg = torch.zeros(2, M, dtype=dt, device=dev) if ctx.absgrad else None
        v_cols = torch.zeros(D, M, dtype=dt, device=dev) if ctx.needs_input_grad[3] else None

        with _loop_threads():
            for i0, i1 in _chunks(starts, _CHUNK):  # whole pixels per chunk
                fid, img = _flat_ids(pairs, i0, i1, N)
                alpha, T, w = pairs.alphas[i0:i1], pairs.transmittances[i0:i1], pairs.weights[i0:i1]  # w = alpha T
                gp = [g[d].index_select(0, img) for d in range(D)]  # dL/dC at the pair's pixel
                cg = sum(cols[d].index_select(0, fid) * gp[d] for d in range(D))  # c_i . dL/dC
                # colour behind pair i in its pixel: S_i = sum_{j > i} w_j c_j . dL/dC (gsplat's `buffer`)
                cs = torch.cumsum((w * cg).double(), 0)
                S = (cs.index_select(0, starts.index_select(0, img + 1) - 1 - i0) - cs).to(dt)
                # dC/dalpha_i = T_i c_i - S_i / (1 - alpha_i);  dA/dalpha_i = T_final / (1 - alpha_i)
                v_alpha = T * cg + (tail.index_select(0, img) - S) / (1.0 - alpha)
                # alpha = o exp(-sigma) unless clamped at 0.999 (then no gradient): dL/dsigma = -u, dL/do = u / o
                u = torch.where(alpha < MAX_ALPHA, alpha * v_alpha, 0)
                pix = img if C == 1 else pairs.pixel_ids[i0:i1]
                dx = mx.index_select(0, fid) - px.index_select(0, pix)  # mean - pixel centre
                dy = my.index_select(0, fid) - py.index_select(0, pix)
                ux, uy = u * dx, u * dy
                for k, v in enumerate((u, ux, uy, ux * dx, ux * dy, uy * dy)):
                    acc[k].scatter_add_(0, fid, v)
                if absg is not None:  # AbsGS: sum over pixels of |per-pixel dL/dmeans2d| = |u Q d|
                    qa, qb, qc = (q_rows[k].index_select(0, fid) for k in range(3))
                    absg[0].scatter_add_(0, fid, (qa * ux + qb * uy).abs())
                    absg[1].scatter_add_(0, fid, (qb * ux + qc * uy).abs())
                if v_cols is not None:
                    for d in range(D):
                        v_cols[d].scatter_add_(0, fid, w * gp[d])

        u, ux, uy, uxx, uxy, uyy = acc
        qa, qb, qc = q_rows
        v_means2d = -torch.stack([qa * ux + qb * uy, qb * ux + qc * uy], -1).reshape(C, N, 2)  # dsigma/dmean = Q d
        v_conics = -torch.stack([0.5 * uxx, uxy, 0.5 * uyy], -1).reshape(C, N, 3)  # dsigma/dQ
        v_opac = (u / opacities.detach().reshape(M).clamp_min(1e-30)).reshape(C, N)
        if absg is not None:
            means2d.absgrad = absg.t().reshape(C, N, 2)
        v_colors = v_cols.t().reshape(C, N, D) if v_cols is not None else None
        v_bg = None
        if bg is not None and ctx.needs_input_grad[4]:
            v_bg = (Tfin.reshape(C, -1, 1) * v_out.reshape(C, -1, D)).sum(1)
        return v_means2d, v_conics, v_opac, v_colors, v_bg, None, None


def composite(means2d, conics, opacities, colors, backgrounds, pairs: Pairs, absgrad: bool = False):
    """Differentiable alpha compositing of `pairs`: -> (colors [C, H, W, D], alphas [C, H, W, 1])."""
    return _Composite.apply(means2d, conics, opacities, colors, backgrounds, pairs, absgrad)


# --------------------------------------------------------------------------------------------
# Full rasterization (gsplat.rasterization semantics, non-packed)
# --------------------------------------------------------------------------------------------


def check_inputs(means, quats, scales, opacities, viewmats, Ks, covars, render_mode, rasterize_mode) -> None:
    """gsplat.rasterization's input contract (pinhole, no batch dims): ValueError on a mismatch."""
    N, C = means.shape[0], viewmats.shape[0]
    if means.dim() != 2 or means.shape[-1] != 3:
        raise ValueError(f"means must be [N, 3], got {tuple(means.shape)}")
    if covars is None and (quats is None or scales is None or quats.shape != (N, 4) or scales.shape != (N, 3)):
        raise ValueError("need quats [N, 4] and scales [N, 3], or covars [N, 6]")
    if covars is not None and covars.shape not in ((N, 6), (N, 3, 3)):
        raise ValueError(f"covars must be [N, 6] or [N, 3, 3], got {tuple(covars.shape)}")
    if opacities.shape != (N,) or viewmats.shape != (C, 4, 4) or Ks.shape != (C, 3, 3):
        raise ValueError("need opacities [N], viewmats [C, 4, 4], Ks [C, 3, 3]")
    if render_mode not in RENDER_MODES:
        raise ValueError(f"render_mode must be one of {RENDER_MODES}, got {render_mode!r}")
    if rasterize_mode not in ("classic", "antialiased"):
        raise ValueError(f"rasterize_mode must be 'classic' or 'antialiased', got {rasterize_mode!r}")


def check_colors(colors: Tensor, sh_degree: Optional[int], C: int, N: int) -> None:
    """Colours are [(C,) N, D] post-activation, or [(C,) N, K, 3] SH coefficients with sh_degree."""
    if sh_degree is None:
        if colors.shape[:-1] not in ((N,), (C, N)):
            raise ValueError(f"colors must be [N, D] or [C, N, D], got {tuple(colors.shape)}")
    elif colors.shape[:-2] not in ((N,), (C, N)) or colors.shape[-1] != 3:
        raise ValueError(f"SH colors must be [N, K, 3] or [C, N, K, 3], got {tuple(colors.shape)}")


def view_colors(means: Tensor, colors: Tensor, viewmats: Tensor, sh_degree: Optional[int]) -> Tensor:
    """Per-camera features [C, N, D]: the colours as given, or clamp_min(SH(mean - camera centre) + 0.5, 0)."""
    C, N = viewmats.shape[0], means.shape[0]
    if sh_degree is None:
        return colors.expand(C, N, colors.shape[-1]) if colors.dim() == 2 else colors
    campos = torch.inverse(viewmats)[:, :3, 3]  # [C, 3]
    dirs = means[None] - campos[:, None]  # [C, N, 3]
    shs = colors.expand((C,) + colors.shape) if colors.dim() == 3 else colors
    return torch.clamp_min(spherical_harmonics(sh_degree, dirs, shs) + 0.5, 0.0)  # [C, N, 3]


def with_depth_channel(render_mode: str, feats: Tensor, depths: Tensor, backgrounds: Optional[Tensor]):
    """The composited channels of a render mode: RGB, depth only, or RGB + depth (background 0 for depth)."""
    if render_mode in ("RGB+D", "RGB+ED"):
        feats = torch.cat([feats, depths[..., None]], dim=-1)
        if backgrounds is not None:
            backgrounds = torch.cat([backgrounds, torch.zeros_like(backgrounds[:, :1])], dim=-1)
    elif render_mode in ("D", "ED"):
        feats = depths[..., None]
        if backgrounds is not None:
            backgrounds = torch.zeros_like(backgrounds[:, :1])
    return feats.contiguous(), backgrounds


def expected_depth(render_mode: str, render_colors: Tensor, render_alphas: Tensor) -> Tensor:
    """ED modes: accumulated depth / alpha in the last channel."""
    if render_mode in ("ED", "RGB+ED"):
        return torch.cat([render_colors[..., :-1], render_colors[..., -1:] / render_alphas.clamp(min=1e-10)], dim=-1)
    return render_colors


def render_info(proj: Projection, width: int, height: int, tile_size: int, with_tile_counts: bool = True) -> Dict:
    """gsplat's non-packed `info` dict of a CPU render (without "pairs"; without "tiles_per_gauss" if asked)."""
    info = {
        "batch_ids": None, "camera_ids": None, "gaussian_ids": None,
        "radii": proj.radii, "means2d": proj.means2d, "depths": proj.depths, "conics": proj.conics,
        "opacities": proj.opacities, "tile_width": math.ceil(width / tile_size),
        "tile_height": math.ceil(height / tile_size), "isect_ids": None, "flatten_ids": None, "isect_offsets": None,
        "width": width, "height": height, "tile_size": tile_size, "n_batches": 1,
        "n_cameras": proj.radii.shape[0],
    }
    if with_tile_counts:
        info["tiles_per_gauss"] = tiles_per_gauss(proj, width, height, tile_size)
    return info


def tiles_per_gauss(proj: Projection, width: int, height: int, tile_size: int) -> Tensor:
    """[C, N] int32: how many tiles each (camera, Gaussian) is binned into (0 when culled)."""
    tile_width, tile_height = math.ceil(width / tile_size), math.ceil(height / tile_size)
    tx0, ty0, tx1, ty1 = tile_ranges(proj.means2d, proj.radii, tile_size, tile_width, tile_height)
    return ((tx1 - tx0) * (ty1 - ty0) * (proj.radii > 0).all(-1)).to(torch.int32)


def rasterize(
    means: Tensor,  # [N, 3]
    quats: Optional[Tensor],  # [N, 4]
    scales: Optional[Tensor],  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [(C,) N, D] or [(C,) N, K, 3] with sh_degree
    viewmats: Tensor,  # [C, 4, 4]
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
    covars: Optional[Tensor] = None,  # [N, 6] or [N, 3, 3]
    compact_box: float = 1.0,
) -> Tuple[Tensor, Tensor, Dict]:
    """CPU `gsplat.rasterization` (pinhole, no batch dims). `packed` is ignored: info is always non-packed.
    `compact_box` < 1: FastGS's compact box per pixel (see `contributing_pairs`); 1 = gsplat."""
    check_inputs(means, quats, scales, opacities, viewmats, Ks, covars, render_mode, rasterize_mode)
    check_colors(colors, sh_degree, viewmats.shape[0], means.shape[0])
    proj = project(means, quats, scales, opacities, viewmats, Ks, width, height, near_plane, far_plane,
                   radius_clip, eps2d, covars, antialiased=rasterize_mode == "antialiased")
    feats, backgrounds = with_depth_channel(render_mode, view_colors(means, colors, viewmats, sh_degree),
                                            proj.depths, backgrounds)
    render_colors, render_alphas, pairs = composite_projected(proj, feats, backgrounds, width, height, tile_size,
                                                              absgrad, compact_box)
    info = render_info(proj, width, height, tile_size)
    info["pairs"] = pairs
    return expected_depth(render_mode, render_colors, render_alphas), render_alphas, info


def view_features(means, colors, viewmats, radii, sh_degree, depth_only: bool = False) -> Tensor:
    """`view_colors` with the compiled backend's signature (radii unused); `colors` may be (sh0, shN)."""
    if isinstance(colors, (tuple, list)):
        colors = torch.cat(list(colors), dim=-2)
    return view_colors(means, colors, viewmats, sh_degree)


def composite_projected(proj: Projection, feats, backgrounds, width, height, tile_size=16, absgrad=False,
                        compact_box=1.0):
    """The composited pairs of projected Gaussians and their front-to-back compositing: (colors [C, H, W, D],
    alphas [C, H, W, 1], pairs). The stage a sharded render runs on the camera's rank (render/distributed.py)."""
    pairs = contributing_pairs(proj.means2d, proj.conics, proj.opacities, proj.depths, proj.radii,
                               width, height, tile_size, compact_box)
    render_colors, render_alphas = composite(proj.means2d, proj.conics, proj.opacities, feats, backgrounds,
                                             pairs, absgrad)
    return render_colors, render_alphas, pairs
