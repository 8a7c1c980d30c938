"""Pruning: train once, prune at several ratios with each score, fine-tune equally, compare.

    python scripts/benchmark.py pruning --data-dir ../shared/data/fox --data-factor 8 --max-steps 3000 \
        --finetune-steps 1000

The reference row is the unpruned model fine-tuned for the same extra steps, so every row has the same
total number of steps. Prints a table (PSNR, SSIM, ΔPSNR, Gaussians, PLY MB) and writes
OUT/table.txt, OUT/psnr_vs_ratio.png and OUT/results.json. Finished runs are reused unless --rerun.
"""

from __future__ import annotations

from pathlib import Path

from bench import common
from gspruner.pruning import PRUNERS
from gspruner.strategies import STRATEGIES


def main(argv=None) -> int:
    ap = common.parser(__name__, __doc__)
    common.add_scene(ap, data_dir="required", max_steps=3000, steps_help="steps of the base training run")
    common.add_strategy(ap, "densification of the base run")
    ap.add_argument("--finetune-steps", type=int, default=1000, help="fine-tuning steps after each prune (and for the reference)")
    ap.add_argument("--ratios", default="0.3,0.5,0.66,0.8,0.9", help="comma-separated prune ratios")
    ap.add_argument("--scores", default="lightgaussian,radsplat,minisplatting,opacity", help="comma-separated scores")
    common.add_runs(ap, Path("results/bench_pruning"), "output folder", lpips=False)
    a = ap.parse_args(argv)

    def run(name: str, **kw) -> dict:
        return common.train(common.train_config(a, a.out / name, **kw), a.rerun)

    base = run("base", strategy=STRATEGIES[a.strategy](), max_steps=a.max_steps)
    tune = dict(strategy=STRATEGIES["none"](), max_steps=a.finetune_steps, init_ckpt=a.out / "base" / "ckpt" / "last.pt",
                sh_degree_interval=0)
    ref = run("reference", **tune)
    rows = [("unpruned (reference)", 0.0, ref)]
    for score in a.scores.split(","):
        for ratio in (float(r) for r in a.ratios.split(",")):
            rows.append((score, ratio, run(f"{score}_{ratio:g}", prune=PRUNERS[score](ratio=ratio, at=(0.0,)), **tune)))

    head = f"{'score':<22}{'ratio':>6}{'PSNR':>8}{'ΔPSNR':>8}{'SSIM':>8}{'Gaussians':>11}{'PLY MB':>8}"
    lines = [f"base run: {a.strategy}, {a.max_steps} steps, PSNR {base['psnr']:.3f}, {base['num_gaussians']} Gaussians, "
             f"{base['train_seconds']:.0f} s; every row below: +{a.finetune_steps} fine-tune steps", head, "-" * len(head)]
    for score, ratio, m in rows:
        lines.append(f"{score:<22}{ratio:>6.2f}{m['psnr']:>8.3f}{m['psnr'] - ref['psnr']:>+8.3f}{m['ssim']:>8.4f}"
                     f"{m['num_gaussians']:>11d}{m['ply_mb']:>8.2f}")
    keys = ("psnr", "ssim", "lpips", "num_gaussians", "ply_mb")
    common.write_table(a.out, lines, [{"score": s, "ratio": r, **common.pick(m, keys)} for s, r, m in rows],
                       table="table.txt")

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
