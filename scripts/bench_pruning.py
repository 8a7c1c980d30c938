#!/usr/bin/env python
"""Pruning benchmark: train once, prune at several ratios with each score, fine-tune equally, compare.

    python scripts/bench_pruning.py --data-dir ../shared/data/fox --data-factor 8 --max-steps 3000 \
        --finetune-steps 1000

The reference row is the unpruned model fine-tuned for the same extra steps, so every row has the same
total number of steps. Prints a table (PSNR, SSIM, ΔPSNR, Gaussians, PLY MB) and writes
OUT/psnr_vs_ratio.png and OUT/results.json. Finished runs are reused unless --rerun.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gspruner.config import TrainConfig
from gspruner.pruning import PRUNERS
from gspruner.strategies import STRATEGIES
from gspruner.trainer import Trainer


def run(cfg: TrainConfig, rerun: bool) -> dict:
    metrics = cfg.result_dir / "metrics.json"
    if metrics.is_file() and not rerun:
        return json.loads(metrics.read_text())
    cfg.overwrite = True
    return Trainer(cfg).train()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True, help="scene folder (COLMAP / NeRF-synthetic / instant-ngp)")
    ap.add_argument("--data-factor", type=int, default=1, help="image downsampling factor")
    ap.add_argument("--max-steps", type=int, default=3000, help="steps of the base training run")
    ap.add_argument("--strategy", default="default", choices=[n for n in STRATEGIES if n != "none"], help="densification of the base run")
    ap.add_argument("--finetune-steps", type=int, default=1000, help="fine-tuning steps after each prune (and for the reference)")
    ap.add_argument("--ratios", default="0.3,0.5,0.66,0.8,0.9", help="comma-separated prune ratios")
    ap.add_argument("--scores", default="lightgaussian,radsplat,minisplatting,opacity", help="comma-separated scores")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run")
    ap.add_argument("--out", type=Path, default=Path("results/bench_pruning"), help="output folder")
    ap.add_argument("--lpips", action="store_true", help="also compute LPIPS (slower)")
    ap.add_argument("--rerun", action="store_true", help="re-run finished runs")
    a = ap.parse_args(argv)
    common = dict(data_dir=a.data_dir, data_factor=a.data_factor, device=a.device, progress=sys.stderr.isatty(),
                  lpips=a.lpips, save_renders=False)
    base = run(TrainConfig(result_dir=a.out / "base", strategy=STRATEGIES[a.strategy](), max_steps=a.max_steps, **common), a.rerun)
    ckpt = a.out / "base" / "ckpt" / "last.pt"
    tune = dict(strategy=STRATEGIES["none"](), max_steps=a.finetune_steps, init_ckpt=ckpt, sh_degree_interval=0, **common)
    ref = run(TrainConfig(result_dir=a.out / "reference", **tune), a.rerun)
    rows = [("unpruned (reference)", 0.0, ref)]
    for score in a.scores.split(","):
        for ratio in (float(r) for r in a.ratios.split(",")):
            m = run(TrainConfig(result_dir=a.out / f"{score}_{ratio:g}", prune=PRUNERS[score](ratio=ratio, at=(0.0,)),
                                **tune), a.rerun)
            rows.append((score, ratio, m))

    head = f"{'score':<22}{'ratio':>6}{'PSNR':>8}{'ΔPSNR':>8}{'SSIM':>8}{'Gaussians':>11}{'PLY MB':>8}"
    lines = [f"base run: {a.strategy}, {a.max_steps} steps, PSNR {base['psnr']:.3f}, {base['num_gaussians']} Gaussians, "
             f"{base['train_seconds']:.0f} s; every row below: +{a.finetune_steps} fine-tune steps", head, "-" * len(head)]
    for score, ratio, m in rows:
        lines.append(f"{score:<22}{ratio:>6.2f}{m['psnr']:>8.3f}{m['psnr'] - ref['psnr']:>+8.3f}{m['ssim']:>8.4f}"
                     f"{m['num_gaussians']:>11d}{m['ply_mb']:>8.2f}")
    print("\n".join(lines))
    (a.out / "results.json").write_text(json.dumps(
        [{"score": s, "ratio": r, **{k: m[k] for k in ("psnr", "ssim", "lpips", "num_gaussians", "ply_mb")}} for s, r, m in rows],
        indent=2))
    (a.out / "table.txt").write_text("\n".join(lines) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for score in a.scores.split(","):
        pts = sorted((r, m["psnr"]) for s, r, m in rows if s == score)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=score)
    ax.axhline(ref["psnr"], color="k", linestyle="--", label="unpruned")
    ax.set_xlabel("prune ratio")
    ax.set_ylabel("test PSNR (dB)")
    ax.set_title(f"{a.data_dir.name}: prune + {a.finetune_steps} fine-tune steps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(a.out / "psnr_vs_ratio.png", dpi=120)
    print(f"wrote {a.out / 'psnr_vs_ratio.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
