"""`gspruner quantize-sh`: a quantization-aware SH palette for SOG files.

A SOG file keeps each Gaussian's higher SH bands (shN) as one entry of a k-means palette
(`gspruner.export.sog`); with a small palette that is most of what the file loses (fox, RadSplat 80 %,
1,024 entries: −0.46 dB). Here the palette is applied to the model itself and the other parameters are
fine-tuned with it fixed (`--freeze shN`), so the rest of the model makes up for it, as LightGaussian's
vector quantization is followed by fine-tuning:
    1. shN_i ← c_{l(i)}, the palette (k-means over the splats' shN rows, the SOG writer's own `kmeans`);
    2. `--steps` of training from that model, no densification, shN frozen;
    3. the .sog written with the same palette size: the fine-tuned shN has at most that many distinct
       rows, so the writer's k-means finds them again and the palette costs nothing more.
metrics.json adds the file's bytes, its ratio to the INRIA PLY of the input checkpoint and its PSNR.
"""

from __future__ import annotations

import json

import torch

from .config import QuantizeConfig
from .errors import InputError

SPLAT_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")


def plain_splats(state: dict) -> dict:
    """The six 3D splat tensors of a checkpoint's `splats`, detached, float32, on the CPU."""
    return {k: state[k].detach().float().cpu() for k in SPLAT_KEYS}


def load_sh_checkpoint(path, command: str, without_sh: str) -> dict:
    """The checkpoint at `path`, which `command` takes only as a 3D model with SH bands above degree 0
    (`without_sh`: what the error line then tells the user)."""
    from .checkpoint import load_checkpoint
    from .export.formats import sh_degree_of

    ckpt = load_checkpoint(path)
    if "times" in ckpt["splats"]:
        raise InputError(f"{path}: a 4D checkpoint; {command} takes 3D models (export a snapshot first)")
    if sh_degree_of(ckpt["splats"]) == 0:
        raise InputError(f"{path}: the model has no SH bands above degree 0: {without_sh}")
    return ckpt


def palette_sh(shN: torch.Tensor, palette: int, iterations: int, seed: int) -> torch.Tensor:
    """shN [N, K-1, 3] with every row replaced by its k-means palette entry (the SOG writer's clustering)."""
    from .export.sog import kmeans, sh_points, sh_rows

    centroids, labels = kmeans(sh_points(shN.numpy()), palette, iterations, seed)
    return torch.from_numpy(sh_rows(centroids[labels], shN.shape[1])).to(shN.dtype)


def run_quantize(cfg: QuantizeConfig) -> dict:
    from .checkpoint import load_checkpoint, splats_from_state, trained_scene
    from .commands import fine_tune_config, run_train
    from .device import resolve_device
    from .evaluation import evaluate
    from .export.formats import read_splats, sh_degree_of, write_splats
    from .export.command import inria_ply_bytes
    from .rundir import write_text_atomic

    if not 1 <= cfg.palette <= 65536:
        raise InputError(f"--palette must be in 1..65536 (got {cfg.palette})")
    if cfg.steps < 1:
        raise InputError(f"--steps must be ≥ 1 (got {cfg.steps})")
    ckpt = load_sh_checkpoint(cfg.ckpt, "quantize-sh", "nothing to quantize")
    splats = plain_splats(ckpt["splats"])
    quantized = dict(ckpt, splats={**splats, "shN": palette_sh(splats["shN"], cfg.palette, cfg.kmeans_iterations,
                                                                cfg.seed)})
    train_cfg = fine_tune_config(cfg, ckpt, cfg.steps, freeze=("shN",), seed=cfg.seed)
    metrics = run_train(train_cfg, init_ckpt=quantized)

    # the .sog of the fine-tuned model, with the same palette size, and what it renders
    tuned = load_checkpoint(cfg.result_dir / "ckpt" / "last.pt")["splats"]
    sog = cfg.result_dir / "scene.sog"
    write_splats(sog, {k: tuned[k].float() for k in SPLAT_KEYS}, "sog", palette_size=cfg.palette, seed=cfg.seed)
    device = resolve_device(cfg.device)
    scene = trained_scene(ckpt, cfg.data_dir, cfg.data_factor, cfg.test_every)
    degree = train_cfg.sh_degree
    split = "test" if scene.test else "train"
    file_metrics = evaluate(splats_from_state(read_splats(sog), device), scene, device, degree, split=split,
                            with_lpips=False)
    size = sog.stat().st_size
    metrics.update(
        sog_palette=cfg.palette, sog_bytes=size, sog_psnr=file_metrics["psnr"], sog_ssim=file_metrics["ssim"],
        sog_ratio_to_input_inria_ply=inria_ply_bytes(len(splats["means"]), sh_degree_of(splats)) / size,
        quantize_steps=cfg.steps,
    )  # fmt: skip
    write_text_atomic(cfg.result_dir / "metrics.json", json.dumps(metrics, indent=2))
    print(json.dumps({k: metrics[k] for k in ("psnr", "sog_psnr", "sog_bytes", "num_gaussians")}))
    return metrics


__all__ = ["palette_sh", "run_quantize"]
