"""What the benchmarks of scripts/benchmark.py share, so that none repeats another's set-up.

- the options: the scene (--data-dir, --data-factor, --max-steps), --device, the output folder (--out, also
  spelled --out-dir), --lpips / --no-lpips and --rerun, each benchmark with its own defaults;
- in-process training: TrainConfig from those options, a finished run's metrics.json reused unless --rerun;
- `gspruner` subprocesses: the command line (or torchrun's), run with output in log files, peak RSS, wall
  seconds and a time limit, and the line of stderr that says why one failed;
- the files a benchmark leaves: its table printed and written, its numbers as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEVICES = ("auto", "cpu", "cuda")


# -- options -------------------------------------------------------------------------------------
def parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of benchmark `module` (its __name__), its docstring as the help."""
    return argparse.ArgumentParser(prog=f"benchmark.py {module.rpartition('.')[2]}", description=doc,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def add_scene(ap: argparse.ArgumentParser, *, data_dir: str = "optional", data_factor: int | None = 1,
              max_steps: int | None = None, steps_help: str = "training steps of every run") -> None:
    """--data-dir (data_dir: "optional", the built-in demo without it; "required"; "many": any number, the
    demo without one), --data-factor and --max-steps (None: the trainer's default)."""
    formats = "(COLMAP / NeRF-synthetic / instant-ngp)"
    if data_dir == "many":
        ap.add_argument("--data-dir", type=Path, nargs="*", default=[],
                        help=f"scene folders {formats}; none: the built-in demo scene")
    else:
        ap.add_argument("--data-dir", type=Path, default=None, required=data_dir == "required",
                        help=f"scene folder {formats}" + ("" if data_dir == "required" else "; default: the built-in demo scene"))
    ap.add_argument("--data-factor", type=int, default=data_factor, help="image downsampling factor")
    ap.add_argument("--max-steps", type=int, default=max_steps,
                    help=steps_help + ("" if max_steps is not None else " (default: the trainer's)"))


def add_device(ap: argparse.ArgumentParser, default: str = "auto", choices=DEVICES, help: str = "where to run") -> None:
    ap.add_argument("--device", default=default, choices=list(choices), help=help)


def add_out(ap: argparse.ArgumentParser, default: Path | None, help: str) -> None:
    """--out (or --out-dir): the benchmark's folder; default None: a new temporary folder (out_dir)."""
    ap.add_argument("--out", "--out-dir", dest="out", type=Path, default=default,
                    help=help + (" (default: a temporary folder)" if default is None else f" (default: {default})"))


def add_runs(ap: argparse.ArgumentParser, out: Path | None, out_help: str, *, lpips: bool, rerun: bool = True,
             device_help: str = "where to run") -> None:
    """The options of a benchmark that trains or evaluates: --device, --out, --lpips / --no-lpips (default
    `lpips`) and, with `rerun`, --rerun (a finished run is reused without it)."""
    add_device(ap, help=device_help)
    add_out(ap, out, out_help)
    ap.add_argument("--lpips", action=argparse.BooleanOptionalAction, default=lpips,
                    help=f"compute LPIPS (slower; default: {'on' if lpips else 'off'})")
    if rerun:
        ap.add_argument("--rerun", action="store_true", help="re-run runs that finished earlier (default: reuse them)")


def add_strategy(ap: argparse.ArgumentParser, help: str) -> None:
    """--strategy: a densification strategy (not `none`), `default` unless given."""
    from gspruner.strategies import STRATEGIES

    ap.add_argument("--strategy", default="default", choices=[n for n in STRATEGIES if n != "none"], help=help)


def out_dir(a: argparse.Namespace, prefix: str) -> Path:
    """--out, made; without one a new temporary folder named prefix*."""
    out = a.out or Path(tempfile.mkdtemp(prefix=prefix))
    out.mkdir(parents=True, exist_ok=True)
    return out


# -- in-process training -------------------------------------------------------------------------
def train_config(a: argparse.Namespace, result_dir: Path, **kw):
    """A TrainConfig of the scene, device and LPIPS options, quiet unless on a terminal, no render files;
    `kw` adds to and overrides those."""
    from gspruner.config import TrainConfig

    base = dict(data_dir=a.data_dir, data_factor=a.data_factor, device=a.device, progress=sys.stderr.isatty(),
                lpips=a.lpips, save_renders=False)
    return TrainConfig(result_dir=Path(result_dir), **{**base, **kw})


def finished(result_dir: Path, rerun: bool) -> dict | None:
    """metrics.json of a run that finished earlier in result_dir; None when there is none or with --rerun."""
    path = Path(result_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() and not rerun else None


def train(cfg, rerun: bool, trainer=None) -> dict:
    """The run `cfg`: its metrics from an earlier finish (unless rerun), else trained anew (overwriting)."""
    done = finished(cfg.result_dir, rerun)
    if done is not None:
        return done
    if trainer is None:
        from gspruner.trainer import Trainer as trainer
    return trainer(dataclasses.replace(cfg, overwrite=True)).train()


def pick(metrics: dict, keys) -> dict:
    return {k: metrics.get(k) for k in keys}


# -- gspruner subprocesses -----------------------------------------------------------------------
def gspruner_command(*args: str) -> list[str]:
    """`gspruner ARGS` as this interpreter runs it."""
    return [sys.executable, "-m", "gspruner.cli", *args]


def torchrun_command(ranks: int, *args: str) -> list[str]:
    """`gspruner ARGS` on `ranks` local ranks (torchrun --standalone)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
            "-m", "gspruner.cli", *args]


def run_process(cmd: list[str], stdout_path: Path, stderr_path: Path, timeout_s: float | None = None,
                env: dict | None = None) -> dict:
    """Run `cmd` to completion with its output in files (`env` added to this environment); returncode, the
    child's peak RSS (MB), wall seconds, and whether it was interrupted after timeout_s (SIGINT: the trainer
    saves ckpt/last.pt on Ctrl-C, resumable)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})}
    tic = time.perf_counter()
    with Path(stdout_path).open("w") as out, Path(stderr_path).open("w") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG if timeout_s else 0)
            if pid == proc.pid:
                break
            if timeout_s and time.perf_counter() - tic > timeout_s:
                proc.send_signal(signal.SIGINT)
                timed_out = True
                try:
                    pid, status, usage = _wait_for(proc.pid, 60)
                except TimeoutError:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.5)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    return {"returncode": proc.returncode, "peak_rss_mb": usage.ru_maxrss / 1024,  # Linux: ru_maxrss in KiB
            "wall_seconds": time.perf_counter() - tic, "timed_out": timed_out}


def _wait_for(pid: int, seconds: float):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        got, status, usage = os.wait4(pid, os.WNOHANG)
        if got == pid:
            return got, status, usage
        time.sleep(0.2)
    raise TimeoutError


def failure_message(stderr: str) -> str:
    """The line that says why a process failed: a Python exception's last line, the text of tyro's error
    box (joined across its wrapped lines), or else the last non-empty line."""
    from gspruner.cli import box_text

    lines = [line.rstrip() for line in stderr.splitlines()]
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        last = [line for line in lines if line.strip()]
        return last[-1].strip() if last else "failed"
    return box_text(stderr) if stderr.strip() else "failed (no error output)"


# -- result files --------------------------------------------------------------------------------
def write_json(path: Path, data) -> Path:
    Path(path).write_text(json.dumps(data, indent=2) + "\n")
    return Path(path)


def write_table(out: Path, lines: list[str], results, table: str = "table.md",
                results_file: str = "results.json") -> None:
    """Print the table `lines` and write them to OUT/table, the numbers behind them to OUT/results_file."""
    print("\n".join(lines))
    out.mkdir(parents=True, exist_ok=True)
    (out / table).write_text("\n".join(lines) + "\n")
    write_json(out / results_file, results)
