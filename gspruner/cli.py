"""The `gspruner` command: typed dataclass configs (gspruner/config.py) turned into subcommands by tyro."""

from __future__ import annotations

import json
import os
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
        if settings == "defaults":
            print(f"note: {cfg.ply}: no config.yml of a run beside it; evaluating at the defaults --data-factor 1 "
                  f"--test-every 8 (give them if it was trained otherwise)", file=sys.stderr)
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


def run_quantize(cfg) -> dict:
    """Quantization-aware SH palette (gspruner/quantize.py); torch and the renderer load here."""
    from .quantize import run_quantize as quantize

    return quantize(cfg)


def _command(name: str):
    """(config type for tyro, run function) of a subcommand; imported only when that command runs."""
    if name == "export":
        from .export import ExportConfig, run_export

        return ExportConfig, run_export
    if name == "view":
        from .viewer import ViewConfig, run_view

        return ViewConfig, run_view
    if name == "process":
        from .capture.command import ProcessConfig, run_process

        return ProcessConfig, run_process
    from . import config

    return {
        "train": (config.train_cli_type(), run_train),  # the registered methods, at parse time
        "prune": (config.prune_cli_type(), run_prune),
        "eval": (config.EvalConfig, run_eval),
        "distill-sh": (config.DistillConfig, run_distill),
        "quantize-sh": (config.QuantizeConfig, run_quantize),
        "report": (config.ReportConfig, run_report),
    }[name]


# name -> its config's docstring (`gspruner --help` lists them without importing torch; tests/test_cli.py keeps them equal)
COMMANDS = {
    "process": "Turn your own photos or a video into a scene `train` reads (COLMAP / Mip-NeRF 360 layout): frames, SIFT features, matching and mapping with pycolmap on the CPU, undistortion, images_2/4/8, process.json.",
    "train": "Train a 3D Gaussian Splatting scene (COLMAP / NeRF-synthetic / instant-ngp), a 4D one (D-NeRF, Neural 3D Video), or the built-in demo. Under `torchrun --nproc_per_node N -m gspruner.cli train ...` the Gaussians are sharded over N ranks (README: Training over several processes).",
    "prune": "Prune a trained checkpoint by an importance score, fine-tune without densification, and evaluate.",
    "export": "Export a checkpoint (or convert a scene file) to PLY, SOG, SPZ, glTF (.glb), compressed PLY or .splat, and print a size table (bytes per splat, ratio to the INRIA PLY).",
    "view": "Serve a trained scene in the browser (viser + nerfview): orbit the camera, switch RGB / depth / alpha, background and SH degree; a 4D checkpoint (dynamic scene) gets a time slider.",
    "eval": "Evaluate a checkpoint on a scene's test split and print the metrics as JSON.",
    "distill-sh": "SH distillation (LightGaussian): fine-tune a lower-SH-degree copy of a checkpoint against the full model's renders from training and pseudo views.",
    "quantize-sh": "SOG-ready SH palette: replace each Gaussian's higher SH bands by its entry of a k-means palette, fine-tune everything else with the palette fixed (quantization-aware), write the .sog.",
    "report": "Write report.md with tables and PNG plots for a training run, a benchmark scene, or a benchmark root.",
}
DESCRIPTION = "gspruner: train, prune, evaluate and export 3D Gaussian Splatting scenes (gsplat on CUDA, our rasterizer on CPU)."


def usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [f"usage: gspruner {{{','.join(COMMANDS)}}} [OPTIONS]", "", DESCRIPTION, "", "commands:"]
    lines += [f"  {name:<{width}}  {text}" for name, text in COMMANDS.items()]
    lines += ["", "`gspruner COMMAND --help` explains every option of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    cls, run = _command(name)
    try:
        cfg = parse(cls, rest, prog=f"gspruner {name}")
        run(cfg)
    except InputError as exc:
        message = str(exc)
        if name == "prune":  # the method's options are --score.* here, --prune.* under `train`
            message = message.replace("--prune.", "--score.")
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


def parse(cls: type, args: list[str], prog: str):
    """tyro's parse of `args` into `cls`; parent options may follow a method subcommand (`prune:lp3dgs
    --max-steps 10`). A usage error (unknown option or subcommand, bad value) becomes one InputError line
    instead of tyro's box; --help prints and exits 0 as usual."""
    import contextlib
    import io

    import tyro

    box = io.StringIO()
    try:
        with contextlib.redirect_stderr(box):
            return tyro.cli(cls, args=args, prog=prog, config=(tyro.conf.CascadeSubcommandArgs,))
    except SystemExit as exc:
        if not exc.code:
            raise
        raise InputError(f"{box_text(box.getvalue())} (see `{prog} --help`)") from None


BOX_CHARS = "│╭╮╰╯─ "


def box_text(text: str) -> str:
    """The message of tyro's error box, joined across its wrapped lines: the lines under the title (drawn with
    box characters on a terminal, as a title over a rule of dashes elsewhere) up to the first blank one; else
    the last non-empty line."""
    rows = [line.strip().strip("│").strip() for line in text.splitlines()]
    for i, row in enumerate(rows):
        boxed, ruled = row.startswith("╭─"), i > 0 and bool(row) and set(row) <= set("-─")
        if boxed or ruled:
            body = []
            for inner in rows[i + 1:]:
                if not inner or set(inner) <= set(BOX_CHARS + "-"):
                    break
                body.append(inner)
            return " ".join(body) if body else (row.strip(BOX_CHARS) if boxed else rows[i - 1])
    meaningful = [row for row in rows if row.strip(BOX_CHARS)]
    return meaningful[-1] if meaningful else "invalid arguments"


if __name__ == "__main__":
    sys.exit(main())


def entry() -> None:
    """Console-script entry point."""
    try:
        sys.exit(main())
    except BrokenPipeError:  # `gspruner ... --help | head`: the reader went away, nothing went wrong here
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        sys.exit(0)
