"""`gspruner quantize-sh`: the SH palette applied to the model, the rest fine-tuned with it frozen, the .sog."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gspruner.checkpoint import load_checkpoint
from gspruner.cli import main
from gspruner.config import QuantizeConfig, TrainConfig
from gspruner.errors import InputError
from gspruner.export import read_sog
from gspruner.quantize import palette_sh, run_quantize
from gspruner.trainer import Trainer


def test_palette_sh_keeps_at_most_palette_rows():
    g = torch.Generator().manual_seed(0)
    shN = torch.randn(500, 15, 3, generator=g)
    q = palette_sh(shN, 32, 10, 0)
    assert q.shape == shN.shape
    assert len(np.unique(q.reshape(500, -1).numpy(), axis=0)) <= 32
    # each row is its cluster's mean: closer to its own row than a random other palette row on average
    assert (q - shN).pow(2).mean() < (q[torch.randperm(500, generator=g)] - shN).pow(2).mean()


def test_quantize_sh_fine_tunes_around_the_palette(tmp_path, tiny_trained_ckpt):
    """The fine-tuned model keeps exactly the palette in shN (frozen) while the rest moves; the .sog holds
    that palette and renders as the checkpoint; the fine-tune beats quantizing alone (1 step)."""
    base = load_checkpoint(tiny_trained_ckpt)["splats"]
    one = run_quantize(QuantizeConfig(ckpt=tiny_trained_ckpt, result_dir=tmp_path / "q1", palette=16, steps=1,
                                      device="cpu", lpips=False, progress=False))  # fmt: skip
    m = run_quantize(QuantizeConfig(ckpt=tiny_trained_ckpt, result_dir=tmp_path / "q", palette=16, steps=60,
                                    device="cpu", lpips=False, progress=False))  # fmt: skip
    tuned = load_checkpoint(tmp_path / "q" / "ckpt" / "last.pt")["splats"]
    quantized = palette_sh(base["shN"].float(), 16, 10, 0)
    assert torch.equal(tuned["shN"], quantized)  # frozen: the palette itself
    assert not torch.equal(tuned["sh0"], base["sh0"])  # the rest was fine-tuned
    sog = read_sog(tmp_path / "q" / "scene.sog")
    assert len(np.unique(sog["shN"].reshape(len(sog["shN"]), -1).numpy(), axis=0)) <= 16
    meta = json.loads((tmp_path / "q" / "metrics.json").read_text())
    assert meta["sog_palette"] == 16 and meta["sog_bytes"] == (tmp_path / "q" / "scene.sog").stat().st_size
    assert abs(meta["sog_psnr"] - meta["psnr"]) < 0.1  # the palette costs nothing more in the file
    assert m["psnr"] > one["psnr"] + 0.1, (m["psnr"], one["psnr"])


def test_quantize_sh_bad_input_is_one_line(tmp_path, tiny_trained_ckpt, tiny_scene):
    for palette, steps, message in ((0, 300, "--palette must be in 1..65536"), (1024, 0, "--steps must be ≥ 1")):
        with pytest.raises(InputError, match=message):
            run_quantize(QuantizeConfig(ckpt=tiny_trained_ckpt, result_dir=tmp_path / "bad", device="cpu",
                                        palette=palette, steps=steps))
    assert not (tmp_path / "bad").exists()
    assert main(["quantize-sh", "--ckpt", str(tmp_path / "missing.pt"), "--result-dir", str(tmp_path / "x")]) == 2
    with pytest.raises(InputError, match="--freeze: unknown parameter colors"):
        Trainer(TrainConfig(data_dir=tiny_scene, result_dir=tmp_path / "f", freeze=("colors",)))
    assert not (tmp_path / "f").exists()
