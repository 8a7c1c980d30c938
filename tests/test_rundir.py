"""The run directory: bad input, also found mid-run, leaves --result-dir as it was (rundir.run_writes)."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from gspruner.cli import main
from gspruner.config import TrainConfig
from gspruner.errors import InputError
from gspruner.trainer import Trainer
from gspruner.data import load_scene

FAST = ["--max-steps", "10", "--no-lpips", "--no-progress", "--device", "cpu"]


def break_png_pixels(path: Path) -> None:
    """Scramble the compressed pixels of a PNG but keep every chunk's checksum right: the header and
    Pillow's verify pass, decoding fails (libpng: invalid data) only when the pixels are read."""
    data = path.read_bytes()
    out, i = bytearray(data[:8]), 8
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        kind, body = data[i + 4:i + 8], data[i + 8:i + 8 + n]
        if kind == b"IDAT":
            body = body[:2] + bytes((b * 7 + 3) % 256 for b in body[2:])
        out += struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        i += 12 + n
    path.write_bytes(bytes(out))


@pytest.fixture
def scene_copy(tiny_scene, tmp_path) -> Path:
    root = tmp_path / "scene"
    shutil.copytree(tiny_scene, root)
    return root


def last_image_read(root: Path) -> Path:
    """The last image a training run reads: the last test view, at evaluation."""
    return Path(load_scene(root).test[-1].image_path)


def snapshot(r: Path) -> dict[str, bytes]:
    return {str(p.relative_to(r)): p.read_bytes() for p in sorted(r.rglob("*")) if p.is_file()}


def one_error_line(capsys, path: Path) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and str(path) in err[0], err
    return err[0]


def test_bad_image_header_is_found_before_anything_is_written(scene_copy, tmp_path, capsys):
    bad = last_image_read(scene_copy)
    bad.write_text("garbage\n")
    r = tmp_path / "runs" / "r"
    with pytest.raises(InputError, match="not an image format"):  # found when the trainer is built, not trained
        Trainer(TrainConfig(data_dir=scene_copy, result_dir=r, max_steps=10, device="cpu"))
    assert main(["train", "--data-dir", str(scene_copy), "--result-dir", str(r), *FAST]) == 2
    one_error_line(capsys, bad)
    assert not (tmp_path / "runs").exists()


def test_image_that_fails_to_decode_at_evaluation_leaves_a_new_result_dir_unmade(scene_copy, tmp_path, capsys):
    bad = last_image_read(scene_copy)
    break_png_pixels(bad)
    r = tmp_path / "runs" / "r"
    assert main(["train", "--data-dir", str(scene_copy), "--result-dir", str(r), *FAST]) == 2
    line = one_error_line(capsys, bad)
    assert "libpng" in line  # the decoder's own reason, in the same line
    assert not (tmp_path / "runs").exists()  # the run made both folders and removed both


def test_overwrite_that_fails_mid_run_puts_the_previous_run_back(scene_copy, tmp_path, capsys):
    r = tmp_path / "r"
    assert main(["train", "--data-dir", str(scene_copy), "--result-dir", str(r), *FAST]) == 0
    (r / "notes.txt").write_text("mine")  # not a run file: never touched
    before = snapshot(r)
    break_png_pixels(last_image_read(scene_copy))
    capsys.readouterr()
    assert main(["train", "--data-dir", str(scene_copy), "--result-dir", str(r), "--overwrite",
                 "--max-steps", "12", "--no-lpips", "--no-progress", "--device", "cpu"]) == 2
    one_error_line(capsys, last_image_read(scene_copy))
    assert snapshot(r) == before  # byte for byte, and nothing set aside is left behind
    assert not list(r.glob(".replaced-run-*"))


def test_resume_that_fails_mid_run_keeps_the_checkpoint_and_log(scene_copy, tmp_path, capsys):
    r = tmp_path / "r"
    assert main(["train", "--data-dir", str(scene_copy), "--result-dir", str(r), *FAST]) == 0
    before = snapshot(r)
    bad = last_image_read(scene_copy)
    good = bad.read_bytes()
    break_png_pixels(bad)
    capsys.readouterr()
    assert main(["train", "--data-dir", str(scene_copy), "--result-dir", str(r), "--resume",
                 "--max-steps", "20", "--no-lpips", "--no-progress", "--device", "cpu"]) == 2
    one_error_line(capsys, last_image_read(scene_copy))
    assert snapshot(r) == before  # the checkpoint, PLY, renders, metrics and log as they were
    bad.write_bytes(good)  # the image repaired, the same command continues from the kept checkpoint
    assert main(["train", "--data-dir", str(scene_copy), "--result-dir", str(r), "--resume",
                 "--max-steps", "20", "--no-lpips", "--no-progress", "--device", "cpu"]) == 0
    assert json.loads((r / "metrics.json").read_text())["steps"] == 20
