"""scripts/benchmark.py: the entry point's dispatch; `methods`: method specs -> train flags, error lines,
resumability, a failing method, end to end; the other benchmarks at tiny size, as subprocesses."""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_report import table_rows, write_run

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
_spec = importlib.util.spec_from_file_location("benchmark_script", _SCRIPT)
benchmark = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(benchmark)  # puts scripts/ on sys.path: the benchmarks are the package `bench`
methods = benchmark.load("methods")
from bench import common  # noqa: E402


def args(**kw) -> argparse.Namespace:
    return methods.parse_args([]) if not kw else argparse.Namespace(**{**vars(methods.parse_args([])), **kw})


def flag_value(cmd: list[str], flag: str):
    return cmd[cmd.index(flag) + 1] if flag in cmd else None


def test_method_spec_to_train_flags(tmp_path):
    spec = methods.MethodSpec.parse("fastgs+lp3dgs")
    assert (spec.strategy, spec.pruner, spec.name) == ("fastgs", "lp3dgs", "fastgs+lp3dgs")
    a = args(max_steps=500, data_factor=8, prune_ratio=0.5)
    cmd = methods.train_command(spec, Path("/data/fox"), tmp_path / "m", a, None, resume=False)
    assert cmd[1:4] == ["-m", "gspruner.cli", "train"]
    assert "strategy:fastgs" in cmd and "prune:lp3dgs" in cmd
    assert flag_value(cmd, "--max-steps") == "500" and flag_value(cmd, "--data-factor") == "8"
    assert flag_value(cmd, "--data-dir") == "/data/fox" and "--overwrite" in cmd and "--no-progress" in cmd
    assert "--prune.ratio" not in cmd  # lp3dgs learns its ratio
    lg = methods.train_command(methods.MethodSpec.parse("default+lightgaussian"), None, tmp_path / "m", a, None,
                                 resume=True)
    assert "prune:lightgaussian" in lg and flag_value(lg, "--prune.ratio") == "0.5"
    assert "--resume" in lg and "--data-dir" not in lg
    plain = methods.train_command(methods.MethodSpec.parse("mcmc"), None, tmp_path / "m", a, 1234, resume=False)
    assert not any(c.startswith("prune:") for c in plain) and flag_value(plain, "--strategy.cap-max") == "1234"
    at = methods.MethodSpec.parse("fastgs+rounds@0.66")
    assert (at.name, at.strategy, at.pruner, at.ratio) == ("fastgs+rounds@0.66", "fastgs", "rounds", 0.66)
    assert flag_value(methods.train_command(at, None, tmp_path / "m", a, None, resume=False), "--prune.ratio") == "0.66"
    opt = methods.MethodSpec.parse("fastgs+rounds@0.8:stop-db=0.1:score=pup-scale")
    assert (opt.name, opt.ratio, opt.options) == ("fastgs+rounds@0.8:stop-db=0.1:score=pup-scale", 0.8,
                                                  (("stop-db", "0.1"), ("score", "pup-scale")))
    cmd = methods.train_command(opt, None, tmp_path / "m", a, None, resume=False)
    assert flag_value(cmd, "--prune.stop-db") == "0.1" and flag_value(cmd, "--prune.score") == "pup-scale"
    for bad in ("a+b+c", "+x", "", "default@0.5", "default+rounds@1.5", "default+rounds@x", "default:x=1",
                "default+rounds:stop-db", "default+rounds:=1", "default+rounds:Score=x"):
        with pytest.raises(ValueError):
            methods.MethodSpec.parse(bad)


