"""`gspruner compact`: prune in rounds, SH palette with a quantization-aware fine-tune, one .sog and a table."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gspruner.checkpoint import load_checkpoint
from gspruner.cli import main
from gspruner.compact import prune_ratio_for
from gspruner.export import read_sog


def test_prune_ratio_for_a_target_size():
    # 10,000 Gaussians in a 200 kB SOG: 20 B each; 50 kB keeps 2,500
    assert prune_ratio_for(50e3, 200_000, 10_000) == pytest.approx(0.75)
    assert prune_ratio_for(400e3, 200_000, 10_000) == 0.0  # already smaller: nothing to remove
    assert prune_ratio_for(1.0, 200_000, 10_000) == 0.99  # never everything


def test_compact_prunes_palettes_and_writes_one_sog(tmp_path, tiny_trained_ckpt, capsys):
    out = tmp_path / "scene.sog"
    assert main(["compact", "--ckpt", str(tiny_trained_ckpt), "--out", str(out), "--prune-ratio", "0.6",
                 "--prune-steps", "40", "--palette", "16", "--palette-steps", "30", "--device", "cpu", "--no-lpips",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "scene.compact" / "compact.json").read_text())
    stages = {r["stage"]: r for r in result["stages"]}
    assert list(stages) == ["input", "prune", "palette"]
    n = result["input_gaussians"]
    assert stages["prune"]["gaussians"] == stages["palette"]["gaussians"] == pytest.approx(0.4 * n, abs=0.02 * n)
    assert stages["palette"]["bytes"] == out.stat().st_size < stages["input"]["bytes"]
    assert result["input_inria_ply_bytes"] == n * 248  # SH degree 3: 62 float32 per Gaussian
    assert stages["palette"]["ratio_to_inria_ply"] == pytest.approx(n * 248 / out.stat().st_size)
    sog = read_sog(out)
    assert len(sog["means"]) == stages["palette"]["gaussians"]
    assert len(np.unique(sog["shN"].reshape(len(sog["shN"]), -1).numpy(), axis=0)) <= 16
    for row in result["stages"]:  # each stage measured from its own file, against the input's PSNR
        assert row["psnr"] > 10 and row["delta_psnr"] == pytest.approx(row["psnr"] - result["input_psnr"])
        assert row["render_fps"] > 0
    assert "| palette |" in printed and f"wrote {out}" in printed
    assert not list(tmp_path.glob(".*partial"))


def test_compact_target_size_sets_the_ratio(tmp_path, tiny_trained_ckpt):
    full = load_checkpoint(tiny_trained_ckpt)["splats"]
    out = tmp_path / "small.sog"
    assert main(["compact", "--ckpt", str(tiny_trained_ckpt), "--out", str(out), "--target-mb", "0.001",
                 "--prune-steps", "20", "--palette", "8", "--palette-steps", "5", "--device", "cpu", "--no-lpips",
                 "--no-progress"]) == 0
    result = json.loads((tmp_path / "small.compact" / "compact.json").read_text())
    expected = prune_ratio_for(1000, result["stages"][0]["bytes"], len(full["means"]))
    assert result["prune_ratio_asked"] == pytest.approx(expected) and expected > 0.5
    assert result["stages"][-1]["gaussians"] < (1 - expected + 0.02) * len(full["means"])


def test_compact_bad_input_is_one_line_and_writes_nothing(tmp_path, tiny_trained_ckpt, capsys):
    existing = tmp_path / "old.sog"
    existing.write_bytes(b"keep me")
    cases = [
        (["--out", str(tmp_path / "x.ply")], "--out must be a .sog file"),
        (["--out", str(tmp_path / "x.sog"), "--prune-ratio", "1.0"], "--prune-ratio must be in [0, 1)"),
        (["--out", str(existing)], "exists; --overwrite replaces it"),
    ]
    for extra, message in cases:
        assert main(["compact", "--ckpt", str(tiny_trained_ckpt), "--device", "cpu", "--no-progress", *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert existing.read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.sog"]
