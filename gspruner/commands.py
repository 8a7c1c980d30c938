"""What each `gspruner` subcommand does once its config is parsed (cli.py parses): train, eval, prune, report,
distill-sh. Each run function imports torch and the rest of its machinery when it runs, so the command line
(`--help` included) loads none of it. export, view, process and quantize-sh have their own modules.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import InputError

if TYPE_CHECKING:
    from .config import DistillConfig, EvalConfig, PruneConfig, ReportConfig, TrainConfig


def run_train(cfg: TrainConfig, init_ckpt: dict | None = None) -> dict | None:
    from . import parallel
    from .trainer import Trainer

    try:
        metrics = Trainer(cfg, init_ckpt).train()
    finally:
        parallel.shutdown()  # torchrun: leave the process group (a no-op in one process)
    if metrics is not None:  # None on the ranks other than 0 of a sharded run
        print(json.dumps({k: metrics[k] for k in ("psnr", "ssim", "lpips", "num_gaussians", "train_seconds")}))
    return metrics


def run_eval(cfg: EvalConfig) -> dict:
    """A checkpoint is evaluated on the scene it was trained on (another --data-dir must hold the same images),
    at its data factor and split unless told; a scene file at those of the run directory it sits in (its
    config.yml), else at the defaults, which it says on stderr."""
    from .checkpoint import load_checkpoint, splats_from_state, temporal_filter_of
    from .data import load_scene
    from .evaluation import evaluate
    from .export import read_splats
    from .export.formats import sh_degree_of
    from .device import resolve_device
    from .rundir import check_same_scene

    if (cfg.ckpt is None) == (cfg.ply is None):
        raise InputError("give exactly one of --ckpt and --ply")
    device = resolve_device(cfg.device)
    if cfg.ckpt is not None:
        ckpt = load_checkpoint(cfg.ckpt)
        trained, raw = ckpt["config"], ckpt["splats"]
        data_dir = cfg.data_dir if cfg.data_dir is not None else ckpt["scene"]["data_dir"]
        settings = str(cfg.ckpt)
    else:
        raw = read_splats(cfg.ply)
        trained, settings = ply_run_settings(cfg.ply)
        data_dir = cfg.data_dir if cfg.data_dir is not None else trained.get("data_dir")
        if data_dir is None:
            raise InputError(f"{cfg.ply}: --ply needs --data-dir (the scene to evaluate on)")
        defaulted = [f"--{k.replace('_', '-')} {trained[k]}" for k in ("data_factor", "test_every")
                     if getattr(cfg, k) is None]
        if settings == "defaults" and defaulted:
            print(f"note: {cfg.ply}: no config.yml of a run beside it; evaluating at the defaults "
                  f"{' '.join(defaulted)} (give them if it was trained otherwise)", file=sys.stderr)
    data_factor = cfg.data_factor if cfg.data_factor is not None else trained["data_factor"]
    scene = load_scene(
        data_dir,
        data_factor=data_factor,
        test_every=cfg.test_every if cfg.test_every is not None else trained["test_every"],
        background=tuple(cfg.background if cfg.background is not None else trained["background"]),
        frame_step=trained.get("frame_step", 1), max_frames=trained.get("max_frames"),
    )
    if cfg.ckpt is not None:
        check_same_scene(ckpt, scene, cfg.ckpt)
    scene.check_images()
    splats = splats_from_state(raw, device)
    sh_degree = sh_degree_of(splats) if cfg.ply is not None else trained["sh_degree"]
    temporal_filter = temporal_filter_of(ckpt, device) if cfg.ckpt is not None else None
    metrics = evaluate(splats, scene, device, sh_degree, split="test" if scene.test else "train",
                       render_dir=cfg.render_dir, with_lpips=cfg.lpips,
                       active_fn=None if temporal_filter is None else temporal_filter.active,
                       time_range=time_range_of(ckpt) if cfg.ckpt is not None and "times" in splats else None)
    metrics.update(num_gaussians=len(splats["means"]), source=str(cfg.ckpt or cfg.ply), data_dir=str(scene.data_dir),
                   data_factor=data_factor, settings_from=settings)
    if cfg.ply is not None:
        metrics["file_bytes"] = cfg.ply.stat().st_size
    print(json.dumps(metrics, indent=2))
    return metrics


EVAL_DEFAULTS = {"data_factor": 1, "test_every": 8, "background": [1.0, 1.0, 1.0]}


def ply_run_settings(ply: Path) -> tuple[dict, str]:
    """(the scene settings a scene file was trained with, where they come from): the config.yml of the run
    directory it sits in (point_cloud.ply), else EVAL_DEFAULTS and "defaults"."""
    import yaml

    config = Path(ply).parent / "config.yml"
    if not config.is_file():
        return dict(EVAL_DEFAULTS), "defaults"
    try:
        trained = yaml.safe_load(config.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{config}: unreadable run config ({' '.join(str(exc).split())})") from None
    if not isinstance(trained, dict):
        raise InputError(f"{config}: not a run config (no settings)")
    keys = ("data_dir", "data_factor", "test_every", "background", "frame_step", "max_frames")
    return {**EVAL_DEFAULTS, **{k: trained[k] for k in keys if trained.get(k) is not None}}, str(config)


def time_range_of(ckpt: dict) -> tuple[float, float] | None:
    """The training frames' time span a 4D checkpoint recorded (None before it was stored)."""
    span = (ckpt.get("scene") or {}).get("time_range")
    return (float(span[0]), float(span[1])) if span else None


