"""The `gspruner` command: typed dataclass configs (gspruner/config.py) turned into subcommands by tyro."""

from __future__ import annotations

import json
import sys

import tyro

from .config import EvalConfig, TrainConfig
from .errors import InputError


def run_train(cfg: TrainConfig) -> dict:
    from .trainer import Trainer

    metrics = Trainer(cfg).train()
    print(json.dumps({k: metrics[k] for k in ("psnr", "ssim", "lpips", "num_gaussians", "train_seconds")}))
    return metrics


def run_eval(cfg: EvalConfig) -> dict:
    from .checkpoint import load_checkpoint, splats_from_state
    from .data import load_scene
    from .evaluation import evaluate
    from .trainer import OBJECT_KINDS, resolve_device

    device = resolve_device(cfg.device)
    ckpt = load_checkpoint(cfg.ckpt)
    trained = ckpt["config"]
    data_dir = cfg.data_dir if cfg.data_dir is not None else ckpt["scene"]["data_dir"]
    scene = load_scene(
        data_dir,
        data_factor=cfg.data_factor if cfg.data_factor is not None else trained["data_factor"],
        test_every=cfg.test_every if cfg.test_every is not None else trained["test_every"],
        background=tuple(trained["background"]),
    )
    if scene.kind not in OBJECT_KINDS:
        scene.background = None
    splats = splats_from_state(ckpt["splats"], device)
    metrics = evaluate(splats, scene, device, trained["sh_degree"], split="test" if scene.test else "train",
                       render_dir=cfg.render_dir, with_lpips=cfg.lpips)
    metrics.update(num_gaussians=len(splats["means"]), ckpt=str(cfg.ckpt), data_dir=str(scene.data_dir))
    print(json.dumps(metrics, indent=2))
    return metrics


COMMANDS = {"train": (TrainConfig, run_train), "eval": (EvalConfig, run_eval)}


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
