r"""Methods side by side: every method trains on the same scene(s), then is exported and reported.

    python scripts/benchmark.py methods --data-dir ../shared/data/fox --data-factor 8 --max-steps 3000 \
        --methods default,mcmc,fastgs,default+lightgaussian,default+lp3dgs,fastgs+lp3dgs

A method is `strategy[+pruner[@ratio][:option=value]...]`: `gspruner train strategy:STRATEGY [prune:PRUNER
[--prune.ratio RATIO] [--prune.OPTION VALUE]...]` (without @ratio a pruner that takes a ratio gets --prune-ratio,
or its own default), e.g. `fastgs+rounds@0.8:stop-db=0.1`. Each runs as its own
`python -m gspruner.cli train` process, one after another, into OUT/<scene>/<method>/ (the process' peak RSS
is measured with os.wait4), then its checkpoint is exported to ply / compressed-ply / spz
(OUT/<scene>/<method>/exports/). A method whose metrics.json exists is not re-run unless --rerun; one that
fails is recorded with its error (last stderr line) and the benchmark goes on. OUT/<scene>/report.md holds
the table (the `default` method is the reference row) and PNG plots; with several scenes (--data-dir A B …
or --scenes-root) OUT/report.md averages over every scene folder under OUT, and prints the published
Mip-NeRF 360 numbers beside ours when the scenes are Mip-NeRF 360 scenes (see scripts/mipnerf360.sh).

Scenes with their own image factor: `--scene SPEC` (repeatable), SPEC = `demo` (the built-in scene),
`object-demo` (the procedural object scene of gspruner/data/object_demo.py, generated at 128x128 into
OUT/_data/object-demo), or `PATH[:FACTOR]`. The issue's four-scene benchmark:

    python scripts/benchmark.py methods --out results/bench4 --max-steps 3000 --prune-ratio 0.85 \
        --scene demo --scene object-demo --scene ../shared/data/fox:8 --scene ../shared/data/chair_blender:2 \
        --methods default,fastgs,default+lp3dgs,default+lightgaussian,default+rounds,fastgs+rounds@0.66

`mcmc` gets a Gaussian budget (--strategy.cap-max): by default the final count of this scene's
`default` run, so both spend the same number of Gaussians (gsplat's 1,000,000 when there is no default run);
`--mcmc-cap METHOD` takes another method's final count (that method then runs before mcmc), `--mcmc-cap N`
a number. Without --data-dir the built-in demo scene is used (scene name "demo").

Densification methods timed against each other (what scripts/bench_methods.py did; time them on an
otherwise idle machine, and give each CPU rasterizer its own --out, finished runs being reused):

    python scripts/benchmark.py methods --data-dir ../shared/data/fox --data-factor 8 --max-steps 3000 \
        --methods default,fastgs,mcmc --mcmc-cap fastgs --no-lpips [--cpu-backend torch] --out results/bench_methods

With `default` and `fastgs` both finished, the issue-5 checks of fastgs against default are printed after
the scene's report (time ratio ≥ 3×, PSNR within 0.3 dB, at most a quarter of the Gaussians).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from bench import common
from gspruner.export.formats import format_suffix
from gspruner.report import (
    BENCHMARK_FILE, EXPORT_FORMATS, METHOD_RUN_FILE, REFERENCE_METHOD, read_json, write_aggregate_report,
    write_scene_report,
)

DEFAULT_METHODS = "default,mcmc,fastgs,default+lightgaussian,default+lp3dgs,fastgs+lp3dgs"


@dataclass
class MethodSpec:
    """`strategy[+pruner[@ratio][:option=value]...]` as written on the command line (@ratio: this method's
    --prune.ratio; each option=value: --prune.option value)."""

    name: str
    strategy: str
    pruner: str | None
    ratio: float | None = None
    options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> "MethodSpec":
        head, *option_texts = text.strip().split(":")
        options = []
        for option in option_texts:
            key, eq, value = option.partition("=")
            if not (eq and value and re.fullmatch(r"[a-z][a-z0-9-]*", key)):
                raise ValueError(f"method {text!r}: expected :option=value after the pruner, got {option!r}")
            options.append((key, value))
        body, at, ratio_text = head.partition("@")
        parts = [p.strip() for p in body.split("+")]
        if len(parts) > 2 or not all(parts):
            raise ValueError(f"method {text!r}: expected strategy, strategy+pruner or strategy+pruner@ratio")
        ratio = None
        if at:
            try:
                ratio = float(ratio_text)
            except ValueError:
                ratio = -1.0
            if len(parts) != 2 or not 0.0 < ratio < 1.0:
                raise ValueError(f"method {text!r}: @ratio follows a pruner and lies in (0, 1)")
        if options and len(parts) != 2:
            raise ValueError(f"method {text!r}: :option=value follows a pruner")
        name = "+".join(parts) + (f"@{ratio_text.strip()}" if at else "") + "".join(f":{k}={v}" for k, v in options)
        return cls(name=name, strategy=parts[0], pruner=parts[1] if len(parts) == 2 else None, ratio=ratio,
                   options=tuple(options))


def scene_name(data_dir: Path | None) -> str:
    """The scene folder's name (links not followed: data/garden -> a cache still reports "garden")."""
    return "demo" if data_dir is None else Path(os.path.normpath(Path(data_dir).absolute())).name