def fine_tune_config(cfg, ckpt: dict, max_steps: int, **options) -> TrainConfig:
    """The TrainConfig of a fine-tune of checkpoint `cfg.ckpt` (already loaded as `ckpt`) without densification:
    its scene, SH degree and background, `cfg`'s overrides (data_dir, data_factor, test_every, device, overwrite,
    lpips, progress; `prune` and `quantize-sh` share them), `options` on top."""
    from .config import TrainConfig
    from .strategies import NoStrategyConfig

    trained = ckpt["config"]
    return TrainConfig(
        data_dir=cfg.data_dir if cfg.data_dir is not None else Path(ckpt["scene"]["data_dir"]),
        result_dir=cfg.result_dir,
        strategy=NoStrategyConfig(),
        max_steps=max_steps,
        data_factor=cfg.data_factor if cfg.data_factor is not None else trained["data_factor"],
        test_every=cfg.test_every if cfg.test_every is not None else trained["test_every"],
        frame_step=trained.get("frame_step", 1),
        max_frames=trained.get("max_frames"),
        batch_size=trained.get("batch_size"),
        device=cfg.device,
        overwrite=cfg.overwrite,
        sh_degree=trained["sh_degree"],
        sh_degree_interval=0,
        background=tuple(trained["background"]),
        init_ckpt=cfg.ckpt,
        lpips=cfg.lpips,
        progress=cfg.progress,
        **options,
    )


def run_prune(cfg: PruneConfig) -> dict:
    from .checkpoint import load_checkpoint

    ckpt = load_checkpoint(cfg.ckpt)
    # the prune happens before the fine-tune's first step
    return run_train(fine_tune_config(cfg, ckpt, cfg.finetune_steps, prune=cfg.score.at_start()), init_ckpt=ckpt)


def run_report(cfg: ReportConfig) -> Path:
    """report.md (+ PNGs) for a run dir, a benchmark scene folder or a benchmark root; matplotlib loads here."""
    from .report import write_report

    out = write_report(cfg.result_dir)
    print(out)
    return out


def run_distill(cfg: DistillConfig) -> dict:
    """SH distillation (gspruner/distill.py); torch and the renderer load here."""
    from .distill import distill_sh

    metrics = distill_sh(cfg)
    print(json.dumps({k: metrics[k] for k in ("psnr", "dropped_psnr", "teacher_psnr", "psnr_vs_teacher",
                                              "dropped_psnr_vs_teacher", "num_gaussians", "sh_degree", "train_seconds")}))
    return metrics
