"""`gspruner compact --ckpt C --out F.sog`: the compact pipeline in one command, with one table at the end.

Stages, each a run under --work-dir, each measured from its .sog read back on the test views:
  input    the checkpoint as trained, written as a SOG with --palette entries (what a plain export gives);
  prune    `gspruner prune score:rounds`: --prune-ratio removed in --rounds prunes by --score, fine-tuned
           --prune-steps (rounds in the first 60 %); --max-loss-db stops the rounds once the training views
           lose that much (so the ratio is the most removed); --target-mb sets the ratio from the input's
           SOG bytes per Gaussian;
  palette  `gspruner quantize-sh`: the SH palette applied to the model, everything else fine-tuned with it
           fixed (--palette-steps), the .sog written with the same palette; copied to --out.
Ratios are to the INRIA PLY of the input checkpoint (248 B per Gaussian at SH degree 3); ΔPSNR is against
the input checkpoint's own test PSNR.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .config import CompactConfig, PruneConfig, QuantizeConfig
from .errors import InputError

MAX_RATIO = 0.99


def prune_ratio_for(target_bytes: float, input_sog_bytes: int, num_gaussians: int) -> float:
    """The fraction to remove so that a SOG of the survivors is about `target_bytes`, at the input's bytes per
    Gaussian (a SOG's size is nearly proportional to its Gaussians once the palette is fixed)."""
    keep = target_bytes / (input_sog_bytes / num_gaussians) / num_gaussians
    return min(max(1.0 - keep, 0.0), MAX_RATIO)


def run_compact(cfg: CompactConfig) -> dict:
    from .checkpoint import load_checkpoint
    from .export.command import inria_ply_bytes
    from .export.formats import sh_degree_of
    from .pruning.configs import RoundsConfig
    from .quantize import load_sh_checkpoint

    out = Path(cfg.out)
    work = Path(cfg.work_dir) if cfg.work_dir is not None else out.with_suffix(".compact")
    for path in (out, work):
        if path.exists() and not cfg.overwrite:
            raise InputError(f"{path}: exists; --overwrite replaces it")
    ckpt = load_sh_checkpoint(cfg.ckpt, "compact", "export it with --format sog")
    state = ckpt["splats"]
    scene, device = _scene_and_device(ckpt, cfg)  # a missing scene fails here, before anything is written
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    num_input = len(state["means"])
    ply_bytes = inria_ply_bytes(num_input, sh_degree_of(state))
    shared = dict(data_dir=cfg.data_dir, data_factor=cfg.data_factor, test_every=cfg.test_every, device=cfg.device,
                  overwrite=True, lpips=cfg.lpips, progress=cfg.progress)

    print(f"[1/3] input: {num_input:,} Gaussians, INRIA PLY {ply_bytes / 1e6:.2f} MB", flush=True)
    reference = _measure_checkpoint(state, scene, device, cfg)
    rows = [_measure_sog("input", state, work / "input.sog", scene, device, cfg)]

    ratio = cfg.prune_ratio
    if cfg.target_mb is not None:
        ratio = prune_ratio_for(cfg.target_mb * 1e6, rows[0]["bytes"], num_input)
    ckpt_path = Path(cfg.ckpt)
    if ratio > 0:
        print(f"[2/3] prune: {ratio:.1%} in {cfg.rounds} rounds by the {cfg.score} score, {cfg.prune_steps} "
              f"fine-tuning steps" + (f", stopping at a {cfg.max_loss_db} dB loss on the training views"
                                      if cfg.max_loss_db is not None else ""), flush=True)
        from .commands import run_prune

        rounds = RoundsConfig(score=cfg.score, ratio=ratio, rounds=cfg.rounds, stop_db=cfg.max_loss_db)
        run_prune(PruneConfig(ckpt=ckpt_path, result_dir=work / "prune", score=rounds, finetune_steps=cfg.prune_steps,
                              **shared))
        ckpt_path = work / "prune" / "ckpt" / "last.pt"
        rows.append(_measure_sog("prune", load_checkpoint(ckpt_path)["splats"], work / "prune.sog", scene, device, cfg))
    else:
        print("[2/3] prune: skipped (ratio 0)", flush=True)

    print(f"[3/3] SH palette of {cfg.palette} entries, {cfg.palette_steps} quantization-aware fine-tuning steps",
          flush=True)
    from .quantize import run_quantize

    run_quantize(QuantizeConfig(ckpt=ckpt_path, result_dir=work / "palette", palette=cfg.palette,
                                steps=cfg.palette_steps, seed=cfg.seed, **shared))
    final = work / "palette" / "scene.sog"
    rows.append(_measure_file("palette", final, load_checkpoint(work / "palette" / "ckpt" / "last.pt")["splats"],
                              scene, device, cfg))

    for row in rows:
        row["ratio_to_inria_ply"] = ply_bytes / row["bytes"]
        row["delta_psnr"] = row["psnr"] - reference["psnr"]
    result = {"ckpt": str(Path(cfg.ckpt).resolve()), "input_psnr": reference["psnr"], "input_ssim": reference["ssim"],
              "input_lpips": reference.get("lpips"), "input_render_fps": reference.get("render_fps"),
              "input_gaussians": num_input, "input_inria_ply_bytes": ply_bytes, "prune_ratio_asked": ratio,
              "palette": cfg.palette, "stages": rows}
    (work / "compact.json").write_text(json.dumps(result, indent=2) + "\n")
    partial = out.parent / f".{out.name}.partial"
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(final, partial)
    os.replace(partial, out)
    print(table(result))
    print(f"wrote {out} ({rows[-1]['bytes'] / 1e6:.3f} MB, {rows[-1]['ratio_to_inria_ply']:.1f}x smaller than the "
          f"input's INRIA PLY, {rows[-1]['delta_psnr']:+.2f} dB); stages in {work}")
    return result


def table(result: dict) -> str:
    """The per-stage table: Gaussians, file size, ratio to the input's INRIA PLY, PSNR (and its change), SSIM,
    LPIPS, render FPS at test resolution."""
    lines = ["| stage | Gaussians | SOG MB | ratio | PSNR | ΔPSNR | SSIM | LPIPS | render FPS |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
             f"| input checkpoint | {result['input_gaussians']:,} | {result['input_inria_ply_bytes'] / 1e6:.3f} (INRIA PLY) "
             f"| 1.0× | {result['input_psnr']:.2f} | – | {result['input_ssim']:.3f} | {_opt(result['input_lpips'])} "
             f"| {_opt(result['input_render_fps'], 1)} |"]
    for r in result["stages"]:
        lines.append(f"| {r['stage']} | {r['gaussians']:,} | {r['bytes'] / 1e6:.3f} | {r['ratio_to_inria_ply']:.1f}× "
                     f"| {r['psnr']:.2f} | {r['delta_psnr']:+.2f} | {r['ssim']:.3f} | {_opt(r.get('lpips'))} "
                     f"| {_opt(r.get('render_fps'), 1)} |")
    return "\n".join(lines)


def _opt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _scene_and_device(ckpt: dict, cfg: CompactConfig):
    from .checkpoint import trained_scene
    from .device import resolve_device

    return trained_scene(ckpt, cfg.data_dir, cfg.data_factor, cfg.test_every), resolve_device(cfg.device)


def _evaluate(splats: dict, scene, device, cfg: CompactConfig) -> dict:
    from .checkpoint import splats_from_state
    from .evaluation import evaluate
    from .export.formats import sh_degree_of

    split = "test" if scene.test else "train"
    return evaluate(splats_from_state(splats, device), scene, device, sh_degree_of(splats), split=split,
                    with_lpips=cfg.lpips)


def _measure_checkpoint(state: dict, scene, device, cfg: CompactConfig) -> dict:
    from .quantize import plain_splats

    return _evaluate(plain_splats(state), scene, device, cfg)


def _measure_sog(stage: str, state: dict, path: Path, scene, device, cfg: CompactConfig) -> dict:
    """Write `state` as a SOG with the palette size, then measure the file."""
    from .export.formats import write_splats
    from .quantize import plain_splats

    write_splats(path, plain_splats(state), "sog", palette_size=cfg.palette, seed=cfg.seed)
    return _measure_file(stage, path, state, scene, device, cfg)


def _measure_file(stage: str, path: Path, state: dict, scene, device, cfg: CompactConfig) -> dict:
    from .export.formats import read_splats

    metrics = _evaluate(read_splats(path), scene, device, cfg)
    return {"stage": stage, "file": str(path), "gaussians": len(state["means"]), "bytes": path.stat().st_size,
            "psnr": metrics["psnr"], "ssim": metrics["ssim"], "lpips": metrics.get("lpips"),
            "render_fps": metrics.get("render_fps")}
