"""How far one training run moves when its start moves by a float rounding: the noise floor of a same-seed comparison.

Trains the same run (same seed, same backend) several times; every run but the first multiplies the initial
means by (1 + eps * n), n ~ N(0, 1) drawn with its own generator seed, so eps = 1e-7 is about one float32
ulp. Prints each run's test PSNR and Gaussian count and the spread. Two rasterizers that agree to float
rounding (the compiled and the PyTorch CPU backends) cannot be expected to end closer than this spread.
--torch also trains the unperturbed run on the PyTorch rasterizer (GSPRUNER_CPU_BACKEND=torch) and prints
its distance from run 0 beside the spread. Training options after `--` go to every run (`strategy:none`
trains a fixed set of Gaussians: no densification decision can amplify a rounding).

    python scripts/benchmark.py spread                          # the demo, 1000 steps, eps 1e-7, 4 perturbed runs
    python scripts/benchmark.py spread --runs 2 --eps 1e-6 --data-dir D --data-factor 8 --max-steps 3000
    python scripts/benchmark.py spread --torch -- strategy:none # both backends, no densification

Runs go one after another; results land in --out/<k>/ and --out/torch/ (rewritten).
"""

from __future__ import annotations

import os
import statistics
import sys
from pathlib import Path
from unittest import mock

import torch

from bench import common
from gspruner.cli import parse
from gspruner.config import TrainConfig, train_cli_type
from gspruner.errors import InputError
from gspruner.render.compiled import BACKEND_ENV
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
    argv = list(sys.argv[1:] if argv is None else argv)
    train_args = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = common.parser(__name__, __doc__)
    common.add_scene(ap, max_steps=1000)
    ap.add_argument("--eps", type=float, default=1e-7, help="relative perturbation of the initial means (1e-7 ≈ one float32 ulp)")
    ap.add_argument("--runs", type=int, default=4, help="perturbed runs after the unperturbed one")
    ap.add_argument("--seed", type=int, default=0, help="the training seed, the same for every run")
    ap.add_argument("--torch", action="store_true",
                    help="also train the unperturbed run on the PyTorch CPU rasterizer and compare it with run 0")
    common.add_out(ap, Path("results/perturbation_spread"), "run directories go here")
    a = ap.parse_args(argv)
    try:
        if a.runs < 1:
            raise InputError(f"--runs must be ≥ 1, got {a.runs}")
        if not 0.0 < a.eps < 1.0:
            raise InputError(f"--eps must be in (0, 1), got {a.eps}")

        def config(name: str) -> TrainConfig:
            scene = ["--data-dir", str(a.data_dir)] if a.data_dir is not None else []
            return parse(train_cli_type(), train_args + scene + [
                "--data-factor", str(a.data_factor), "--max-steps", str(a.max_steps), "--seed", str(a.seed),
                "--result-dir", str(a.out / name), "--device", "cpu", "--no-progress", "--no-lpips", "--overwrite",
                "--no-save-renders"], prog="benchmark.py spread --")

        config("0")  # bad training options: one error line before anything runs
        rows = []
        for k in range(a.runs + 1):
            eps = 0.0 if k == 0 else a.eps
            m = PerturbedTrainer(config(str(k)), eps, generator_seed=k).train()
            rows.append((k, eps, m["psnr"], m["num_gaussians"]))
            print(f"run {k}: eps {eps:g}  PSNR {m['psnr']:.4f}  Gaussians {m['num_gaussians']:,}  "
                  f"{m['train_seconds']:.1f} s", flush=True)
        torch_run = None
        if a.torch:
            with mock.patch.dict(os.environ, {BACKEND_ENV: "torch"}):  # the caller's backend again afterwards
                torch_run = PerturbedTrainer(config("torch"), 0.0, generator_seed=0).train()
            print(f"torch: eps 0  PSNR {torch_run['psnr']:.4f}  Gaussians {torch_run['num_gaussians']:,}  "
                  f"{torch_run['train_seconds']:.1f} s", flush=True)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    psnrs = [r[2] for r in rows]
    print(f"PSNR range {max(psnrs) - min(psnrs):.3f} dB, std {statistics.stdev(psnrs):.3f} dB over {len(rows)} runs "
          f"(unperturbed {psnrs[0]:.4f})")
    if torch_run is not None:
        inside = min(psnrs) <= torch_run["psnr"] <= max(psnrs)
        print(f"torch - run 0: {torch_run['psnr'] - psnrs[0]:+.3f} dB ({'inside' if inside else 'outside'} the "
              f"perturbed runs' range {min(psnrs):.4f}..{max(psnrs):.4f})")
    return 0
