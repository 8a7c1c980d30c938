"""LP-3DGS: the learned pruning ratio against the unpruned model, the STE mask and fixed-ratio
pruning at the learned ratio, all from one training run.

    python scripts/benchmark.py lp3dgs --data-dir ../shared/data/fox --data-factor 8 --max-steps 2000

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

import dataclasses
import shutil
import time
from pathlib import Path

import torch

from bench import common
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
    ap = common.parser(__name__, __doc__)
    common.add_scene(ap, max_steps=2000, steps_help="training steps of every row")
    common.add_strategy(ap, "densification")
    common.add_runs(ap, Path("results/bench_lp3dgs"), "output folder", lpips=False)
    ap.add_argument("--rows", default="lp3dgs-radsplat,lp3dgs-minisplatting,ste-mask,fixed",
                    help="comma-separated rows besides the unpruned one (fixed: LightGaussian and RadSplat at the learned ratio)")
    a = ap.parse_args(argv)

    def config(name: str, **kw) -> TrainConfig:
        return common.train_config(a, a.out / name, max_steps=a.max_steps, strategy=STRATEGIES[a.strategy](),
                                   overwrite=True, **kw)

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
        return common.finished(a.out / name, a.rerun)

    rows = {}
    rows["unpruned"] = done("unpruned") if all(p.is_file() for p in snapshots.values()) else None
    if rows["unpruned"] is None:
        rows["unpruned"] = SnapshotTrainer(config("unpruned"), snapshots).train()
    plan = [
        ("lp3dgs-radsplat", snapshots[lp_at], dict(prune=LP3DGSConfig(score="radsplat"))),
        ("lp3dgs-minisplatting", snapshots[lp_at], dict(prune=LP3DGSConfig(score="minisplatting"))),
        ("ste-mask", snapshots[ste_at], dict(prune=STEMaskConfig())),
    ]
    wanted = set(a.rows.split(","))
    for name, snap, kw in (p for p in plan if p[0] in wanted):
        rows[name] = done(name) or branch(snap, config(name, **kw))
        if rows[name].get("num_gaussians_before_prune") is None:
            raise RuntimeError(f"{name}: the mask never pruned (branch point after its window?)")
    learned = rows["lp3dgs-radsplat"]["learned_prune_ratio"] if "lp3dgs-radsplat" in rows else None
    if "fixed" in wanted and learned and 0.0 < learned < 1.0:
        for score in ("lightgaussian", "radsplat"):
            name = f"{score}@{learned:.2f}"
            rows[name] = done(name) or branch(snapshots[lp_at], config(
                name, prune=PRUNERS[score](ratio=learned, at=(lp.prune_step / a.max_steps,))))

    ref = rows["unpruned"]
    lines = [f"{a.data_dir or 'demo'} (factor {a.data_factor}), {a.strategy}, {a.max_steps} steps; mask window "
             f"{lp.start_step}-{lp.prune_step} (STE {ste.start_step}-{ste.prune_step}); fixed ratios prune at {lp.prune_step}",
             "", "| method | PSNR | ΔPSNR | SSIM | LPIPS | prune ratio | Gaussians | train s |", "|---|---|---|---|---|---|---|---|"]
    for name, m in rows.items():
        ratio = m.get("learned_prune_ratio", m.get("prune_ratio"))
        lp_txt = f"{m['lpips']:.4f}" if m.get("lpips") is not None else "–"
        lines.append(f"| {name} | {m['psnr']:.3f} | {m['psnr'] - ref['psnr']:+.3f} | {m['ssim']:.4f} | {lp_txt} | "
                     f"{'–' if ratio is None else f'{ratio:.3f}'} | {m['num_gaussians']:,} | {m['train_seconds']:.0f} |")
    keys = ("psnr", "ssim", "lpips", "num_gaussians", "num_gaussians_before_prune", "learned_prune_ratio", "prune_ratio",
            "train_seconds", "mask_window")
    common.write_table(a.out, lines, {n: common.pick(m, keys) for n, m in rows.items()})
    return 0
