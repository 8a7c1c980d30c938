#!/usr/bin/env python
"""How far one training run moves when its start moves by a float rounding: the noise floor of a same-seed comparison.

Trains the same run (same seed, same backend) several times; every run but the first multiplies the initial
means by (1 + eps * n), n ~ N(0, 1) drawn with its own generator seed, so eps = 1e-7 is about one float32
ulp. Prints each run's test PSNR and Gaussian count and the spread. Two rasterizers that agree to float
rounding (the compiled and the PyTorch CPU backends) cannot be expected to end closer than this spread.

    python scripts/perturbation_spread.py                          # the demo, 1000 steps, eps 1e-7, 4 perturbed runs
    python scripts/perturbation_spread.py --runs 2 --eps 1e-6 --data-dir D --data-factor 8 --max-steps 3000

Runs go one after another; results land in --out/<k>/ (rewritten).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from gspruner.config import TrainConfig
from gspruner.errors import InputError
from gspruner.trainer import Trainer


class PerturbedTrainer(Trainer):
    """A Trainer whose initial means are multiplied by (1 + eps * n), n ~ N(0, 1) from `generator_seed`."""

    def __init__(self, cfg: TrainConfig, eps: float, generator_seed: int):
        super().__init__(cfg)
        self.eps, self.generator_seed = eps, generator_seed

    def _setup(self) -> None:
        super()._setup()
        if self.eps and self.start_step == 0:
            g = torch.Generator().manual_seed(self.generator_seed)
            noise = torch.randn(self.splats["means"].shape, generator=g).to(self.splats["means"].device)
            with torch.no_grad():
                self.splats["means"].mul_(1 + self.eps * noise)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None, help="scene directory (default: the built-in demo)")
    ap.add_argument("--data-factor", type=int, default=1, help="image downsampling factor")
    ap.add_argument("--max-steps", type=int, default=1000, help="training steps of every run")
    ap.add_argument("--eps", type=float, default=1e-7, help="relative perturbation of the initial means (1e-7 ≈ one float32 ulp)")
    ap.add_argument("--runs", type=int, default=4, help="perturbed runs after the unperturbed one")
    ap.add_argument("--seed", type=int, default=0, help="the training seed, the same for every run")
    ap.add_argument("--out", type=Path, default=Path("results/perturbation_spread"), help="run directories go here")
    a = ap.parse_args(argv)
    try:
        if a.runs < 1:
            raise InputError(f"--runs must be ≥ 1, got {a.runs}")
        if not 0.0 < a.eps < 1.0:
            raise InputError(f"--eps must be in (0, 1), got {a.eps}")
        rows = []
        for k in range(a.runs + 1):
            eps = 0.0 if k == 0 else a.eps
            cfg = TrainConfig(data_dir=a.data_dir, data_factor=a.data_factor, max_steps=a.max_steps, seed=a.seed,
                              result_dir=a.out / str(k), device="cpu", progress=False, lpips=False, overwrite=True,
                              save_renders=False)
            m = PerturbedTrainer(cfg, eps, generator_seed=k).train()
            rows.append((k, eps, m["psnr"], m["num_gaussians"]))
            print(f"run {k}: eps {eps:g}  PSNR {m['psnr']:.4f}  Gaussians {m['num_gaussians']:,}", flush=True)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    psnrs = [r[2] for r in rows]
    print(f"PSNR range {max(psnrs) - min(psnrs):.3f} dB, std {statistics.stdev(psnrs):.3f} dB over {len(rows)} runs "
          f"(unperturbed {psnrs[0]:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
