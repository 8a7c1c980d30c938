"""scripts/benchmark.py: method specs -> train flags, error lines, resumability, a failing method, end to end."""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from test_report import table_rows, write_run

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
_spec = importlib.util.spec_from_file_location("benchmark_script", _SCRIPT)
benchmark = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = benchmark  # dataclasses look their module up there
_spec.loader.exec_module(benchmark)


def args(**kw) -> argparse.Namespace:
    return benchmark.parse_args([]) if not kw else argparse.Namespace(**{**vars(benchmark.parse_args([])), **kw})


def flag_value(cmd: list[str], flag: str):
    return cmd[cmd.index(flag) + 1] if flag in cmd else None


def test_method_spec_to_train_flags(tmp_path):
    spec = benchmark.MethodSpec.parse("fastgs+lp3dgs")
    assert (spec.strategy, spec.pruner, spec.name) == ("fastgs", "lp3dgs", "fastgs+lp3dgs")
    a = args(max_steps=500, data_factor=8, prune_ratio=0.5)
    cmd = benchmark.train_command(spec, Path("/data/fox"), tmp_path / "m", a, None, resume=False)
    assert cmd[1:4] == ["-m", "gspruner.cli", "train"]
    assert "strategy:fastgs" in cmd and "prune:lp3dgs" in cmd
    assert flag_value(cmd, "--max-steps") == "500" and flag_value(cmd, "--data-factor") == "8"
    assert flag_value(cmd, "--data-dir") == "/data/fox" and "--overwrite" in cmd and "--no-progress" in cmd
    assert "--prune.ratio" not in cmd  # lp3dgs learns its ratio
    lg = benchmark.train_command(benchmark.MethodSpec.parse("default+lightgaussian"), None, tmp_path / "m", a, None,
                                 resume=True)
    assert "prune:lightgaussian" in lg and flag_value(lg, "--prune.ratio") == "0.5"
    assert "--resume" in lg and "--data-dir" not in lg
    plain = benchmark.train_command(benchmark.MethodSpec.parse("mcmc"), None, tmp_path / "m", a, 1234, resume=False)
    assert not any(c.startswith("prune:") for c in plain) and flag_value(plain, "--strategy.cap-max") == "1234"
    at = benchmark.MethodSpec.parse("fastgs+rounds@0.66")
    assert (at.name, at.strategy, at.pruner, at.ratio) == ("fastgs+rounds@0.66", "fastgs", "rounds", 0.66)
    assert flag_value(benchmark.train_command(at, None, tmp_path / "m", a, None, resume=False), "--prune.ratio") == "0.66"
    opt = benchmark.MethodSpec.parse("fastgs+rounds@0.8:stop-db=0.1:score=pup-scale")
    assert (opt.name, opt.ratio, opt.options) == ("fastgs+rounds@0.8:stop-db=0.1:score=pup-scale", 0.8,
                                                  (("stop-db", "0.1"), ("score", "pup-scale")))
    cmd = benchmark.train_command(opt, None, tmp_path / "m", a, None, resume=False)
    assert flag_value(cmd, "--prune.stop-db") == "0.1" and flag_value(cmd, "--prune.score") == "pup-scale"
    for bad in ("a+b+c", "+x", "", "default@0.5", "default+rounds@1.5", "default+rounds@x", "default:x=1",
                "default+rounds:stop-db", "default+rounds:=1", "default+rounds:Score=x"):
        with pytest.raises(ValueError):
            benchmark.MethodSpec.parse(bad)


def test_scene_specs(tmp_path):
    fox = benchmark.SceneArg.parse("../data/fox:8")
    assert (fox.data_dir, fox.data_factor, fox.generated) == (Path("../data/fox"), 8, None)
    assert benchmark.SceneArg.parse("/data/chair").data_factor is None  # --data-factor then
    assert benchmark.SceneArg.parse("demo").data_dir is None and benchmark.SceneArg.parse("demo").generated is None
    obj = benchmark.SceneArg.parse("object-demo")
    assert obj.generated == "object-demo"
    with pytest.raises(ValueError, match="at least 1"):
        benchmark.SceneArg.parse("/data/fox:0")
    assert benchmark.main(["--scene", "/data/fox:0", "--out", str(tmp_path / "o")]) == 2
    assert benchmark.main(["--scene", str(tmp_path / "missing") + ":4", "--out", str(tmp_path / "o")]) == 2


