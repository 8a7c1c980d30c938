"""SH distillation (LightGaussian §4, `distill_train.py`): a student with fewer SH bands learns to render
what the full-SH teacher renders.

The student starts as the teacher with the SH bands above `sh_degree` dropped, and is fine-tuned with
(1 - λ)·L1 + λ·(1 - SSIM) against the teacher's renders (not the photos: the target is the teacher's
appearance, view dependence included). Views are the training cameras and, on a fraction of the steps
(LightGaussian: 2 of 3), pseudo views: a training camera whose position is jittered by Gaussian noise
(LightGaussian `gaussian_poses`, translation std 0.05 scene units, no rotation), so the student also
matches the teacher between the training cameras. As LightGaussian: opacities frozen (its default),
positions, scales and rotations fine-tuned with the colours (its `--enable_covariance` in the released
script), learning rates ×0.9 every 1/20 of the run (its ExponentialLR(0.9) every 500 of 10k steps).

Output is a run like `gspruner train`'s: RESULT_DIR/ckpt/last.pt (accepted by export, eval, prune),
point_cloud.ply, metrics.json, config.yml, renders/. metrics.json also holds what band-dropping alone
gives (`dropped_*`), the teacher's own figures (`teacher_*`), and how close the student and the
band-dropped model render to the teacher on the test views (`*_psnr_vs_teacher`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml
from tqdm import tqdm

from .checkpoint import load_checkpoint, save_checkpoint, splats_from_state
from .config import DistillConfig
from .data import load_scene
from .data.scene import Camera
from .device import keep_freed_memory, resolve_device
from .errors import InputError
from .evaluation import evaluate, render_view
from .export import write_ply
from .metrics import psnr, ssim
from .model import create_optimizers
from .rundir import RUN_FILES, check_same_scene, run_writes, scene_fingerprint

__all__ = ["distill_sh", "pseudo_camera", "psnr_vs_reference"]

_SPLAT_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")
_LR_DECAYS = 20  # LightGaussian: ExponentialLR(gamma=0.9) stepped every 500 of 10k distillation steps
_LR_GAMMA = 0.9


def pseudo_camera(cam: Camera, generator: torch.Generator, translation_std: float, rotation_std_deg: float) -> Camera:
    """`cam` moved by N(0, translation_std²) per axis and turned about its centre by a rotation vector
    N(0, rotation_std²) (degrees), in camera axes; intrinsics and image size unchanged."""
    c2w = cam.c2w.clone()  # [4,4] camera-to-world, OpenCV axes
    c2w[:3, 3] += torch.randn(3, generator=generator) * translation_std
    if rotation_std_deg > 0:
        w = torch.randn(3, generator=generator) * math.radians(rotation_std_deg)  # rotation vector
        skew = torch.zeros(3, 3)
        skew[0, 1], skew[0, 2], skew[1, 2] = -w[2], w[1], -w[0]
        skew = skew - skew.T  # [w]x
        c2w[:3, :3] = c2w[:3, :3] @ torch.linalg.matrix_exp(skew)
    return dataclasses.replace(cam, c2w=c2w)


@torch.no_grad()
def psnr_vs_reference(splats, sh_degree: int, reference, reference_sh_degree: int, cams, device, background) -> float:
    """Mean PSNR of `splats`' renders against `reference`'s renders over `cams` (1.0 = white)."""
    values = []
    for cam in cams:
        rgb, _, _ = render_view(splats, cam, device, sh_degree, background)
        ref, _, _ = render_view(reference, cam, device, reference_sh_degree, background)
        values.append(psnr(rgb.clamp(0, 1), ref.clamp(0, 1)))
    return float(sum(values) / len(values)) if values else float("nan")


def _drop_bands(state: dict, sh_degree: int) -> dict:
    return {**state, "shN": state["shN"][:, : (sh_degree + 1) ** 2 - 1].contiguous()}


def _check_result_dir(cfg: DistillConfig) -> None:
    r = cfg.result_dir
    if r.exists() and not r.is_dir():
        raise InputError(f"{r}: --result-dir exists and is not a directory")
    if r.is_dir() and any((r / name).exists() for name in RUN_FILES) and not cfg.overwrite:
        raise InputError(f"{r}: already holds a run; pass --overwrite to replace it")


def distill_sh(cfg: DistillConfig) -> dict:
    """Run the distillation as configured; returns (and writes) metrics.json's content."""
    ckpt_path = Path(cfg.ckpt)
    if cfg.steps < 1:
        raise InputError(f"--steps must be ≥ 1 (got {cfg.steps})")
    if not 0.0 <= cfg.pseudo_view_fraction <= 1.0:
        raise InputError(f"--pseudo-view-fraction must be in [0, 1] (got {cfg.pseudo_view_fraction})")
    if cfg.pseudo_translation_std < 0 or cfg.pseudo_rotation_deg < 0:
        raise InputError("--pseudo-translation-std and --pseudo-rotation-deg must be ≥ 0")
    if (cfg.result_dir / "ckpt" / "last.pt").resolve() == ckpt_path.resolve():
        raise InputError(f"{cfg.result_dir}: is the teacher's own run; give another --result-dir")
    teacher_ckpt = load_checkpoint(ckpt_path)
    state = teacher_ckpt["splats"]
    missing = [k for k in _SPLAT_KEYS if k not in state]
    if missing:
        raise InputError(f"{ckpt_path}: checkpoint splats lack {', '.join(missing)}")
    if "times" in state:
        raise InputError(f"{ckpt_path}: a 4D model (dynamic scene); distill-sh takes static 3D checkpoints")
    trained = teacher_ckpt.get("config", {})
    teacher_degree = min(int(trained.get("sh_degree", 3)), round(math.sqrt(state["shN"].shape[1] + 1)) - 1)
    if not 0 <= cfg.sh_degree < teacher_degree:
        raise InputError(f"--sh-degree must be in [0, {teacher_degree}) (below the teacher's SH degree {teacher_degree}), got {cfg.sh_degree}")
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        keep_freed_memory()
    data_dir = cfg.data_dir if cfg.data_dir is not None else teacher_ckpt.get("scene", {}).get("data_dir")
    if data_dir is None:
        raise InputError(f"{ckpt_path}: the checkpoint records no scene; pass --data-dir")
    scene = load_scene(
        Path(data_dir),
        data_factor=cfg.data_factor if cfg.data_factor is not None else trained.get("data_factor", 1),
        test_every=cfg.test_every if cfg.test_every is not None else trained.get("test_every", 8),
        background=tuple(trained.get("background", (1.0, 1.0, 1.0))),
    )
    if not scene.train:
        raise InputError(f"{scene.data_dir}: no training images")
    check_same_scene(teacher_ckpt, scene, ckpt_path)
    scene.check_images()
    background = scene.background  # None for opaque images
    planes = {"near_plane": trained.get("near_plane", 0.01), "far_plane": trained.get("far_plane", 1e10)}
    _check_result_dir(cfg)
    with run_writes(cfg.result_dir, overwrite=cfg.overwrite):  # bad input found mid-run: as it was
        teacher = splats_from_state({k: state[k] for k in _SPLAT_KEYS}, device)
        teacher.requires_grad_(False)
        # a copy: splats_from_state keeps CPU float32 tensors as they are, so the student would share the teacher's
        student = splats_from_state(_drop_bands({k: state[k].detach().clone() for k in _SPLAT_KEYS}, cfg.sh_degree), device)
        frozen = {"opacities"} | ({"means", "scales", "quats"} if cfg.freeze_geometry else set())
        # fine-tuning a trained model: means lr at its decayed end value (1 %), as `gspruner prune`
        optimizers = {k: o for k, o in create_optimizers(student, scene.scene_scale * 1.1 * 0.01).items()
                      if k not in frozen and student[k].numel() > 0}
        for k in frozen:
            student[k].requires_grad_(False)
        decay_every = max(1, cfg.steps // _LR_DECAYS)
        translation_std = cfg.pseudo_translation_std * scene.scene_scale
        generator = torch.Generator().manual_seed(cfg.seed)
        torch.manual_seed(cfg.seed)

        (cfg.result_dir / "config.yml").write_text(yaml.safe_dump(_plain(dataclasses.asdict(cfg)), sort_keys=False))
        log = (cfg.result_dir / "log.jsonl").open("w")
        bar = tqdm(range(cfg.steps), desc=f"distill SH {teacher_degree}->{cfg.sh_degree}", disable=not cfg.progress, dynamic_ncols=True)
        order: list[int] = []
        tic = time.perf_counter()
        try:
            for step in bar:
                if not order:
                    order = torch.randperm(len(scene.train), generator=generator).tolist()
                cam = scene.train[order.pop()]
                pseudo = float(torch.rand((), generator=generator)) < cfg.pseudo_view_fraction
                if pseudo:
                    cam = pseudo_camera(cam, generator, translation_std, cfg.pseudo_rotation_deg)
                with torch.no_grad():
                    target, _, _ = render_view(teacher, cam, device, teacher_degree, background, **planes)
                rgb, _, _ = render_view(student, cam, device, cfg.sh_degree, background, **planes)
                loss = (1 - cfg.ssim_lambda) * F.l1_loss(rgb, target) + cfg.ssim_lambda * (1 - ssim(rgb[None], target[None]))
                loss.backward()
                for opt in optimizers.values():
                    opt.step()
                    opt.zero_grad(set_to_none=True)
                if (step + 1) % decay_every == 0:
                    for opt in optimizers.values():
                        for group in opt.param_groups:
                            group["lr"] *= _LR_GAMMA
                if step % 10 == 0 or step == cfg.steps - 1:
                    agreement = psnr(rgb.detach(), target)
                    bar.set_postfix(loss=f"{loss.item():.4f}", psnr_vs_teacher=f"{agreement:.2f}")
                    log.write(json.dumps({"step": step, "loss": loss.item(), "psnr_vs_teacher": agreement,
                                          "pseudo_view": pseudo}) + "\n")
        finally:
            bar.close()
            log.close()
        train_seconds = time.perf_counter() - tic

        r = cfg.result_dir
        splats_out = {k: v.detach().cpu() for k, v in student.items()}
        config = {**trained, "sh_degree": cfg.sh_degree, "result_dir": str(r), "max_steps": cfg.steps,
                  "distilled_from": str(ckpt_path), "distill": _plain(dataclasses.asdict(cfg))}
        save_checkpoint(r / "ckpt" / "last.pt", {"step": cfg.steps - 1, "splats": splats_out, "config": config,
                                                 "scene": scene_fingerprint(scene), "train_seconds": train_seconds})
        write_ply(r / "point_cloud.ply", splats_out)

        split = "test" if scene.test else "train"
        cams = scene.test if scene.test else scene.train
        m = evaluate(student, scene, device, cfg.sh_degree, split=split, render_dir=r / "renders", with_lpips=cfg.lpips)
        dropped = splats_from_state(_drop_bands({k: state[k] for k in _SPLAT_KEYS}, cfg.sh_degree), device)
        m_dropped = evaluate(dropped, scene, device, cfg.sh_degree, split=split, with_lpips=cfg.lpips)
        m_teacher = evaluate(teacher, scene, device, teacher_degree, split=split, with_lpips=cfg.lpips)
        metrics = {
            **m,
            "sh_degree": cfg.sh_degree,
            "teacher_sh_degree": teacher_degree,
            "num_gaussians": len(splats_out["means"]),
            "steps": cfg.steps,
            "train_seconds": train_seconds,
            "teacher_psnr": m_teacher["psnr"], "teacher_ssim": m_teacher["ssim"], "teacher_lpips": m_teacher["lpips"],
            "dropped_psnr": m_dropped["psnr"], "dropped_ssim": m_dropped["ssim"], "dropped_lpips": m_dropped["lpips"],
            "psnr_vs_teacher": psnr_vs_reference(student, cfg.sh_degree, teacher, teacher_degree, cams, device, background),
            "dropped_psnr_vs_teacher": psnr_vs_reference(dropped, cfg.sh_degree, teacher, teacher_degree, cams, device, background),
            "teacher": str(ckpt_path),
            "device": str(device),
            "data_dir": str(scene.data_dir),
            "data_factor": config.get("data_factor"),
            "ply_mb": (r / "point_cloud.ply").stat().st_size / 1e6,
        }
        (r / "metrics.json").write_text(json.dumps(metrics, indent=2))
        return metrics


def _plain(d: dict) -> dict:
    return {k: (str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v) for k, v in d.items()}
