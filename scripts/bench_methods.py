#!/usr/bin/env python
"""Densification methods side by side: default (3DGS ADC), fastgs (FastGS) and mcmc, same steps, one after another.

    python scripts/bench_methods.py --data-dir ../shared/data/fox --data-factor 8 --max-steps 3000 \
        --out-dir results/bench_methods/fox

mcmc gets cap_max = fastgs's final Gaussian count (so fastgs runs before it). Prints a markdown table
(rasterizer: gsplat / compiled / torch, training seconds, wall seconds, seconds per 1k steps, PSNR, SSIM,
Gaussians, default's time over each method's) and the issue's acceptance checks for fastgs vs default; writes OUT/table.md and
OUT/results.json. Finished runs are reused unless --rerun. Timings compare only on the same, otherwise
idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from gspruner.config import TrainConfig
from gspruner.strategies import MCMCConfig, STRATEGIES
from gspruner.trainer import Trainer

METHODS = ("default", "fastgs", "mcmc")


def run(cfg: TrainConfig, rerun: bool) -> dict:
    """metrics.json of the run plus its wall seconds (setup + training + evaluation)."""
    r = cfg.result_dir
    if (r / "metrics.json").is_file() and (r / "wall.json").is_file() and not rerun:
        return {**json.loads((r / "metrics.json").read_text()), **json.loads((r / "wall.json").read_text())}
    cfg.overwrite = True
    tic = time.perf_counter()
    metrics = Trainer(cfg).train()
    wall = {"wall_seconds": time.perf_counter() - tic}
    (r / "wall.json").write_text(json.dumps(wall))
    return {**metrics, **wall}


def table(rows: dict[str, dict], steps: int) -> list[str]:
    ref = rows.get("default")
    lines = ["| method | rasterizer | train s | wall s | s / 1k steps | PSNR | SSIM | Gaussians | default / method time |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m in rows.items():
        ratio = f"{ref['train_seconds'] / m['train_seconds']:.2f}×" if ref else "–"
        backend = m.get("rasterizer") or "?"  # runs from before the column: unknown
        lines.append(f"| {name} | {backend} | {m['train_seconds']:.1f} | {m['wall_seconds']:.1f} | {1000 * m['train_seconds'] / steps:.1f} | "
                     f"{m['psnr']:.3f} | {m['ssim']:.4f} | {m['num_gaussians']} | {ratio} |")
    return lines


def acceptance(rows: dict[str, dict]) -> list[str]:
    """Issue 5 on CPU: fastgs ≥ 3× faster than default, PSNR within 0.3 dB, at most a quarter of the Gaussians."""
    if "default" not in rows or "fastgs" not in rows:
        return []
    d, f = rows["default"], rows["fastgs"]
    speed, dpsnr, frac = d["train_seconds"] / f["train_seconds"], f["psnr"] - d["psnr"], f["num_gaussians"] / d["num_gaussians"]
    ok = lambda c: "PASS" if c else "FAIL"  # noqa: E731
    return [f"- time ratio default/fastgs: {speed:.2f}× (≥ 3×: {ok(speed >= 3)})",
            f"- PSNR fastgs − default: {dpsnr:+.3f} dB (≥ −0.3 dB: {ok(dpsnr >= -0.3)})",
            f"- Gaussians fastgs/default: {frac:.3f} (≤ 0.25: {ok(frac <= 0.25)})"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True, help="scene folder (COLMAP / NeRF-synthetic / instant-ngp)")
    ap.add_argument("--data-factor", type=int, default=1, help="image downsampling factor")
    ap.add_argument("--max-steps", type=int, default=3000, help="training steps of every method")
    ap.add_argument("--methods", default="default,fastgs,mcmc", help=f"comma-separated, from {','.join(METHODS)}")
    ap.add_argument("--cap-max", type=int, default=None, help="mcmc's Gaussian budget when fastgs is not run")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run")
    ap.add_argument("--out-dir", type=Path, default=Path("results/bench_methods"), help="one sub-folder per method")
    ap.add_argument("--lpips", action="store_true", help="also compute LPIPS (slower)")
    ap.add_argument("--rerun", action="store_true", help="re-run finished runs")
    ap.add_argument("--cpu-backend", choices=["compiled", "torch"], default=None,
                    help="CPU rasterizer for these runs (sets GSPRUNER_CPU_BACKEND; default: the environment's, "
                         "compiled unless set). Give each backend its own --out-dir: finished runs are reused.")
    a = ap.parse_args(argv)
    if a.cpu_backend:
        os.environ["GSPRUNER_CPU_BACKEND"] = a.cpu_backend
    methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        ap.error(f"unknown methods {unknown}; choose from {','.join(METHODS)}")
    if "mcmc" in methods and "fastgs" not in methods and a.cap_max is None:
        ap.error("mcmc takes fastgs's final Gaussian count: add fastgs to --methods or give --cap-max")
    if "mcmc" in methods and "fastgs" in methods and methods.index("mcmc") < methods.index("fastgs"):
        methods.remove("mcmc")
        methods.insert(methods.index("fastgs") + 1, "mcmc")

    common = dict(data_dir=a.data_dir, data_factor=a.data_factor, max_steps=a.max_steps, device=a.device,
                  progress=sys.stderr.isatty(), lpips=a.lpips, save_renders=False)
    rows: dict[str, dict] = {}
    for name in methods:  # one after another: timings need the machine to themselves
        strategy = STRATEGIES[name]()
        if name == "mcmc":
            strategy = MCMCConfig(cap_max=rows["fastgs"]["num_gaussians"] if "fastgs" in rows else a.cap_max)
        cfg = TrainConfig(result_dir=a.out_dir / name, strategy=strategy, **common)
        rows[name] = run(cfg, a.rerun)
        print(f"{name}: {rows[name]['train_seconds']:.1f} s, PSNR {rows[name]['psnr']:.3f}, "
              f"{rows[name]['num_gaussians']} Gaussians", file=sys.stderr)

    device = next(iter(rows.values()))["device"]
    lines = [f"{a.data_dir} (data factor {a.data_factor}), {a.max_steps} steps, {device}"
             + (f"; mcmc cap_max = fastgs's {rows['fastgs']['num_gaussians']}" if "mcmc" in rows and "fastgs" in rows else ""),
             "", *table(rows, a.max_steps)]
    checks = acceptance(rows)
    if checks:
        lines += ["", *checks]
    print("\n".join(lines))
    a.out_dir.mkdir(parents=True, exist_ok=True)
    (a.out_dir / "table.md").write_text("\n".join(lines) + "\n")
    keys = ("train_seconds", "wall_seconds", "psnr", "ssim", "lpips", "num_gaussians", "device", "rasterizer", "steps")
    (a.out_dir / "results.json").write_text(json.dumps({n: {k: m.get(k) for k in keys} for n, m in rows.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