GENERATED_SCENES = ("object-demo",)  # --scene names generated into OUT/_data/


@dataclass
class SceneArg:
    """One `--scene`: where the data is (None: the built-in demo, or a generated scene) and its image factor."""

    data_dir: Path | None
    data_factor: int | None = None  # None: --data-factor
    generated: str | None = None

    @classmethod
    def parse(cls, text: str) -> "SceneArg":
        if text == "demo":
            return cls(None)
        if text in GENERATED_SCENES:
            return cls(None, generated=text)
        path, sep, factor = text.rpartition(":")
        if sep and factor.isdigit() and path:
            if int(factor) < 1:
                raise ValueError(f"--scene {text!r}: the image factor must be at least 1")
            return cls(Path(path), int(factor))
        return cls(Path(text))

    def resolve(self, out: Path) -> Path | None:
        """The data folder to train on, generating a generated scene first (once)."""
        if self.generated == "object-demo":
            from gspruner.data import ensure_object_demo_scene

            return ensure_object_demo_scene(out / "_data" / "object-demo", width=128, height=128, n_train=40, n_test=8)
        return self.data_dir


def is_scene_dir(path: Path) -> bool:
    return (path / "sparse").is_dir() or any(path.glob("transforms*.json"))


def takes_ratio(pruner: str) -> bool:
    """Whether the registered pruner has a `ratio` option (those that learn their ratio do not)."""
    from gspruner.pruning import PRUNERS

    return "ratio" in {f.name for f in dataclasses.fields(PRUNERS[pruner])}


def train_command(spec: MethodSpec, data_dir: Path | None, result_dir: Path, a: argparse.Namespace,
                  mcmc_cap: int | None, resume: bool) -> list[str]:
    cmd = common.gspruner_command("train", "--result-dir", str(result_dir), f"strategy:{spec.strategy}", "--data-factor", str(a.data_factor),
                                  "--test-every", str(a.test_every), "--device", a.device, "--no-progress",
                                  "--resume" if resume else "--overwrite")
    if data_dir is not None:
        cmd += ["--data-dir", str(data_dir)]
    if a.max_steps is not None:
        cmd += ["--max-steps", str(a.max_steps)]
    if spec.pruner is not None:
        cmd += [f"prune:{spec.pruner}"]
        ratio = spec.ratio if spec.ratio is not None else a.prune_ratio
        if ratio is not None and takes_ratio(spec.pruner):  # learned-ratio pruners have no ratio option
            cmd += ["--prune.ratio", str(ratio)]
        for key, value in spec.options:
            cmd += [f"--prune.{key}", value]
    if spec.strategy == "mcmc" and mcmc_cap is not None:
        cmd += ["--strategy.cap-max", str(mcmc_cap)]
    if not a.lpips:
        cmd.append("--no-lpips")
    return cmd + shlex.split(a.train_args)