def test_scene_specs(tmp_path):
    fox = methods.SceneArg.parse("../data/fox:8")
    assert (fox.data_dir, fox.data_factor, fox.generated) == (Path("../data/fox"), 8, None)
    assert methods.SceneArg.parse("/data/chair").data_factor is None  # --data-factor then
    assert methods.SceneArg.parse("demo").data_dir is None and methods.SceneArg.parse("demo").generated is None
    obj = methods.SceneArg.parse("object-demo")
    assert obj.generated == "object-demo"
    with pytest.raises(ValueError, match="at least 1"):
        methods.SceneArg.parse("/data/fox:0")
    assert methods.main(["--scene", "/data/fox:0", "--out", str(tmp_path / "o")]) == 2
    assert methods.main(["--scene", str(tmp_path / "missing") + ":4", "--out", str(tmp_path / "o")]) == 2


def test_mcmc_cap_defaults_to_the_default_runs_count(tmp_path):
    scene = tmp_path / "fox"
    assert methods.mcmc_cap_for(scene, args())[0] is None  # gsplat's 1M when there is no default run
    write_run(scene / "default", psnr=25.0, seconds=10.0, gaussians=43210, ply_mb=1.0)
    cap, note = methods.mcmc_cap_for(scene, args())
    assert cap == 43210 and "default run" in note
    assert methods.mcmc_cap_for(scene, args(mcmc_cap="5000"))[0] == 5000
    # another method's count (bench_methods' rule: fastgs's), that method trained before mcmc
    write_run(scene / "fastgs", psnr=24.9, seconds=2.0, gaussians=2000, ply_mb=0.5)
    a = methods.parse_args(["--mcmc-cap", "fastgs"])
    specs = [methods.MethodSpec.parse(m) for m in ("mcmc", "default+opacity", "fastgs", "default")]
    assert [s.name for s in methods.run_order(specs, a)] == ["default", "fastgs", "mcmc", "default+opacity"]
    assert methods.mcmc_cap_for(scene, a)[0] == 2000 and methods.parse_args(["--mcmc-cap", "+7"]).mcmc_cap == "7"
    with pytest.raises(SystemExit):
        methods.parse_args(["--mcmc-cap", "0"])
    assert methods.fastgs_checks(scene) == ["- time ratio default/fastgs: 5.00× (≥ 3×: PASS)",
                                            "- PSNR fastgs − default: -0.100 dB (≥ −0.3 dB: PASS)",
                                            "- Gaussians fastgs/default: 0.046 (≤ 0.25: PASS)"]
    assert methods.backend_env(methods.parse_args(["--cpu-backend", "torch"])) == {"GSPRUNER_CPU_BACKEND": "torch"}


def test_failure_message_picks_the_reason():
    tyro_box = (
        "╭─ Invalid choice ──────────────────────────────╮\n"
        "│ invalid choice 'bogus' for argument           │\n"
        "│ '--strategy'. Expected one of ('default').    │\n"
        "│ ───────────────────────────────────────────── │\n"
        "│ For full helptext, run cli.py train --help    │\n"
        "╰───────────────────────────────────────────────╯\n")
    assert common.failure_message(tyro_box) == (
        "invalid choice 'bogus' for argument '--strategy'. Expected one of ('default').")
    traceback = "Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: out of memory\n\n"
    assert common.failure_message(traceback) == "RuntimeError: out of memory"
    assert common.failure_message("loading\nerror: data/x: no training images\n") == "error: data/x: no training images"
    assert common.failure_message("") == "failed (no error output)"


def test_resumable_only_for_the_same_configuration(tmp_path):
    spec = methods.MethodSpec.parse("default+opacity")
    method_dir = tmp_path / "m"
    (method_dir / "ckpt").mkdir(parents=True)
    a = args(max_steps=300)
    assert not methods.resumable(method_dir, spec, Path("/d"), a)  # no config.yml
    (method_dir / "ckpt" / "last.pt").write_bytes(b"x")
    (method_dir / "config.yml").write_text("max_steps: 300\nstrategy:\n  name: default\nprune:\n  name: opacity\n  ratio: 0.66\n"
                                           "data_factor: 1\ntest_every: 8\n")
    assert methods.resumable(method_dir, spec, Path("/d"), a)
    assert not methods.resumable(method_dir, spec, Path("/d"), args(max_steps=600))
    assert not methods.resumable(method_dir, methods.MethodSpec.parse("default"), Path("/d"), a)


