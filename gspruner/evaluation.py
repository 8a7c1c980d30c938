"""Evaluation of splats on a split: PSNR, SSIM, LPIPS, renders saved beside ground truth."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import torch

from .data.scene import Camera, Scene, write_png_atomic
from .data.splits import few_view_fraction, off_path_views
from .metrics import LPIPS, lpips_status, masked_onto, psnr, ssim
from .model.gaussians4d import is_4d, rasterizer_inputs
from .render import rasterize


def render_view(splats, cam: Camera, device, sh_degree: int, background=None, opacity_gate=None, scale_gate=None,
                active=None, **kwargs):
    """Render one camera: (rgb [H,W,3], alpha [H,W,1], info); opacity_gate [N] multiplies opacity,
    scale_gate [N,1] the scales; `background` a colour (tuple or [3] tensor) or None (black).

    Colours are not clamped: a training render brighter than white still gets a gradient (gsplat and INRIA
    clamp only at evaluation); evaluation, viewer and saved renders clamp.

    A 4D model is sliced at `cam.time` and only the Gaussians alive then are rasterized (`active` [N] bool,
    a temporal filter, narrows them further); info["ids"] [M] says which Gaussians those are and
    info["dt"] [M] holds t - mu_t, whose gradient the 4D strategy reads."""
    t = cam.time if is_4d(splats) else None  # a static model reads no time (its cameras need not have one)
    if is_4d(splats) and t is None:
        raise ValueError(f"{cam.name}: a 4D model needs a camera with a time")
    p = rasterizer_inputs(splats, sh_degree, t, candidates=active)
    ids = p.get("ids")  # 4D: the Gaussians alive at t; the gates index them
    if opacity_gate is not None:
        p["opacities"] = p["opacities"] * (opacity_gate if ids is None else opacity_gate[ids])
    if scale_gate is not None and ids is None:
        p["scales"] = p["scales"] * scale_gate
    elif scale_gate is not None:  # scales x g -> covariance x g^2
        p["covars"] = p["covars"] * (scale_gate[ids] ** 2)[:, :, None]
    bg = None if background is None else torch.as_tensor(background, dtype=torch.float32, device=device).reshape(1, 3)
    colors, alphas, info = rasterize(
        p["means"], p["quats"], p["scales"], p["opacities"], p["colors"],
        cam.viewmat[None].to(device), cam.K[None].to(device), cam.width, cam.height,
        sh_degree=sh_degree, backgrounds=bg, covars=p["covars"], **kwargs,
    )
    if ids is not None:
        info["ids"], info["dt"] = p["ids"], p["dt"]
    return colors[0], alphas[0], info


def write_side_by_side(path: Path, render: torch.Tensor, gt: torch.Tensor) -> None:
    """PNG with the render on the left and the ground truth on the right."""
    both = torch.cat([render, gt], dim=1).detach().cpu().numpy()
    img = (np.clip(both, 0, 1) * 255 + 0.5).astype(np.uint8)
    write_png_atomic(path, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))  # replaced, not rewritten: see rundir.run_writes


@torch.no_grad()
def evaluate(
    splats,
    scene: Scene,
    device,
    sh_degree: int,
    split: str = "test",
    render_dir: Path | None = None,
    with_lpips: bool = True,
    active_fn=None,
    time_range: tuple[float, float] | None = None,
) -> dict:
    """Mean PSNR / SSIM / LPIPS over `split`; LPIPS is None (with a reason) when it can't be exact.
    `active_fn(time) -> [N] bool | None`: a temporal filter (4D models); "mean_rasterized" counts the
    Gaussians sent to the rasterizer per view. `time_range` (t0, t1) of the training frames (4D models): the
    same metrics also over the views inside it (`*_in_span`: interpolation) and outside it (`*_out_of_span`:
    extrapolation in time). "per_view" lists each view's name, time (4D) and metrics, so that one bad view (or
    a wrong ground-truth image) shows up by name. A view with a mask is measured on the pixels it keeps
    (LPIPS on the render with the masked pixels taken from the ground truth); "masked" says whether any was.
    `*_off_path`: the same over the test views farthest from the training path; `few_view_fraction`: the share
    of Gaussians fewer than 3 training views see (data/splits.py)."""
    cams = scene.test if split == "test" else scene.train
    lpips_ok, lpips_note = lpips_status() if with_lpips else (False, "disabled")
    lpips_fn = LPIPS(net="alex", device=device) if lpips_ok else None
    psnrs, ssims, lpipss, seconds, rasterized, per_view = [], [], [], [], [], []
    if cams:  # one untimed render first: render_fps leaves out one-time costs (thread pools, lazy builds)
        render_view(splats, cams[0], device, sh_degree, scene.background,
                    active=active_fn(cams[0].time) if active_fn is not None else None)
    for i, cam in enumerate(cams):
        gt = scene.image(cam).to(device)
        mask = scene.mask(cam)  # [H,W,1] 1 = counts, or None
        mask = mask if mask is None else mask.to(device)
        t0 = time.perf_counter()
        active = active_fn(cam.time) if active_fn is not None else None
        rgb, _, info = render_view(splats, cam, device, sh_degree, scene.background, active=active)
        rgb = rgb.clamp(0, 1)
        if rgb.is_cuda:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
        rasterized.append(len(info["ids"]) if "ids" in info else len(splats["means"]))
        psnrs.append(psnr(rgb, gt, mask))
        ssims.append(float(ssim(rgb[None], gt[None], mask)))
        if lpips_fn is not None:
            lpipss.append(float(lpips_fn(masked_onto(rgb, gt, mask), gt)))
        per_view.append({"name": cam.name, "time": cam.time, "psnr": psnrs[-1], "ssim": ssims[-1],
                         "lpips": lpipss[-1] if lpips_fn is not None else None})
        if render_dir is not None:
            write_side_by_side(render_dir / f"{split}_{i:04d}_{Path(cam.name).stem}.png", rgb, gt)
    n = max(len(cams), 1)
    by_span = {}
    if time_range is not None:
        inside = [time_range[0] - 1e-6 <= cam.time <= time_range[1] + 1e-6 for cam in cams]
        for suffix, want in (("in_span", True), ("out_of_span", False)):
            idx = [i for i, v in enumerate(inside) if v == want]
            mean = lambda values: float(sum(values[i] for i in idx) / len(idx)) if idx and values else None  # noqa: E731
            by_span.update({f"psnr_{suffix}": mean(psnrs), f"ssim_{suffix}": mean(ssims),
                            f"lpips_{suffix}": mean(lpipss), f"num_views_{suffix}": len(idx)})
    off_path = {}
    if split == "test" and cams:  # the test views farthest from the training path (data/splits.py)
        idx = off_path_views(scene.train, cams)
        off_path = {"psnr_off_path": float(np.mean([psnrs[i] for i in idx])),
                    "ssim_off_path": float(np.mean([ssims[i] for i in idx])),
                    "lpips_off_path": float(np.mean([lpipss[i] for i in idx])) if lpipss else None,
                    "num_views_off_path": len(idx), "off_path_views": [cams[i].name for i in idx]}
    if not is_4d(splats):  # a floater measure without ground truth
        off_path.update(few_view_fraction(splats["means"], torch.sigmoid(splats["opacities"]), scene.train))
    return {
        "psnr": float(sum(psnrs) / n) if cams else None,
        "ssim": float(sum(ssims) / n) if cams else None,
        "lpips": float(sum(lpipss) / n) if lpipss else None,
        "lpips_net": "alex" if lpipss else None,
        "lpips_note": lpips_note,
        "num_views": len(cams),
        "split": split,
        "masked": any(cam.mask_path is not None for cam in cams),
        "render_fps": float(len(seconds) / sum(seconds)) if seconds and sum(seconds) > 0 else None,
        "mean_rasterized": float(sum(rasterized) / n) if cams else None,
        **by_span,
        **off_path,
        "per_view": per_view,
    }
