"""A procedural dynamic scene, ray-cast in numpy with demo.py's caster and written in the D-NeRF layout.

Objects move with time t in [0, 1]: a checkered box turning about its vertical axis at the origin, a striped
sphere travelling on an arc around it while rising and falling, a small gradient sphere bobbing above it.
No ground and no sky: rays that miss every object are transparent (alpha 0), as in NeRF-synthetic / D-NeRF.
Monocular like D-NeRF: each frame is one camera at distance 4 looking at the origin, at its own time. Train
times are evenly spaced in [0, 1], the azimuth advancing 1/n_train of a turn per frame; test times lie halfway
between train times, seen from a quarter turn further round; elevations are drawn from `seed`. Output:
`transforms_{train,test}.json` (OpenGL camera-to-world, a "time" per frame), RGBA PNGs `train/r_XXX.png` and
`test/r_XXX.png` (2x2 supersampled, straight alpha) and `dynamic_demo.json` with the parameters.
World: z up, objects within ~1.06 of the origin.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from gspruner.data.demo import (Box, Sphere, _closest, _lighting, _mix, _object_surface, _stripes, ensure_generated,
                                look_at, subpixel_rays)
from gspruner.data.transforms import opengl_to_opencv

DYNAMIC_VERSION = 1
CAMERA_DISTANCE = 4.0
CAMERA_ANGLE_X = 0.6911112070083618  # horizontal field of view (rad), as in NeRF-synthetic / D-NeRF
ELEVATIONS_DEG = (-10.0, 50.0)  # range of the camera elevations
TEST_AZIMUTH_OFFSET = 0.5 * math.pi  # test cameras: a quarter turn past the train camera of the same time


def dynamic_objects(t: float) -> list:
    """The scene at time t in [0, 1]; textures live in object coordinates, so they move with the objects."""
    arc = math.pi * (1.2 * t - 0.5)  # striped sphere: from -90 to +126 degrees round the box

    def checker(q, n):  # q box-local [M,3] in [0, 2*half]
        return _mix([0.15, 0.3, 0.75], [0.95, 0.8, 0.25], (np.floor(q / 0.2).sum(axis=-1) % 2).astype(float))

    return [
        Box([0.0, 0.0, 0.0], [0.35, 0.22, 0.3], 150.0 * t, checker),
        Sphere([0.72 * math.cos(arc), 0.72 * math.sin(arc), 0.3 * math.sin(2 * math.pi * t)], 0.28,
               lambda q, n: _mix([0.85, 0.2, 0.15], [0.95, 0.9, 0.8], _stripes(q[:, 2] + 0.5 * q[:, 0], 0.25))),
        Sphere([0.0, 0.0, 0.58 + 0.12 * math.sin(2 * math.pi * t)], 0.14,
               lambda q, n: _mix([0.35, 0.15, 0.5], [0.85, 0.6, 0.9], 0.5 + 0.5 * n[:, 2])),
    ]


def render_rgba(c2w: np.ndarray, K: np.ndarray, width: int, height: int, t: float) -> np.ndarray:
    """RGBA [H,W,4] in [0,1] (straight alpha, 2x2 supersampled) of the scene at time t from OpenCV c2w [4,4]."""
    return render_objects_rgba(c2w, K, width, height, dynamic_objects(t))


def render_objects_rgba(c2w: np.ndarray, K: np.ndarray, width: int, height: int, objects: list) -> np.ndarray:
    """RGBA [H,W,4] in [0,1] (straight alpha, 2x2 supersampled) of `objects` from OpenCV c2w [4,4]; misses are
    transparent."""
    o = c2w[:3, 3]
    premultiplied = np.zeros((height * width, 4))
    for d in subpixel_rays(c2w, K, width, height):
        dist, hit_id = _closest(o, d, objects)
        hit = hit_id >= 0
        p = o + np.where(hit, dist, 0.0)[:, None] * d  # misses stay at the camera, unused
        color, normal = _object_surface(p, hit_id, objects)  # zeros on misses
        color[hit] *= _lighting(p[hit], normal[hit], objects)[:, None]
        premultiplied += np.concatenate([np.clip(color, 0.0, 1.0), hit[:, None]], axis=1) / 4
    alpha = premultiplied[:, 3:]
    rgb = np.divide(premultiplied[:, :3], alpha, out=np.zeros((len(alpha), 3)), where=alpha > 0)
    return np.concatenate([rgb, alpha], axis=1).reshape(height, width, 4)


def frame_schedule(n_train: int, n_test: int, seed: int) -> dict[str, list[tuple[float, np.ndarray]]]:
    """split -> [(time, OpenCV c2w [4,4])] of the monocular capture."""
    rng = np.random.default_rng(seed)
    t_train = np.linspace(0.0, 1.0, n_train)
    t_test = (np.linspace(0, n_train - 2, n_test).round() + 0.5) / (n_train - 1)  # halfway between train times
    turn = 2 * math.pi * (n_train - 1) / n_train  # azimuth at t = 1: train frame k sits at 2 pi k / n_train
    schedule = {}
    for split, times, offset in (("train", t_train, 0.0), ("test", t_test, TEST_AZIMUTH_OFFSET)):
        elevations = np.radians(rng.uniform(*ELEVATIONS_DEG, len(times)))
        schedule[split] = [(float(t), look_at(np.zeros(3), CAMERA_DISTANCE, turn * t + offset, e))
                           for t, e in zip(times, elevations)]
    return schedule


def write_rgba_split(out: Path, split: str, frames: list[tuple[np.ndarray, list, dict]], width: int,
                     height: int) -> None:
    """Renders frames [(OpenCV c2w [4,4], objects, extra frame keys)] at CAMERA_ANGLE_X into `out/split/r_XXX.png`
    (RGBA 8-bit) and `out/transforms_{split}.json` (OpenGL camera-to-world, as NeRF-synthetic); nothing if no frames."""
    if not frames:
        return
    f = 0.5 * width / math.tan(0.5 * CAMERA_ANGLE_X)
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    (out / split).mkdir()
    meta = {"camera_angle_x": CAMERA_ANGLE_X, "frames": []}
    for k, (c2w, objects, extra) in enumerate(frames):
        rgba = render_objects_rgba(c2w, K, width, height, objects)
        cv2.imwrite(str(out / split / f"r_{k:03d}.png"), np.round(rgba[..., [2, 1, 0, 3]] * 255).astype(np.uint8))
        meta["frames"].append({"file_path": f"./{split}/r_{k:03d}", **extra,
                               "transform_matrix": opengl_to_opencv(c2w).tolist()})  # the flip is an involution
    (out / f"transforms_{split}.json").write_text(json.dumps(meta, indent=1) + "\n")


def _generate(out: Path, width: int, height: int, n_train: int, n_test: int, seed: int) -> None:
    for split, frames in frame_schedule(n_train, n_test, seed).items():
        write_rgba_split(out, split, [(c2w, dynamic_objects(t), {"time": t}) for t, c2w in frames], width, height)


def ensure_dynamic_demo_scene(root: Path, width: int = 64, height: int = 64, n_train: int = 40, n_test: int = 8,
                              seed: int = 0) -> Path:
    """Generates the dynamic demo scene at `root` once (atomically: temp dir + rename); returns `root`."""
    if n_train < 2 or n_test < 0:
        raise ValueError(f"need n_train >= 2 and n_test >= 0, got {n_train} and {n_test}")
    params = {"version": DYNAMIC_VERSION, "width": width, "height": height, "n_train": n_train, "n_test": n_test,
              "seed": seed}
    return ensure_generated(Path(root), params, "dynamic_demo.json", "transforms_train.json",
                            lambda out: _generate(out, width, height, n_train, n_test, seed))