def test_failing_method_is_reported_and_finished_ones_are_not_rerun(tiny_scene, tmp_path, capsys):
    out = tmp_path / "bench"
    finished = out / tiny_scene.name / "default"
    write_run(finished, psnr=21.0, seconds=5.0, gaussians=1500, ply_mb=0.37)
    metrics_before = (finished / "metrics.json").read_text()
    # the failing method comes first: the benchmark must go on to the others
    code = methods.main(["--data-dir", str(tiny_scene), "--methods", "nosuchstrategy,default", "--max-steps", "30",
                           "--out", str(out), "--no-lpips"])
    assert code == 0
    scene = out / tiny_scene.name
    rows = table_rows((scene / "report.md").read_text())
    failed = rows["nosuchstrategy"]["status"]
    assert failed.startswith("failed: error: Unrecognized options: strategy:nosuchstrategy")
    assert rows["default (reference)"]["PSNR"] == "21.00"
    # the finished method was not run again
    assert (finished / "metrics.json").read_text() == metrics_before
    assert not (finished / "train_stderr.log").exists()
    assert json.loads((finished / "benchmark_run.json").read_text())["reused"] is True
    assert "finished earlier" in capsys.readouterr().out
    record = json.loads((scene / "nosuchstrategy" / "benchmark_run.json").read_text())
    assert record["returncode"] == 2 and record["peak_rss_mb"] > 0
    # --report-only rebuilds the report from disk without training
    (scene / "report.md").unlink()
    assert methods.main(["--out", str(out), "--report-only"]) == 0
    assert (scene / "report.md").is_file()


