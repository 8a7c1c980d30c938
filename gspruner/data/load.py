"""`load_scene(data_dir)`: the reader a scene folder needs, by what it holds:
- `sparse/0/` or `sparse/` holding a COLMAP model, images in `images/`  -> kind "colmap"
- `transforms_train.json` (+ `transforms_test.json`)                     -> "blender", or "dnerf" with "time"
- `transforms.json`                                                      -> "ingp" (instant-ngp / nerfstudio)
- `poses_bounds.npy` + `cam*.mp4` videos (Neural 3D Video, see n3v.py)    -> "n3v"
"""

from __future__ import annotations

from pathlib import Path

from gspruner.data import colmap, n3v
from gspruner.data.scene import Scene, load_blender, load_colmap, load_ingp
from gspruner.errors import InputError


def load_scene(data_dir, data_factor: int = 1, test_every: int = 8, normalize: bool = True,
               background: tuple[float, float, float] | None = (1.0, 1.0, 1.0),
               frame_step: int = 1, max_frames: int | None = None) -> Scene:
    """`frame_step` (every k-th frame) and `max_frames` (the first n kept) apply to video scenes (n3v) only."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: data directory does not exist")
    if int(data_factor) != data_factor or data_factor < 1:
        raise InputError(f"{data_dir}: data_factor must be a positive integer, got {data_factor}")
    if n3v.is_n3v(data_dir):
        return n3v.load_n3v(data_dir, int(data_factor), normalize, frame_step, max_frames)
    model_dir = colmap.find_model_dir(data_dir)
    if model_dir is not None:
        return load_colmap(data_dir, model_dir, int(data_factor), test_every, normalize, background)
    if (data_dir / "transforms_train.json").is_file():
        return load_blender(data_dir, int(data_factor), test_every, background)
    if (data_dir / "transforms.json").is_file():
        return load_ingp(data_dir, int(data_factor), test_every, normalize, background)
    raise InputError(f"{data_dir}: no COLMAP model (sparse/0/, sparse/), transforms_train.json, transforms.json "
                     f"or poses_bounds.npy with cam*.mp4 videos")
