"""NeRF-synthetic / D-NeRF `transforms_{split}.json` and instant-ngp `transforms.json` camera files.

Both store OpenGL camera-to-world matrices (x right, y up, z backward); frames come back in OpenCV
convention (x right, y down, z forward) with intrinsics at the image files' full resolution.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gspruner.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y", "k1", "k2", "p1", "p2")


@dataclass
class Frame:
    name: str  # image path relative to the data dir
    image_path: Path
    c2w: np.ndarray  # [4,4] float64, OpenCV convention
    K: np.ndarray  # [3,3] float64 at (width, height)
    width: int
    height: int
    dist: np.ndarray | None  # [4] float64 (k1, k2, p1, p2) or None when there is no distortion
    time: float | None  # D-NeRF time, None for static scenes


def read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: malformed JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list):
        raise InputError(f"{path}: malformed transforms file, no \"frames\" list")
    if not data["frames"]:
        raise InputError(f"{path}: no images (empty \"frames\" list)")
    return data


def image_size(path: Path) -> tuple[int, int]:  # (width, height) of an image file, read in full
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{path}: unreadable image")
    return image.shape[1], image.shape[0]


def resolve_image(base_dir: Path, file_path: str, json_path: Path, index: int) -> Path:
    """`file_path` relative to `base_dir`, with or without its extension."""
    path = base_dir / file_path
    if path.is_file():
        return path
    for suffix in IMAGE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    raise InputError(f"{json_path}: frame {index} names image {file_path!r}, which is not on disk")


def opengl_to_opencv(c2w: np.ndarray) -> np.ndarray:  # [4,4] -> [4,4]: flip the camera's y and z axes
    c2w = c2w.copy()
    c2w[:3, 1:3] *= -1
    return c2w


def _pose(frame: dict, json_path: Path, index: int) -> np.ndarray:
    try:
        c2w = np.array(frame["transform_matrix"], dtype=np.float64)
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{json_path}: frame {index} has no valid \"transform_matrix\"") from None
    if c2w.shape == (3, 4):
        c2w = np.vstack([c2w, [0.0, 0.0, 0.0, 1.0]])
    if c2w.shape != (4, 4) or not np.isfinite(c2w).all():
        raise InputError(f"{json_path}: frame {index} \"transform_matrix\" is not a finite 4x4 matrix")
    return opengl_to_opencv(c2w)


def _intrinsics(p: dict, width: int, height: int, json_path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """K [3,3] and distortion [4] | None from instant-ngp style keys (fl_x or camera_angle_x, ...)."""
    try:
        if "fl_x" in p:
            fx = float(p["fl_x"])
        elif "camera_angle_x" in p:
            fx = 0.5 * width / math.tan(0.5 * float(p["camera_angle_x"]))
        else:
            raise InputError(f"{json_path}: neither \"fl_x\" nor \"camera_angle_x\" is given")
        if "fl_y" in p:
            fy = float(p["fl_y"])
        elif "camera_angle_y" in p:
            fy = 0.5 * height / math.tan(0.5 * float(p["camera_angle_y"]))
        else:
            fy = fx
        cx, cy = float(p.get("cx", width / 2)), float(p.get("cy", height / 2))
        dist = np.array([float(p.get(k, 0.0)) for k in ("k1", "k2", "p1", "p2")])
    except (TypeError, ValueError) as e:
        raise InputError(f"{json_path}: bad intrinsics ({e})") from None
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return K, (dist if np.any(dist != 0) else None)


def read_frames(json_path: Path, data_dir: Path) -> list[Frame]:
    """Frames of a NeRF-synthetic split file or an instant-ngp transforms.json (per-frame keys override)."""
    data = read_json(json_path)
    common = {k: data[k] for k in INTRINSIC_KEYS if k in data}
    times = ["time" in f for f in data["frames"] if isinstance(f, dict)]
    if any(times) and not all(times):
        raise InputError(f"{json_path}: some frames have a \"time\" and others do not")
    frames, size_of_first = [], None
    for i, frame in enumerate(data["frames"]):
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            raise InputError(f"{json_path}: frame {i} has no \"file_path\"")
        image_path = resolve_image(json_path.parent, frame["file_path"], json_path, i)
        p = {**common, **{k: frame[k] for k in INTRINSIC_KEYS if k in frame}}
        if "w" in p and "h" in p:
            width, height = int(round(float(p["w"]))), int(round(float(p["h"])))
        else:  # NeRF-synthetic: whatever the images are; read the first one only
            size_of_first = size_of_first or image_size(image_path)
            width, height = size_of_first
        K, dist = _intrinsics(p, width, height, json_path)
        try:
            time = float(frame["time"]) if "time" in frame else None
        except (TypeError, ValueError):
            raise InputError(f"{json_path}: frame {i} has a non-numeric \"time\"") from None
        name = image_path.relative_to(data_dir).as_posix() if image_path.is_relative_to(data_dir) else image_path.name
        frames.append(Frame(name, image_path, _pose(frame, json_path, i), K, width, height, dist, time))
    return frames
