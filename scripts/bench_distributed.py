#!/usr/bin/env python
"""One process against several ranks on the same scene: steps per second and test PSNR side by side.

Runs, one after another (time them on an otherwise idle machine):
    1 process, --threads threads        gspruner train ...
    1 process, 1 thread                 OMP_NUM_THREADS=1 gspruner train ...
    N ranks, 1 thread each              torchrun --standalone --nproc_per_node N -m gspruner.cli train ...
    N ranks, --max-steps / N steps      the same number of training views as one process (gsplat's steps_scaler)
and prints train seconds, steps/s, test PSNR and Gaussians of each. Without --data-dir the built-in demo.

    python scripts/bench_distributed.py                                    # the demo, 1000 steps
    python scripts/bench_distributed.py --data-dir ../shared/data/fox --data-factor 8 --max-steps 1000

On a CPU with as many cores as ranks this measures whether sharding pays for its exchange; the point of
the CPU path is correctness (tests/test_distributed.py), the gain is on several GPUs or machines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def run(label: str, cmd: list[str], threads: int, result_dir: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"error: {label} failed:\n{proc.stderr[-2000:]}")
    m = json.loads((result_dir / "metrics.json").read_text())
    return {"run": label, "train_s": m["train_seconds"], "steps_per_s": m["steps"] / m["train_seconds"],
            "psnr": m["psnr"], "gaussians": m["num_gaussians"], "per_rank": m.get("gaussians_per_rank")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None, help="the scene (default: the built-in demo)")
    ap.add_argument("--data-factor", type=int, default=None, help="image downsampling")
    ap.add_argument("--max-steps", type=int, default=1000, help="training steps of every run")
    ap.add_argument("--ranks", type=int, default=2, help="ranks of the sharded run")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of the first one-process run")
    ap.add_argument("--out-dir", type=Path, default=None, help="keep the runs here (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None, help="also write the table here")
    args = ap.parse_args()

    out = args.out_dir or Path(tempfile.mkdtemp(prefix="bench_distributed_"))
    common = ["--max-steps", str(args.max_steps), "--no-progress", "--device", "cpu", "--overwrite", "--no-lpips"]
    if args.data_dir:
        common += ["--data-dir", str(args.data_dir)]
    if args.data_factor:
        common += ["--data-factor", str(args.data_factor)]
    train = [sys.executable, "-m", "gspruner.cli", "train"]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(args.ranks),
                "-m", "gspruner.cli", "train"]
    rows = [
        run(f"1 process, {args.threads} threads", train + common + ["--result-dir", str(out / "single")], args.threads,
            out / "single"),
        run("1 process, 1 thread", train + common + ["--result-dir", str(out / "single1")], 1, out / "single1"),
        run(f"{args.ranks} ranks, 1 thread each", torchrun + common + ["--result-dir", str(out / "ranks")], 1,
            out / "ranks"),
    ]
    # the same number of views as the one-process runs: gsplat's steps_scaler = 1 / ranks
    same_views = [a if a != str(args.max_steps) else str(args.max_steps // args.ranks) for a in common]
    rows.append(run(f"{args.ranks} ranks, {args.max_steps // args.ranks} steps", torchrun + same_views +
                    ["--result-dir", str(out / "ranks_scaled")], 1, out / "ranks_scaled"))
    print(f"{args.data_dir or 'demo'}: {args.max_steps} steps, CPU ({os.cpu_count()} cores)")
    print(f"{'run':<28} {'train s':>9} {'steps/s':>8} {'PSNR':>8} {'Gaussians':>10}  per rank")
    for r in rows:
        print(f"{r['run']:<28} {r['train_s']:>9.1f} {r['steps_per_s']:>8.2f} {r['psnr']:>8.3f} {r['gaussians']:>10}"
              f"  {r['per_rank'] or ''}")
    base = rows[1]["steps_per_s"]
    print(f"{args.ranks} ranks / 1 process (1 thread each): {rows[2]['steps_per_s'] / base:.2f}× steps/s, "
          f"{args.ranks * rows[2]['steps_per_s'] / base:.2f}× views/s (a step of {args.ranks} ranks renders {args.ranks} views)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
