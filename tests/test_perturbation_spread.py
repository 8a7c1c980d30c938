"""`scripts/benchmark.py spread`: the perturbed start, the runs it prints, bad input."""

import json
import os
import sys
from pathlib import Path

import torch

from gspruner.config import TrainConfig
from gspruner.render import compiled

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from bench import spread  # noqa: E402


def _cfg(scene, r):
    return TrainConfig(data_dir=scene, result_dir=r, max_steps=2, device="cpu", progress=False, lpips=False)


def test_initial_means_are_perturbed_by_eps_times_a_seeded_normal(tiny_scene, tmp_path):
    plain = spread.PerturbedTrainer(_cfg(tiny_scene, tmp_path / "a"), 0.0, generator_seed=1)
    plain._setup()
    moved = spread.PerturbedTrainer(_cfg(tiny_scene, tmp_path / "b"), 1e-3, generator_seed=1)
    moved._setup()
    m0, m1 = plain.splats["means"].detach(), moved.splats["means"].detach()
    noise = torch.randn(m0.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(m1, m0 * (1 + 1e-3 * noise))
    for key in ("scales", "opacities", "sh0"):  # nothing else moves
        assert torch.equal(plain.splats[key], moved.splats[key])


def test_runs_and_bad_input(tiny_scene, tmp_path, capsys):
    assert spread.main(["--data-dir", str(tiny_scene), "--max-steps", "3", "--runs", "1", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "run 0: eps 0 " in out and "run 1: eps 1e-07 " in out and "PSNR range" in out
    assert (tmp_path / "1" / "metrics.json").is_file()
    assert spread.main(["--eps", "0", "--out", str(tmp_path / "x")]) == 2
    assert "error: --eps must be in (0, 1)" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_torch_run_and_training_options(tiny_scene, tmp_path, capsys):
    """--torch adds the unperturbed run on the PyTorch rasterizer; options after `--` reach every run."""
    assert spread.main(["--data-dir", str(tiny_scene), "--max-steps", "3", "--runs", "1", "--out", str(tmp_path),
                        "--torch", "--", "strategy:none"]) == 0
    out = capsys.readouterr().out
    assert "torch: eps 0 " in out and "torch - run 0: " in out
    for run, rasterizer in (("0", "compiled"), ("1", "compiled"), ("torch", "torch")):
        metrics = json.loads((tmp_path / run / "metrics.json").read_text())
        assert (metrics["strategy"], metrics["rasterizer"]) == ("none", rasterizer), run
    assert os.environ.get(compiled.BACKEND_ENV) is None  # the switch was undone
    assert spread.main(["--out", str(tmp_path / "y"), "--", "--no-such-option"]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "y").exists()