def test_mcmc_cap_defaults_to_the_default_runs_count(tmp_path):
    scene = tmp_path / "fox"
    assert benchmark.mcmc_cap_for(scene, args())[0] is None  # gsplat's 1M when there is no default run
    write_run(scene / "default", psnr=25.0, seconds=10.0, gaussians=43210, ply_mb=1.0)
    cap, note = benchmark.mcmc_cap_for(scene, args())
    assert cap == 43210 and "default run" in note
    assert benchmark.mcmc_cap_for(scene, args(mcmc_cap="5000"))[0] == 5000


def test_failure_message_picks_the_reason():
    tyro_box = (
        "╭─ Invalid choice ──────────────────────────────╮\n"
        "│ invalid choice 'bogus' for argument           │\n"
        "│ '--strategy'. Expected one of ('default').    │\n"
        "│ ───────────────────────────────────────────── │\n"
        "│ For full helptext, run cli.py train --help    │\n"
        "╰───────────────────────────────────────────────╯\n")
    assert benchmark.failure_message(tyro_box) == (
        "invalid choice 'bogus' for argument '--strategy'. Expected one of ('default').")
    traceback = "Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: out of memory\n\n"
    assert benchmark.failure_message(traceback) == "RuntimeError: out of memory"
    assert benchmark.failure_message("loading\nerror: data/x: no training images\n") == "error: data/x: no training images"
    assert benchmark.failure_message("") == "failed (no error output)"


def test_resumable_only_for_the_same_configuration(tmp_path):
    spec = benchmark.MethodSpec.parse("default+opacity")
    method_dir = tmp_path / "m"
    (method_dir / "ckpt").mkdir(parents=True)
    a = args(max_steps=300)
    assert not benchmark.resumable(method_dir, spec, Path("/d"), a)  # no config.yml
    (method_dir / "ckpt" / "last.pt").write_bytes(b"x")
    (method_dir / "config.yml").write_text("max_steps: 300\nstrategy:\n  name: default\nprune:\n  name: opacity\n  ratio: 0.66\n"
                                           "data_factor: 1\ntest_every: 8\n")
    assert benchmark.resumable(method_dir, spec, Path("/d"), a)
    assert not benchmark.resumable(method_dir, spec, Path("/d"), args(max_steps=600))
    assert not benchmark.resumable(method_dir, benchmark.MethodSpec.parse("default"), Path("/d"), a)


def test_failing_method_is_reported_and_finished_ones_are_not_rerun(tiny_scene, tmp_path, capsys):
    out = tmp_path / "bench"
    finished = out / tiny_scene.name / "default"
    write_run(finished, psnr=21.0, seconds=5.0, gaussians=1500, ply_mb=0.37)
    metrics_before = (finished / "metrics.json").read_text()
    # the failing method comes first: the benchmark must go on to the others
    code = benchmark.main(["--data-dir", str(tiny_scene), "--methods", "nosuchstrategy,default", "--max-steps", "30",
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
    assert benchmark.main(["--out", str(out), "--report-only"]) == 0
    assert (scene / "report.md").is_file()


def test_rejects_bad_input(tmp_path, capsys):
    assert benchmark.main(["--data-dir", str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 2
    assert benchmark.main(["--methods", "a+b+c", "--out", str(tmp_path / "o")]) == 2
    assert "error:" in capsys.readouterr().err


@pytest.mark.slow
def test_benchmark_end_to_end_on_the_tiny_scene(tiny_scene, tmp_path):
    """Two real methods and one that fails, 30 steps each: table, exports, plots, peak memory."""
    out = tmp_path / "bench"
    code = benchmark.main(["--data-dir", str(tiny_scene), "--methods", "default,bogus,default+opacity",
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