def test_rejects_bad_input(tmp_path, capsys):
    assert methods.main(["--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert methods.main(["--methods", "a+b+c", "--out", str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_end_to_end_on_the_tiny_scene(tiny_scene, tmp_path):
    """Two real methods and one that fails, 30 steps each: table, exports, plots, peak memory."""
    out = tmp_path / "bench"
    code = methods.main(["--data-dir", str(tiny_scene), "--methods", "default,bogus,default+opacity",
                           "--max-steps", "30", "--out", str(out), "--no-lpips"])
    assert code == 0
    scene = out / tiny_scene.name
    rows = table_rows((scene / "report.md").read_text())
    assert rows["default (reference)"]["status"] == "ok" and rows["default+opacity"]["status"] == "ok"
    assert rows["bogus"]["status"].startswith("failed: error: Unrecognized options: strategy:bogus")
    opacity = rows["default+opacity"]
    ref = json.loads((scene / "default" / "metrics.json").read_text())
    pruned = json.loads((scene / "default+opacity" / "metrics.json").read_text())
    assert opacity["Gaussians ×"] == f"{pruned['num_gaussians'] / ref['num_gaussians']:.2f}×"
    assert opacity["prune ratio"] == "0.66" and pruned["num_gaussians"] < ref["num_gaussians"]
    for method in ("default", "default+opacity"):
        record = json.loads((scene / method / "benchmark_run.json").read_text())
        assert record["error"] is None and record["peak_rss_mb"] > 50
        assert set(record["exports"]) == {"ply", "compressed-ply", "spz"} and not record["export_errors"]
        for fmt in record["exports"].values():
            assert Path(fmt["path"]).stat().st_size == pytest.approx(fmt["mb"] * 1e6)
    for png in ("psnr_vs_size.png", "psnr_vs_time.png", "gaussians_vs_step.png"):
        assert (scene / "plots" / png).is_file()


# -- the entry point -------------------------------------------------------------------------------
def test_dispatch_names_the_benchmarks_and_refuses_an_unknown_one(tmp_path, capsys):
    assert benchmark.main([]) == 2
    listing = capsys.readouterr().err
    for name in benchmark.BENCHMARKS:
        assert f"  {name} " in listing and benchmark.load(name).__name__ == f"bench.{name}", name
    assert benchmark.main(["--help"]) == 0 and "benchmarks:" in capsys.readouterr().out
    assert benchmark.main(["nosuchbench", "--out", str(tmp_path)]) == 2
    assert "error: no benchmark 'nosuchbench'" in capsys.readouterr().err
    # options with no benchmark name are `methods`' (the form from before the sub-benchmarks)
    assert benchmark.main(["--out", str(tmp_path / "empty"), "--report-only"]) == 2
    assert "no benchmark scene folders" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # each benchmark parses only its own options
        benchmark.main(["render", "--ratios", "0.5"])


def run_benchmark(*args) -> subprocess.CompletedProcess:
    """`python scripts/benchmark.py ARGS` as a user runs it (scripts/ is no package)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_SCRIPT.parents[1]), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, str(_SCRIPT), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=900)
    assert proc.returncode == 0, f"benchmark.py {args}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_pruning_export_and_render_benchmarks_at_tiny_size(tiny_scene, tmp_path):
    """Three benchmarks through the entry point: their tables and files."""
    out = tmp_path / "pruning"
    printed = run_benchmark("pruning", "--data-dir", tiny_scene, "--max-steps", 20, "--finetune-steps", 5,
                            "--ratios", "0.5", "--scores", "opacity", "--device", "cpu", "--no-lpips", "--out", out).stdout
    assert "base run: default, 20 steps" in printed and "opacity" in printed
    rows = json.loads((out / "results.json").read_text())
    assert [(r["score"], r["ratio"]) for r in rows] == [("unpruned (reference)", 0.0), ("opacity", 0.5)]
    assert rows[1]["num_gaussians"] < rows[0]["num_gaussians"]
    assert (out / "table.txt").read_text().splitlines()[0].startswith("base run:")
    assert (out / "psnr_vs_ratio.png").is_file() and (out / "opacity_0.5" / "metrics.json").is_file()

    ckpt = out / "base" / "ckpt" / "last.pt"
    table = tmp_path / "export.json"
    printed = run_benchmark("export", "--ckpt", ckpt, "--formats", "ply", "spz", "--device", "cpu",
                            "--out-dir", tmp_path / "exports", "--json", table).stdout
    assert "Pareto front" in printed
    exported = json.loads(table.read_text())
    formats = {(r["format"], r["sh_degree"]) for r in exported["rows"]}
    assert {("checkpoint", 3), ("ply", 3), ("spz", 3), ("ply", 0), ("spz", 0)} <= formats
    assert exported["inria_ply_bytes"] == (tmp_path / "exports" / "base_sh3.ply").stat().st_size

    printed = run_benchmark("render", "--sizes", 300, "--width", 32, "--height", 24, "--repeats", 1).stdout
    assert "image=32x24 repeats=1" in printed
    assert [line.split()[0] for line in printed.splitlines() if line.strip().startswith("300 ")] == ["300"]


# -- roofline -----------------------------------------------------------------------------------
def test_roofline_ceiling_scene_composites_every_lane_and_the_clock_is_plausible():
    """The ceiling scene's premise: every pixel composites every Gaussian (pairs = N W H, so each lane step is
    useful work); the measured clock is a clock (a chain of immediate adds would read several times too high)."""
    from gspruner.render import compiled

    roofline = benchmark.load("roofline")
    means, quats, scales, opac, colors, viewmat, K, w, h = roofline.ceiling_case(width=64, height=48, n=20)
    proj = compiled.project(means, quats, scales, opac, viewmat[None], K[None], w, h)
    pairs = compiled.contribution_stats(proj, w, h)[2]  # hit_count per Gaussian
    assert torch.equal(pairs, torch.full_like(pairs, w * h))
    ghz = roofline.clock_ghz()
    assert ghz is None or 0.5 < ghz < 7.0, ghz