def mcmc_cap_for(scene_dir: Path, a: argparse.Namespace) -> tuple[int | None, str]:
    """The --strategy.cap-max for mcmc, and a note saying where it came from."""
    if a.mcmc_cap.isdigit():
        return int(a.mcmc_cap), f"mcmc cap {int(a.mcmc_cap):,} (--mcmc-cap)"
    ref = read_json(scene_dir / a.mcmc_cap / "metrics.json")
    if ref and ref.get("num_gaussians"):
        n = int(ref["num_gaussians"])
        return n, f"mcmc cap {n:,} = the final Gaussian count of this scene's {a.mcmc_cap} run"
    return None, f"mcmc cap: gsplat's default 1,000,000 (no finished {a.mcmc_cap} run to match)"


def export_method(method_dir: Path, scene: str, rerun: bool, record: dict) -> None:
    """ply / compressed-ply / spz from ckpt/last.pt into method_dir/exports/, sizes into `record`."""
    exports, errors = record.setdefault("exports", {}), {}
    ckpt = method_dir / "ckpt" / "last.pt"
    for fmt in EXPORT_FORMATS:
        path = method_dir / "exports" / f"{scene}{format_suffix(fmt)}"
        if not rerun and path.is_file() and fmt in exports:
            continue
        try:
            from gspruner.export import ExportConfig, run_export

            with contextlib.redirect_stdout(io.StringIO()):  # its size table: the report has the sizes
                result = run_export(ExportConfig(ckpt=ckpt, format=fmt, out=path))
            row = result["rows"][0]
            exports[fmt] = {"path": row["path"], "mb": row["mb"], "bytes_per_splat": row["bytes_per_splat"]}
        except Exception as exc:  # a broken exporter is one cell of the table, not the end of the benchmark
            exports.pop(fmt, None)
            errors[fmt] = f"{type(exc).__name__}: {exc}".splitlines()[0]
    record["export_errors"] = errors


