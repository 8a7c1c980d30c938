#!/usr/bin/env python
"""LP-3DGS benchmark: the learned pruning ratio against the unpruned model, the STE mask and fixed-ratio
pruning at the learned ratio, all from one training run.

    python scripts/bench_lp3dgs.py --data-dir ../shared/data/fox --data-factor 8 --max-steps 2000

Rows: unpruned; LP-3DGS with the RadSplat and the Mini-Splatting score; the STE mask (Compact-3DGS);
LightGaussian and RadSplat one-shot pruning at LP-3DGS (RadSplat)'s learned ratio, at the same step.
Every row trains for --max-steps in total with the same seed and view order. Nothing differs between the
rows before a pruner's first action, so the unpruned run is trained once and checkpointed where the
pruners branch off (the STE window starts when densification stops; the others at the LP-3DGS mask
window), and each method resumes from that checkpoint: bit-identical to training it from scratch
(tests/test_lp3dgs.py checks resume exactness), at a fraction of the CPU time. Times include the
shared prefix. Prints a markdown table and writes OUT/results.json and OUT/table.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from gspruner.checkpoint import load_checkpoint, save_checkpoint
from gspruner.config import TrainConfig
from gspruner.pruning import PRUNERS, LP3DGSConfig, PruneContext, STEMaskConfig
from gspruner.pruning.lp3dgs import MaskPruner
from gspruner.strategies import STRATEGIES, make_strategy
from gspruner.rundir import config_dict
from gspruner.trainer import Trainer


class SnapshotTrainer(Trainer):
    """A Trainer that also writes its checkpoint after the given steps (branch points)."""

    def __init__(self, cfg, snapshots: dict[int, Path]):
        super().__init__(cfg)
        self.snapshots = snapshots  # {steps done: path}

    def train(self) -> dict:
        self._t0 = time.perf_counter()
        return super().train()

    def train_step(self, step):
        out = super().train_step(step)
        if step + 1 in self.snapshots:
            payload = self.checkpoint_payload(step)
            payload["train_seconds"] = time.perf_counter() - self._t0
            save_checkpoint(self.snapshots[step + 1], payload)
        return out


def branch(snapshot: Path, cfg: TrainConfig) -> dict:
    """Continue the unpruned run's checkpoint `snapshot` as the run `cfg` (its own pruner) to the end."""
    r = cfg.result_dir
    if r.exists():
        shutil.rmtree(r)
    ck = load_checkpoint(snapshot)
    ck["config"], ck["pruner"] = config_dict(cfg), {}
    save_checkpoint(r / "ckpt" / "last.pt", ck)
    return Trainer(dataclasses.replace(cfg, resume=True, overwrite=False)).train()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None, help="scene folder (default: the built-in demo scene)")
    ap.add_argument("--data-factor", type=int, default=1, help="image downsampling factor")
    ap.add_argument("--max-steps", type=int, default=2000, help="training steps of every row")
    ap.add_argument("--strategy", default="default", choices=[n for n in STRATEGIES if n != "none"], help="densification")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to run")
    ap.add_argument("--out", type=Path, default=Path("results/bench_lp3dgs"), help="output folder")
    ap.add_argument("--lpips", action="store_true", help="also compute LPIPS (slower)")
    ap.add_argument("--rerun", action="store_true", help="re-run finished rows")
    ap.add_argument("--rows", default="lp3dgs-radsplat,lp3dgs-minisplatting,ste-mask,fixed",
                    help="comma-separated rows besides the unpruned one (fixed: LightGaussian and RadSplat at the learned ratio)")
    a = ap.parse_args(argv)
    common = dict(data_dir=a.data_dir, data_factor=a.data_factor, device=a.device, max_steps=a.max_steps,
                  strategy=STRATEGIES[a.strategy](), progress=sys.stderr.isatty(), lpips=a.lpips, save_renders=False, overwrite=True)
    if a.data_dir is None:
        common.pop("data_dir")

    # the branch points, from the same schedule the pruners compute
    stop = make_strategy(a.strategy, a.max_steps).densify_stop_step()
    ctx = PruneContext(views=lambda: iter(()), device=torch.device("cpu"), max_steps=a.max_steps,
                       densify_stop_step=stop, sh_degree=3)
    lp, ste = MaskPruner(ctx, "gumbel"), MaskPruner(ctx, "ste")
    snaps = a.out / "snapshots"
    # checkpoint after step start-2: the branch runs step start-1, whose after_step creates the mask
    lp_at, ste_at = lp.start_step - 1, ste.start_step - 1
    snapshots = {lp_at: snaps / f"step_{lp_at}.pt", ste_at: snaps / f"step_{ste_at}.pt"}

    def done(name):
        f = a.out / name / "metrics.json"
        return json.loads(f.read_text()) if f.is_file() and not a.rerun else None

    rows = {}
    rows["unpruned"] = done("unpruned") if all(p.is_file() for p in snapshots.values()) else None
    if rows["unpruned"] is None:
        rows["unpruned"] = SnapshotTrainer(TrainConfig(result_dir=a.out / "unpruned", **common), snapshots).train()
    plan = [
        ("lp3dgs-radsplat", snapshots[lp_at], dict(prune=LP3DGSConfig(score="radsplat"))),
        ("lp3dgs-minisplatting", snapshots[lp_at], dict(prune=LP3DGSConfig(score="minisplatting"))),
        ("ste-mask", snapshots[ste_at], dict(prune=STEMaskConfig())),
    ]
    wanted = set(a.rows.split(","))
    for name, snap, kw in (p for p in plan if p[0] in wanted):
        rows[name] = done(name) or branch(snap, TrainConfig(result_dir=a.out / name, **common, **kw))
        if rows[name].get("num_gaussians_before_prune") is None:
            raise RuntimeError(f"{name}: the mask never pruned (branch point after its window?)")
    learned = rows["lp3dgs-radsplat"]["learned_prune_ratio"] if "lp3dgs-radsplat" in rows else None
    if "fixed" in wanted and learned and 0.0 < learned < 1.0:
        for score in ("lightgaussian", "radsplat"):
            name = f"{score}@{learned:.2f}"
            rows[name] = done(name) or branch(snapshots[lp_at], TrainConfig(
                result_dir=a.out / name, prune=PRUNERS[score](ratio=learned, at=(lp.prune_step / a.max_steps,)), **common))

    ref = rows["unpruned"]
    lines = [f"{a.data_dir or 'demo'} (factor {a.data_factor}), {a.strategy}, {a.max_steps} steps; mask window "
             f"{lp.start_step}-{lp.prune_step} (STE {ste.start_step}-{ste.prune_step}); fixed ratios prune at {lp.prune_step}",
             "", "| method | PSNR | ΔPSNR | SSIM | LPIPS | prune ratio | Gaussians | train s |", "|---|---|---|---|---|---|---|---|"]
    for name, m in rows.items():
        ratio = m.get("learned_prune_ratio", m.get("prune_ratio"))
        lp_txt = f"{m['lpips']:.4f}" if m.get("lpips") is not None else "–"
        lines.append(f"| {name} | {m['psnr']:.3f} | {m['psnr'] - ref['psnr']:+.3f} | {m['ssim']:.4f} | {lp_txt} | "
                     f"{'–' if ratio is None else f'{ratio:.3f}'} | {m['num_gaussians']:,} | {m['train_seconds']:.0f} |")
    print("\n".join(lines))
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "table.md").write_text("\n".join(lines) + "\n")
    keys = ("psnr", "ssim", "lpips", "num_gaussians", "num_gaussians_before_prune", "learned_prune_ratio", "prune_ratio",
            "train_seconds", "mask_window")
    (a.out / "results.json").write_text(json.dumps({n: {k: m.get(k) for k in keys} for n, m in rows.items()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
