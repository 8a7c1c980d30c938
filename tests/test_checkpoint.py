"""Checkpoints are read without trusting their author: `torch.load(weights_only=True)` with an allow-list, and
every command that takes a checkpoint reads it through gspruner/checkpoint.py."""

import pathlib

import numpy as np
import pytest
import torch

from gspruner.checkpoint import load_checkpoint, save_checkpoint
from gspruner.cli import main
from gspruner.errors import InputError


class CreatesAFile:
    """Unpickling this calls open(path, "w"): a file appears if the pickle is run."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def malicious_checkpoint(path: pathlib.Path, marker: pathlib.Path) -> pathlib.Path:
    """A checkpoint shaped like ours (splats, config, scene) whose pickle would create `marker`."""
    splats = {"means": torch.zeros(4, 3), "scales": torch.zeros(4, 3), "quats": torch.ones(4, 4),
              "opacities": torch.zeros(4), "sh0": torch.zeros(4, 1, 3), "shN": torch.zeros(4, 0, 3)}
    torch.save({"splats": splats, "config": {"data_factor": 1, "test_every": 8, "background": [1, 1, 1],
                                             "sh_degree": 0, "payload": CreatesAFile(marker)},
                "scene": {"data_dir": str(path.parent)}, "step": 0}, path)
    return path


def test_load_refuses_a_pickle_that_calls_code(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = malicious_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(InputError) as info:
        load_checkpoint(ckpt)
    message = str(info.value)
    assert "\n" not in message and str(ckpt) in message and "refused" in message and "open" in message
    assert not marker.exists()


def test_our_own_value_types_load(tmp_path):
    """NumPy scalars and paths (values a payload may pick up) are on the allow-list; tensors keep their bits."""
    payload = {"splats": {"means": torch.randn(5, 3)}, "scene": {"scene_scale": np.float64(2.5),
                                                               "count": np.int64(3), "data_dir": pathlib.Path("/x/y")}}
    save_checkpoint(tmp_path / "ok.pt", payload)
    loaded = load_checkpoint(tmp_path / "ok.pt")
    assert torch.equal(loaded["splats"]["means"], payload["splats"]["means"])
    assert loaded["scene"] == {"scene_scale": 2.5, "count": 3, "data_dir": pathlib.Path("/x/y")}


@pytest.mark.parametrize("command", ["eval", "view", "export", "prune", "distill-sh", "quantize-sh", "train-init",
                                     "train-resume"])
def test_every_command_refuses_a_malicious_checkpoint_without_running_it(tmp_path, capsys, tiny_scene, command):
    marker = tmp_path / "pwned"
    out = tmp_path / "out"
    if command == "train-resume":
        malicious_checkpoint((out / "ckpt").mkdir(parents=True) or out / "ckpt" / "last.pt", marker)
        ckpt = out / "ckpt" / "last.pt"
    else:
        ckpt = malicious_checkpoint(tmp_path / "evil.pt", marker)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = {
        "eval": ["eval", "--ckpt", str(ckpt), "--device", "cpu"],
        "view": ["view", "--ckpt", str(ckpt), "--port", "0", "--device", "cpu"],
        "export": ["export", "--ckpt", str(ckpt), "--out", str(out / "scene.ply")],
        "prune": ["prune", "--ckpt", str(ckpt), "--result-dir", str(out), "--device", "cpu"],
        "distill-sh": ["distill-sh", "--ckpt", str(ckpt), "--result-dir", str(out), "--device", "cpu"],
        "quantize-sh": ["quantize-sh", "--ckpt", str(ckpt), "--result-dir", str(out), "--device", "cpu"],
        "train-init": ["train", "--init-ckpt", str(ckpt), "--data-dir", str(tiny_scene), "--result-dir", str(out),
                       "--device", "cpu"],
        "train-resume": ["train", "--resume", "--data-dir", str(tiny_scene), "--result-dir", str(out), "--device", "cpu"],
    }[command]
    assert main(args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error:") and str(ckpt) in err[0] and "refused" in err[0], err
    assert not marker.exists()
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