def resumable(method_dir: Path, spec: MethodSpec, data_dir: Path | None, a: argparse.Namespace) -> bool:
    """An interrupted run of this very configuration (its config.yml agrees) left a checkpoint to continue."""
    import yaml

    from gspruner.config import TrainConfig

    if not (method_dir / "ckpt" / "last.pt").is_file():
        return False
    try:
        saved = yaml.safe_load((method_dir / "config.yml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    steps = TrainConfig(data_dir=data_dir, max_steps=a.max_steps).steps()
    expected = {"max_steps": steps, "data_factor": a.data_factor, "test_every": a.test_every}
    names = {k: saved[k].get("name") if isinstance(saved.get(k), dict) else None for k in ("strategy", "prune")}
    return all(saved.get(k) == v for k, v in expected.items()) and names == {"strategy": spec.strategy,
                                                                             "prune": spec.pruner or "none"}


def backend_env(a: argparse.Namespace) -> dict:
    """--cpu-backend as the training processes' environment."""
    from gspruner.render.compiled import BACKEND_ENV

    return {BACKEND_ENV: a.cpu_backend} if a.cpu_backend else {}


def run_method(spec: MethodSpec, data_dir: Path | None, scene_dir: Path, a: argparse.Namespace) -> dict:
    """Train (unless finished), export, and write method_dir/benchmark_run.json; returns that record."""
    method_dir = scene_dir / spec.name
    record_path = method_dir / METHOD_RUN_FILE
    metrics_path = method_dir / "metrics.json"
    old = read_json(record_path) or {}
    finished = metrics_path.is_file()
    if finished and not a.rerun:
        record = {**old, "method": spec.name, "reused": True}
        print(f"  {spec.name}: finished earlier (metrics.json present), not re-run", flush=True)
    else:
        if a.rerun and finished:
            metrics_path.unlink()  # a rerun that fails must not leave the old metrics standing
        method_dir.mkdir(parents=True, exist_ok=True)
        mcmc_cap, cap_note = mcmc_cap_for(scene_dir, a) if spec.strategy == "mcmc" else (None, None)
        resume = not a.rerun and resumable(method_dir, spec, data_dir, a)
        cmd = train_command(spec, data_dir, method_dir, a, mcmc_cap, resume)
        print(f"  {spec.name}: {'resuming' if resume else 'training'} ...", flush=True)
        proc = common.run_process(cmd, method_dir / "train_stdout.log", method_dir / "train_stderr.log",
                                  a.timeout_minutes * 60 if a.timeout_minutes else None, env=backend_env(a))
        record = {"method": spec.name, "command": cmd[1:], "reused": False, **proc,
                  "notes": [cap_note] if cap_note else []}
        if proc["returncode"] == 0 and metrics_path.is_file():
            record["error"] = None
        else:
            stderr = (method_dir / "train_stderr.log").read_text(errors="replace")
            if proc["timed_out"]:
                saved = (method_dir / "ckpt" / "last.pt").is_file()
                record["error"] = f"timed out after {a.timeout_minutes:g} min" + (
                    "; ckpt/last.pt saved, the same command resumes it" if saved else "")
            else:
                record["error"] = common.failure_message(stderr)
    if metrics_path.is_file():
        export_method(method_dir, scene_dir.name, a.rerun, record)
        m = read_json(metrics_path) or {}
        print(f"  {spec.name}: PSNR {m.get('psnr', float('nan')):.2f}, {m.get('num_gaussians')} Gaussians, "
              f"{m.get('train_seconds', float('nan')):.0f} s", flush=True)
    else:
        print(f"  {spec.name}: FAILED: {record.get('error')}", flush=True)
    method_dir.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps(record, indent=2))
    return record


def run_scene(data_dir: Path | None, specs: list[MethodSpec], a: argparse.Namespace) -> Path:
    scene = scene_name(data_dir)
    scene_dir = a.out / scene
    scene_dir.mkdir(parents=True, exist_ok=True)
    info = {"scene": scene, "data_dir": None if data_dir is None else str(data_dir), "data_factor": a.data_factor,
            "test_every": a.test_every, "max_steps": a.max_steps, "device": a.device,
            "methods": [s.name for s in specs], "reference": REFERENCE_METHOD}
    if a.cpu_backend:
        info["cpu_backend"] = a.cpu_backend
    (scene_dir / BENCHMARK_FILE).write_text(json.dumps(info, indent=2))
    print(f"scene {scene}: {len(specs)} methods -> {scene_dir}", flush=True)
    for spec in run_order(specs, a):
        run_method(spec, data_dir, scene_dir, a)
    return report_scene(scene_dir)


def run_order(specs: list[MethodSpec], a: argparse.Namespace) -> list[MethodSpec]:
    """The reference first, then the method whose final Gaussian count is mcmc's budget, then the rest."""
    return sorted(specs, key=lambda s: (s.name != REFERENCE_METHOD, s.name != a.mcmc_cap))


def report_scene(scene_dir: Path) -> Path:
    report = write_scene_report(scene_dir)
    print(f"scene {scene_dir.name}: {report}", flush=True)
    for line in fastgs_checks(scene_dir):
        print(line, flush=True)
    return report


def fastgs_checks(scene_dir: Path) -> list[str]:
    """Issue 5 on CPU, when this scene's default and fastgs runs finished: fastgs ≥ 3× faster than default,
    PSNR within 0.3 dB, at most a quarter of the Gaussians."""
    d, f = (read_json(scene_dir / name / "metrics.json") for name in (REFERENCE_METHOD, "fastgs"))
    if not d or not f:
        return []
    speed, dpsnr = d["train_seconds"] / f["train_seconds"], f["psnr"] - d["psnr"]
    frac = f["num_gaussians"] / d["num_gaussians"]
    ok = lambda c: "PASS" if c else "FAIL"  # noqa: E731
    return [f"- time ratio default/fastgs: {speed:.2f}× (≥ 3×: {ok(speed >= 3)})",
            f"- PSNR fastgs − default: {dpsnr:+.3f} dB (≥ −0.3 dB: {ok(dpsnr >= -0.3)})",
            f"- Gaussians fastgs/default: {frac:.3f} (≤ 0.25: {ok(frac <= 0.25)})"]


def parse_args(argv=None) -> argparse.Namespace:
    ap = common.parser(__name__, __doc__)
    common.add_scene(ap, data_dir="many", steps_help="training steps per method")
    ap.add_argument("--scene", action="append", default=[], metavar="SPEC",
                    help="a scene with its own image factor: demo, object-demo (generated) or PATH[:FACTOR]; repeatable")
    ap.add_argument("--scenes-root", type=Path, help="benchmark every scene folder directly under this folder")
    ap.add_argument("--methods", default=DEFAULT_METHODS, help="comma-separated strategy[+pruner[@ratio][:option=value]...] specs")
    ap.add_argument("--test-every", type=int, default=8, help="every N-th image is a test image")
    common.add_runs(ap, Path("results/benchmark"), "output root", lpips=True, device_help="where to train")
    ap.add_argument("--mcmc-cap", default=REFERENCE_METHOD,
                    help="mcmc Gaussian budget: an integer, or a method whose final count it takes (default: "
                         f"{REFERENCE_METHOD}; that method runs before mcmc)")
    ap.add_argument("--cpu-backend", choices=["compiled", "torch"], default=None,
                    help="CPU rasterizer of every run (sets GSPRUNER_CPU_BACKEND; default: the environment's, "
                         "compiled unless set); give each backend its own --out")
    ap.add_argument("--prune-ratio", type=float, help="--prune.ratio for every pruner that has one (default: each pruner's own)")
    ap.add_argument("--train-args", default="", help="extra `gspruner train` flags for every method (one string)")
    ap.add_argument("--timeout-minutes", type=float, default=0,
                    help="interrupt a method after this long (it saves a checkpoint; 0: no limit)")
    ap.add_argument("--published", default="auto", choices=["auto", "mipnerf360", "none"],
                    help="published numbers in the aggregate report (auto: when every scene is a Mip-NeRF 360 scene)")
    ap.add_argument("--report-only", action="store_true", help="only rebuild the reports from the results under --out")
    a = ap.parse_args(argv)
    if re.fullmatch(r"\s*[+-]?\d+\s*", a.mcmc_cap):
        if int(a.mcmc_cap) < 1:
            ap.error(f"--mcmc-cap: expected a positive integer or a method, got {a.mcmc_cap!r}")
        a.mcmc_cap = str(int(a.mcmc_cap))
    return a


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        specs = [MethodSpec.parse(m) for m in a.methods.split(",") if m.strip()]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        scenes = [SceneArg(d) for d in a.data_dir] + [SceneArg.parse(t) for t in a.scene]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if a.scenes_root is not None:
        if not a.scenes_root.is_dir():
            print(f"error: {a.scenes_root}: --scenes-root is not a folder", file=sys.stderr)
            return 2
        scenes += [SceneArg(p) for p in sorted(a.scenes_root.iterdir()) if p.is_dir() and is_scene_dir(p)]
    if not scenes:
        scenes = [SceneArg(None)]
    names = [s.generated or scene_name(s.data_dir) for s in scenes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        print(f"error: several data dirs are named {', '.join(duplicates)}; scene folders are named after them",
              file=sys.stderr)
        return 2
    missing = [s.data_dir for s in scenes if s.data_dir is not None and not s.data_dir.is_dir()]
    if missing:
        print(f"error: {missing[0]}: no such folder", file=sys.stderr)
        return 2
    from gspruner.published import MIPNERF360_SCENES
    from gspruner.report import scene_dirs

    a.out.mkdir(parents=True, exist_ok=True)
    if a.report_only:  # rebuild from what is on disk; benchmark.json keeps the settings the runs had
        for scene_dir in scene_dirs(a.out):
            report_scene(scene_dir)
    else:
        for scene in scenes:
            per_scene = argparse.Namespace(**{**vars(a), "data_factor": scene.data_factor or a.data_factor})
            run_scene(scene.resolve(a.out), specs, per_scene)
    all_scenes = scene_dirs(a.out)
    if not all_scenes:
        print(f"error: {a.out}: no benchmark scene folders", file=sys.stderr)
        return 2
    if len(all_scenes) > 1 or a.published == "mipnerf360" or (
            a.published == "auto" and all(s.name in MIPNERF360_SCENES for s in all_scenes)):
        print(f"aggregate over {len(all_scenes)} scenes: {write_aggregate_report(a.out, a.published)}")
    return 0

