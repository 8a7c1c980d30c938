import dataclasses
import json
import subprocess
import sys

import pytest

from gspruner.cli import main
from gspruner.config import EvalConfig, ExportConfig, PruneConfig, TrainConfig


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@pytest.mark.parametrize("command,cls", [("train", TrainConfig), ("prune", PruneConfig), ("export", ExportConfig),
                                         ("eval", EvalConfig)])
def test_help_explains_every_option(command, cls, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(f.default_factory() if f.default_factory is not dataclasses.MISSING else None):
            continue  # nested group: its own flags are listed with a prefix
        assert _flag(f.name) in out, f"{_flag(f.name)} missing from `gspruner {command} --help`"


def test_missing_data_dir_is_one_line_exit_2(tmp_path, capsys):
    r = tmp_path / "out"
    code = main(["train", "--data-dir", str(tmp_path / "nope"), "--result-dir", str(r), "--device", "cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "nope" in err[0] and err[0].startswith("error:")
    assert not r.exists()


@pytest.mark.parametrize("var,value", [("GSPRUNER_CPU_BACKEND", "gpu"), ("GSPRUNER_CPU_THREADS", "two")])
def test_bad_cpu_backend_setting_is_one_line_exit_2(tiny_scene, tmp_path, capsys, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    r = tmp_path / "out"
    code = main(["train", "--data-dir", str(tiny_scene), "--result-dir", str(r), "--device", "cpu", "--max-steps", "5"])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.startswith("error:")]
    assert code == 2
    assert len(err) == 1 and var in err[0] and repr(value) in err[0]
    assert not r.exists()


def test_console_script_train_then_eval(tiny_scene, tmp_path):
    """The installed `gspruner` entry point end to end: train a few steps, then eval the checkpoint."""
    r = tmp_path / "run"
    exe = [sys.executable, "-m", "gspruner.cli"]
    subprocess.run(exe + ["train", "--data-dir", str(tiny_scene), "--result-dir", str(r), "--max-steps", "30",
                          "--device", "cpu", "--no-progress", "--no-lpips"], check=True, capture_output=True)
    out = subprocess.run(exe + ["eval", "--ckpt", str(r / "ckpt" / "last.pt"), "--device", "cpu", "--no-lpips"],
                         check=True, capture_output=True, text=True).stdout
    evaluated = json.loads(out)
    trained = json.loads((r / "metrics.json").read_text())
    assert evaluated["psnr"] == pytest.approx(trained["psnr"], abs=1e-4)
    assert evaluated["num_gaussians"] == trained["num_gaussians"]


def test_corrupt_checkpoint_is_input_error(tmp_path, capsys):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["eval", "--ckpt", str(bad), "--device", "cpu"]) == 2
    assert "last.pt" in capsys.readouterr().err


def test_export_then_eval_the_file(tiny_scene, tmp_path, capsys):
    """`export --format all` then `eval --ply` measures the artifact itself: ply is lossless."""
    from gspruner.config import TrainConfig as TC
    from gspruner.trainer import Trainer

    r = tmp_path / "run"
    trained = Trainer(TC(data_dir=tiny_scene, result_dir=r, max_steps=40, device="cpu", progress=False, lpips=False)).train()
    assert main(["export", "--ckpt", str(r / "ckpt" / "last.pt"), "--format", "all", "--out", str(tmp_path / "scene")]) == 0
    capsys.readouterr()
    results = {}
    for suffix in (".ply", ".compressed.ply", ".spz", ".splat"):
        assert main(["eval", "--ply", str(tmp_path / f"scene{suffix}"), "--data-dir", str(tiny_scene),
                     "--device", "cpu", "--no-lpips"]) == 0
        results[suffix] = json.loads(capsys.readouterr().out)
    assert results[".ply"]["psnr"] == pytest.approx(trained["psnr"], abs=1e-4)
    assert abs(results[".compressed.ply"]["psnr"] - trained["psnr"]) < 1.0
    assert abs(results[".spz"]["psnr"] - trained["psnr"]) < 1.0
    assert results[".splat"]["file_bytes"] == 32 * trained["num_gaussians"]
    assert main(["eval", "--ply", str(tmp_path / "scene.ply"), "--device", "cpu"]) == 2  # needs --data-dir


def test_top_level_help_lists_commands_without_importing_torch():
    code = ("import sys; from gspruner.cli import main; rc = main(['--help']); "
            "assert 'torch' not in sys.modules and 'gspruner.config' not in sys.modules, sorted(sys.modules); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    for name in ("train", "prune", "export", "view", "eval", "distill-sh", "report"):
        assert f"  {name} " in out.stdout


def test_command_list_matches_the_configs():
    """`gspruner --help` shows each command's config docstring without importing it: keep the two the same."""
    from gspruner.cli import COMMANDS, config_type

    for name, text in COMMANDS.items():
        assert text == " ".join(config_type(name).__doc__.split()), name


def test_command_help_builds_without_importing_torch():
    """`gspruner COMMAND --help` builds the command's parser from its config alone: the configs, the method registries
    and tyro load, torch (and numpy, gsplat) do not. Checked in a fresh interpreter, one per command."""
    from gspruner.cli import COMMANDS

    for name in COMMANDS:
        code = ("import sys; from gspruner.cli import main\n"
                f"try:\n    main([{name!r}, '--help'])\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
                "heavy = sorted(m for m in ('torch', 'numpy', 'gsplat') if m in sys.modules)\n"
                "assert not heavy, heavy")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode == 0 and "--help" in out.stdout, f"gspruner {name} --help: {out.stderr[-2000:]}"


@pytest.mark.parametrize("command,args,new", [
    ("train", ["--strategy", "fastgs"], "use 'strategy:fastgs' instead"),
    ("train", ["--strategy=mcmc"], "use 'strategy:mcmc' instead"),
    ("train", ["--prune", "lp3dgs"], "use 'prune:lp3dgs' instead"),
    ("train", ["--prune", "rounds", "--prune.ratio", "0.5"], "use 'prune:rounds' instead"),
    ("train", ["--strategy", "bogus"], "use 'strategy:NAME' (NAME: auto, default, mcmc, fastgs, none) instead"),
    ("prune", ["--score", "radsplat"], "use 'score:radsplat' instead"),
    ("train", ["--prune-ratio", "0.5"], "use '--prune.ratio' after 'prune:NAME' instead"),
    ("train", ["--lp-score=minisplatting"], "use '--prune.score' after 'prune:lp3dgs' instead"),
    ("train", ["--prune-opa", "0.01"], "use '--strategy.prune-opa' after 'strategy:default' instead"),
])
def test_old_method_options_name_the_subcommand(tmp_path, capsys, command, args, new):
    """The spellings from before the methods became subcommands (`--strategy fastgs`) are one error line that says
    what to write now, exit 2, nothing written; not tyro's list of unrecognized options."""
    r = tmp_path / "out"
    where = ["--data-dir", str(tmp_path)] if command == "train" else ["--ckpt", str(tmp_path / "last.pt")]
    assert main([command, *where, "--result-dir", str(r), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and new in err[0] and "nrecognized" not in err[0], err
    assert not r.exists()


def test_unknown_command_is_one_line_exit_2(capsys):
    assert main(["trian"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "trian" in err[0]


@pytest.mark.parametrize("args,message", [(["--max-steps", "0"], "--max-steps must be ≥ 1"),
                                          (["--overwrite", "--resume"], "exclude each other"),
                                          (["--data-factor", "0"], "--data-factor must be ≥ 1"),
                                          (["--test-every", "-1"], "--test-every must be ≥ 0"),
                                          (["prune:lightgaussian", "--prune.ratio", "0"], "--prune.ratio must be in (0, 1)")])
def test_bad_values_are_refused_where_parsed(tmp_path, capsys, args, message):
    """TrainConfig and the method configs check their values: one error line, exit 2, nothing written."""
    r = tmp_path / "out"
    assert main(["train", "--data-dir", str(tmp_path / "nope"), "--result-dir", str(r), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not r.exists()


def test_output_into_a_closed_pipe_is_not_an_error():
    """`gspruner prune --help | head -1`: when the reader has gone, exit 0 without a traceback."""
    proc = subprocess.Popen([sys.executable, "-c", "from gspruner.cli import entry; entry()", "prune", "--help"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before it writes: its first write meets a closed pipe
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in err, err.decode()


@pytest.fixture(scope="module")
def factor2_run(tiny_scene, tmp_path_factory):
    """A run trained at --data-factor 2 --test-every 4, from a relative --data-dir."""
    import os
    import shutil

    root = tmp_path_factory.mktemp("factor2")
    shutil.copytree(tiny_scene, root / "scene")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main(["train", "--data-dir", "scene", "--result-dir", "run", "--max-steps", "30", "--data-factor", "2",
                     "--test-every", "4", "--device", "cpu", "--no-progress", "--no-lpips"]) == 0
    finally:
        os.chdir(cwd)
    return root


def test_checkpoint_names_its_scene_absolutely_and_eval_takes_its_settings(factor2_run, tmp_path, monkeypatch, capsys):
    from gspruner.checkpoint import load_checkpoint

    run = factor2_run / "run"
    ckpt = load_checkpoint(run / "ckpt" / "last.pt")
    assert ckpt["scene"]["data_dir"] == str(factor2_run / "scene") == ckpt["config"]["data_dir"]
    trained = json.loads((run / "metrics.json").read_text())
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)  # elsewhere: the relative --data-dir it was trained with means nothing here
    assert main(["eval", "--ckpt", str(run / "ckpt" / "last.pt"), "--device", "cpu", "--no-lpips"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["num_views"] == trained["num_views"] == 4 and evaluated["data_factor"] == 2
    assert evaluated["psnr"] == pytest.approx(trained["psnr"], abs=1e-4)


def test_eval_of_a_run_ply_takes_the_runs_settings(factor2_run, capsys):
    """point_cloud.ply in its run directory: config.yml's scene, factor and split, not factor 1 / every 8th."""
    run = factor2_run / "run"
    trained = json.loads((run / "metrics.json").read_text())
    capsys.readouterr()
    assert main(["eval", "--ply", str(run / "point_cloud.ply"), "--device", "cpu", "--no-lpips"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["num_views"] == 4 and evaluated["data_factor"] == 2
    assert evaluated["settings_from"] == str(run / "config.yml")
    assert evaluated["psnr"] == pytest.approx(trained["psnr"], abs=1e-4)


def test_eval_of_a_loose_ply_says_it_uses_the_defaults(factor2_run, tmp_path, capsys):
    import shutil

    loose = shutil.copy(factor2_run / "run" / "point_cloud.ply", tmp_path / "scene.ply")
    assert main(["eval", "--ply", str(loose), "--data-dir", str(factor2_run / "scene"), "--device", "cpu",
                 "--no-lpips"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["settings_from"] == "defaults"
    assert "defaults --data-factor 1 --test-every 8" in captured.err and "error" not in captured.err
    assert main(["eval", "--ply", str(loose), "--data-dir", str(factor2_run / "scene"), "--device", "cpu",
                 "--no-lpips", "--data-factor", "2"]) == 0  # the note names only the settings left at a default
    err = capsys.readouterr().err
    assert "defaults --test-every 8 (" in err and "--data-factor" not in err


def test_eval_refuses_another_scene(factor2_run, tmp_path, capsys):
    from gspruner.data import ensure_demo_scene

    other = ensure_demo_scene(tmp_path / "other", width=24, height=18, n_views=12, n_points=100, seed=1)
    ckpt = factor2_run / "run" / "ckpt" / "last.pt"
    assert main(["eval", "--ckpt", str(ckpt), "--data-dir", str(other), "--device", "cpu", "--no-lpips"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and str(ckpt) in err[0] and "another scene" in err[0], err
