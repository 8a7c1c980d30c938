"""Gaussian-sharded rendering over a `torch.distributed` process group (CPU: gloo).

Each rank owns a shard of the Gaussians and renders its own camera(s). One render step, as gsplat's
`rasterization(distributed=True)` does it on CUDA ("On Scaling Up 3D Gaussian Splatting Training",
Zhao et al. 2024, Grendel):

    1. all ranks gather every rank's cameras (viewmats, Ks; not differentiable),
    2. each rank projects its own Gaussians into every camera and evaluates their SH colour towards each
       (differentiable; info["means2d"] [C_all, N_local, 2] is what the densification strategy reads),
    3. the Gaussians visible in a camera (radii > 0) go to the rank that renders it, their screen-space
       quantities (means2d, conics, opacities, colours, depths, radii) in one all-to-all
       (`exchange`: differentiable, so the gradient of each composited Gaussian flows back to its owner),
    4. the camera's rank composites what it received (tile binning + front-to-back blending, the same
       stage as a one-process render), in source-rank order, so that the depth sort breaks ties as a
       one-process render of the union of the shards (rank 0's Gaussians first) does.

The same code runs with the compiled and the PyTorch CPU rasterizer (`rasterize_sharded(impl=...)`).
gloo's all_to_all needs equal chunk sizes, so `exchange` pads every chunk to the largest and trims.
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import Tensor

from .torch_raster import Projection, render_info

__all__ = ["world", "exchange", "gather_cameras", "rasterize_sharded"]


def world() -> Tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) when none is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _all_to_all_counts(counts: Sequence[int]) -> List[int]:
    """How many rows each rank sends here, given how many this rank sends to each."""
    send = [torch.tensor([int(c)], dtype=torch.int64) for c in counts]
    recv = [torch.empty(1, dtype=torch.int64) for _ in counts]
    dist.all_to_all(recv, send)
    return [int(r.item()) for r in recv]


def exchange(rows: Tensor, counts: Sequence[int]) -> Tuple[Tensor, List[int]]:
    """All-to-all of rows: `rows` [sum(counts), D] in destination-rank order (counts[d] rows for rank d) ->
    (the rows every rank sent here [M, D] in source-rank order, how many from each). Differentiable in
    `rows`. Every chunk is padded to the largest one (gloo's all_to_all takes equal sizes only)."""
    rank, size = world()
    received = _all_to_all_counts(counts)
    largest = torch.tensor([max(max(counts), max(received), 1)], dtype=torch.int64)
    dist.all_reduce(largest, op=dist.ReduceOp.MAX)
    m = int(largest.item())
    chunks = rows.split(list(counts), dim=0)
    padded = [torch.cat([c, c.new_zeros(m - len(c), rows.shape[1])]) for c in chunks]
    out = [rows.new_empty(m, rows.shape[1]) for _ in range(size)]
    if rows.requires_grad:
        out = dist_fn.all_to_all(out, padded)
    else:
        dist.all_to_all(out, padded)
    return torch.cat([o[:n] for o, n in zip(out, received)]), received


def gather_cameras(viewmats: Tensor, Ks: Tensor, width: int, height: int) -> Tuple[Tensor, Tensor]:
    """Every rank's cameras, rank order: ([R·C, 4, 4], [R·C, 3, 3]). All ranks must render C cameras of
    the same size (ValueError otherwise: a one-line message)."""
    _, size = world()
    shape = torch.tensor([viewmats.shape[0], int(width), int(height)], dtype=torch.int64)
    shapes = [torch.empty_like(shape) for _ in range(size)]
    dist.all_gather(shapes, shape)
    if any(not torch.equal(s, shapes[0]) for s in shapes):
        raise ValueError("a sharded render needs the same number of cameras and image size on every rank, got "
                         + ", ".join(f"{int(c)} x {int(w)}x{int(h)}" for c, w, h in shapes))
    cams = torch.cat([viewmats.detach().reshape(-1, 16), Ks.detach().reshape(-1, 9)], dim=1).float()
    gathered = [torch.empty_like(cams) for _ in range(size)]
    dist.all_gather(gathered, cams.contiguous())
    cams = torch.cat(gathered)
    return cams[:, :16].reshape(-1, 4, 4).to(viewmats.dtype), cams[:, 16:].reshape(-1, 3, 3).to(Ks.dtype)


def rasterize_sharded(
    impl,  # gspruner.render.compiled or gspruner.render.torch_raster: project / view_features / composite_projected
    means: Tensor,  # [N, 3] this rank's Gaussians
    quats: Optional[Tensor],
    scales: Optional[Tensor],
    opacities: Tensor,  # [N]
    colors,  # [N, K, 3] SH (with sh_degree), (sh0, shN), or [N, D]
    viewmats: Tensor,  # [C, 4, 4] this rank's cameras
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: Optional[int] = None,
    tile_size: int = 16,
    backgrounds: Optional[Tensor] = None,  # [C, D]
    covars: Optional[Tensor] = None,
    compact_box: float = 1.0,
    antialiased: bool = False,
) -> Tuple[Tensor, Tensor, dict]:
    """This rank's cameras rendered from every rank's Gaussians: (colors [C, H, W, D], alphas [C, H, W, 1],
    info). info is gsplat's for this rank's Gaussians in every rank's camera (radii, means2d ... [R·C, N, ·]),
    which is what a densification strategy on this rank needs; n_cameras = C (see below)."""
    rank, size = world()
    C = viewmats.shape[0]
    all_viewmats, all_Ks = gather_cameras(viewmats, Ks, width, height)
    proj = impl.project(means, quats, scales, opacities, all_viewmats, all_Ks, width, height, near_plane,
                        far_plane, radius_clip, eps2d, covars, antialiased=antialiased)
    feats = impl.view_features(means, colors, all_viewmats, proj.radii, sh_degree)  # [R·C, N, D]
    D = feats.shape[-1]
    # 3. the visible Gaussians of camera k (rank k // C) as rows, in camera order = destination-rank order
    visible = (proj.radii > 0).all(dim=-1)  # [R·C, N]
    cam_ids, gauss_ids = torch.nonzero(visible, as_tuple=True)
    local_cam = cam_ids % C  # which of the destination's cameras
    rows = torch.cat([
        proj.means2d[cam_ids, gauss_ids], proj.conics[cam_ids, gauss_ids], proj.opacities[cam_ids, gauss_ids, None],
        feats[cam_ids, gauss_ids], proj.depths[cam_ids, gauss_ids, None].detach(),
        proj.radii[cam_ids, gauss_ids].to(feats.dtype), local_cam[:, None].to(feats.dtype),
    ], dim=1)  # fmt: skip
    counts = torch.bincount(cam_ids // C, minlength=size).tolist()
    got, _ = exchange(rows, counts)
    means2d, conics, opac, got_feats, depths, radii, cam = got.split([2, 3, 1, D, 1, 2, 1], dim=1)
    colors_out, alphas_out = [], []
    for c in range(C):  # 4. composite each of this rank's cameras from what arrived for it
        mine = cam[:, 0] == c
        received = Projection(radii[mine].round().to(torch.int32)[None], means2d[mine][None], depths[mine, 0][None],
                              conics[mine][None], opac[mine, 0][None], None)
        bg = None if backgrounds is None else backgrounds[c : c + 1]
        rgb, alpha, _ = impl.composite_projected(received, got_feats[mine][None].contiguous(), bg, width, height,
                                                 tile_size, False, compact_box)
        colors_out.append(rgb)
        alphas_out.append(alpha)
    info = render_info(proj, width, height, tile_size)
    # n_cameras is the factor gsplat's strategies undo a loss averaged over the batch with (grad2d × n_cameras):
    # each camera's gradient here comes from its own rank's loss, averaged over that rank's C cameras only
    info.update(n_cameras=C, world_rank=rank, world_size=size, num_received=int(len(got)))
    return torch.cat(colors_out), torch.cat(alphas_out), info
