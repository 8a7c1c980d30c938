"""The `gspruner` command: typed dataclass configs (gspruner/config.py) turned into subcommands by tyro."""

from __future__ import annotations

import json
import sys

import tyro

from pathlib import Path

from .config import DistillConfig, EvalConfig, PruneConfig, ReportConfig, TrainConfig
from .errors import InputError


def run_train(cfg: TrainConfig, init_ckpt: dict | None = None) -> dict:
    from .trainer import Trainer

    metrics = Trainer(cfg, init_ckpt).train()
    print(json.dumps({k: metrics[k] for k in ("psnr", "ssim", "lpips", "num_gaussians", "train_seconds")}))
    return metrics


def run_eval(cfg: EvalConfig) -> dict:
    from .checkpoint import load_checkpoint, splats_from_state, temporal_filter_of
    from .data import load_scene
    from .evaluation import evaluate
    from .export import read_splats
    from .export.formats import sh_degree_of
    from .device import resolve_device

    if (cfg.ckpt is None) == (cfg.ply is None):
        raise InputError("give exactly one of --ckpt and --ply")
    device = resolve_device(cfg.device)
    if cfg.ckpt is not None:
        ckpt = load_checkpoint(cfg.ckpt)
        trained, raw = ckpt["config"], ckpt["splats"]
        data_dir = cfg.data_dir if cfg.data_dir is not None else ckpt["scene"]["data_dir"]
    else:
        if cfg.data_dir is None:
            raise InputError(f"{cfg.ply}: --ply needs --data-dir (the scene to evaluate on)")
        raw = read_splats(cfg.ply)
        trained, data_dir = {"data_factor": 1, "test_every": 8, "background": [1.0, 1.0, 1.0]}, cfg.data_dir
    scene = load_scene(
        data_dir,
        data_factor=cfg.data_factor if cfg.data_factor is not None else trained["data_factor"],
        test_every=cfg.test_every if cfg.test_every is not None else trained["test_every"],
        background=tuple(cfg.background if cfg.background is not None else trained["background"]),
        frame_step=trained.get("frame_step", 1), max_frames=trained.get("max_frames"),
    )
    splats = splats_from_state(raw, device)
    sh_degree = sh_degree_of(splats) if cfg.ply is not None else trained["sh_degree"]
    temporal_filter = temporal_filter_of(ckpt, device) if cfg.ckpt is not None else None
    metrics = evaluate(splats, scene, device, sh_degree, split="test" if scene.test else "train",
                       render_dir=cfg.render_dir, with_lpips=cfg.lpips,
                       active_fn=None if temporal_filter is None else temporal_filter.active,
                       time_range=time_range_of(ckpt) if cfg.ckpt is not None and "times" in splats else None)
    metrics.update(num_gaussians=len(splats["means"]), source=str(cfg.ckpt or cfg.ply), data_dir=str(scene.data_dir))
    if cfg.ply is not None:
        metrics["file_bytes"] = cfg.ply.stat().st_size
    print(json.dumps(metrics, indent=2))
    return metrics


def time_range_of(ckpt: dict) -> tuple[float, float] | None:
    """The training frames' time span a 4D checkpoint recorded (None before it was stored)."""
    span = (ckpt.get("scene") or {}).get("time_range")
    return (float(span[0]), float(span[1])) if span else None


def run_prune(cfg: PruneConfig) -> dict:
    from .checkpoint import load_checkpoint
    from .trainer import Trainer

    if cfg.finetune_steps < 1:
        raise InputError(f"--finetune-steps must be ≥ 1 (got {cfg.finetune_steps})")
    if cfg.ratio is not None and cfg.threshold is not None:
        raise InputError("--ratio and --threshold exclude each other")
    default_ratio = 0.8 if cfg.score == "spatiotemporal" else 0.66
    ratio = cfg.ratio if cfg.ratio is not None or cfg.threshold is not None else default_ratio
    if ratio is not None and not 0.0 < ratio < 1.0:
        raise InputError(f"--ratio must be in (0, 1), got {ratio}")
    ckpt = load_checkpoint(cfg.ckpt)
    trained = ckpt["config"]
    train_cfg = TrainConfig(
        data_dir=cfg.data_dir if cfg.data_dir is not None else Path(ckpt["scene"]["data_dir"]),
        result_dir=cfg.result_dir,
        strategy="none",
        max_steps=cfg.finetune_steps,
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
        prune=cfg.score,
        prune_ratio=ratio,
        prune_threshold=cfg.threshold,
        prune_at=(0.0,),
        temporal_filter=cfg.temporal_filter,
        filter_views=cfg.filter_views,
        keyframe_every=cfg.keyframe_every,
        filter_min_weight=cfg.filter_min_weight,
        init_ckpt=cfg.ckpt,
        lpips=cfg.lpips,
        progress=cfg.progress,
    )
    return run_train(train_cfg, init_ckpt=ckpt)


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


def _export_command():
    from .export import ExportConfig, run_export

    return ExportConfig, run_export


def _view_command():
    from .viewer import ViewConfig, run_view

    return ViewConfig, run_view


COMMANDS = {
    "train": (TrainConfig, run_train),
    "prune": (PruneConfig, run_prune),
    "export": _export_command(),
    "view": _view_command(),
    "eval": (EvalConfig, run_eval),
    "distill-sh": (DistillConfig, run_distill),
    "report": (ReportConfig, run_report),
}


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.extras.subcommand_cli_from_dict(
        {name: cls for name, (cls, _) in COMMANDS.items()},
        args=argv,
        description="gspruner: train, prune, evaluate and export 3D Gaussian Splatting scenes (gsplat on CUDA, PyTorch on CPU).",
    )
    for cls, run in COMMANDS.values():
        if isinstance(cfg, cls):
            try:
                run(cfg)
            except InputError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
            return 0
    raise AssertionError(f"unhandled config {type(cfg)}")


if __name__ == "__main__":
    sys.exit(main())


def entry() -> None:
    """Console-script entry point."""
    sys.exit(main())
