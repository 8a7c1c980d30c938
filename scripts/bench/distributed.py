"""Sharded training, one process against several ranks on the same scene: steps per second and test PSNR side by side.

Runs, one after another (time them on an otherwise idle machine):
    1 process, --threads threads        gspruner train ...
    1 process, 1 thread                 OMP_NUM_THREADS=1 gspruner train ...
    N ranks, 1 thread each              torchrun --standalone --nproc_per_node N -m gspruner.cli train ...
    N ranks, --max-steps / N steps      the same number of training views as one process (gsplat's steps_scaler)
and prints train seconds, steps/s, test PSNR and Gaussians of each. Without --data-dir the built-in demo.

    python scripts/benchmark.py distributed                                # the demo, 1000 steps
    python scripts/benchmark.py distributed --data-dir ../shared/data/fox --data-factor 8 --max-steps 1000

On a CPU with as many cores as ranks this measures whether sharding pays for its exchange; the point of
the CPU path is correctness (tests/test_distributed.py), the gain is on several GPUs or machines.
"""

from __future__ import annotations

import os
from pathlib import Path

from bench import common


def run(label: str, cmd: list[str], threads: int, result_dir: Path) -> dict:
    """`cmd` (training into result_dir) with `threads` OpenMP threads; its row of the table."""
    result_dir.mkdir(parents=True, exist_ok=True)
    logs = result_dir / "train_stdout.log", result_dir / "train_stderr.log"
    if common.run_process(cmd, *logs, env={"OMP_NUM_THREADS": str(threads)})["returncode"] != 0:
        raise SystemExit(f"error: {label} failed: {common.failure_message(logs[1].read_text(errors='replace'))} "
                         f"(see {logs[1]})")
    m = common.finished(result_dir, rerun=False)
    return {"run": label, "train_s": m["train_seconds"], "steps_per_s": m["steps"] / m["train_seconds"],
            "psnr": m["psnr"], "gaussians": m["num_gaussians"], "per_rank": m.get("gaussians_per_rank")}


def main(argv=None) -> int:
    ap = common.parser(__name__, __doc__)
    common.add_scene(ap, data_factor=None, max_steps=1000)
    ap.add_argument("--ranks", type=int, default=2, help="ranks of the sharded run")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads of the first one-process run")
    common.add_out(ap, None, "keep the runs here")
    ap.add_argument("--json", type=Path, default=None, help="also write the table here")
    args = ap.parse_args(argv)

    out = common.out_dir(args, "bench_distributed_")
    scene = ["--data-dir", str(args.data_dir)] if args.data_dir else []
    scene += ["--data-factor", str(args.data_factor)] if args.data_factor else []

    def flags(steps: int, name: str) -> list[str]:
        return ["--max-steps", str(steps), "--no-progress", "--device", "cpu", "--overwrite", "--no-lpips", *scene,
                "--result-dir", str(out / name)]

    train, torchrun = common.gspruner_command("train"), common.torchrun_command(args.ranks, "train")
    steps = args.max_steps
    rows = [
        run(f"1 process, {args.threads} threads", train + flags(steps, "single"), args.threads, out / "single"),
        run("1 process, 1 thread", train + flags(steps, "single1"), 1, out / "single1"),
        run(f"{args.ranks} ranks, 1 thread each", torchrun + flags(steps, "ranks"), 1, out / "ranks"),
        # the same number of views as the one-process runs: gsplat's steps_scaler = 1 / ranks
        run(f"{args.ranks} ranks, {steps // args.ranks} steps", torchrun + flags(steps // args.ranks, "ranks_scaled"), 1,
            out / "ranks_scaled"),
    ]
    print(f"{args.data_dir or 'demo'}: {args.max_steps} steps, CPU ({os.cpu_count()} cores)")
    print(f"{'run':<28} {'train s':>9} {'steps/s':>8} {'PSNR':>8} {'Gaussians':>10}  per rank")
    for r in rows:
        print(f"{r['run']:<28} {r['train_s']:>9.1f} {r['steps_per_s']:>8.2f} {r['psnr']:>8.3f} {r['gaussians']:>10}"
              f"  {r['per_rank'] or ''}")
    base = rows[1]["steps_per_s"]
    print(f"{args.ranks} ranks / 1 process (1 thread each): {rows[2]['steps_per_s'] / base:.2f}× steps/s, "
          f"{args.ranks * rows[2]['steps_per_s'] / base:.2f}× views/s (a step of {args.ranks} ranks renders {args.ranks} views)")
    if args.json:
        common.write_json(args.json, rows)
    return 0
