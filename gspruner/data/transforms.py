"""NeRF-synthetic / D-NeRF `transforms_{split}.json`, and instant-ngp / nerfstudio `transforms.json` camera files.

All store OpenGL camera-to-world matrices (x right, y up, z backward); frames come back in OpenCV
convention (x right, y down, z forward) with intrinsics at the image files' full resolution. Read as
nerfstudio's dataparser reads them: intrinsics at the top level or per frame (a frame's keys win), `w`/`h`
or else each frame's own image size, `camera_model` (pinhole ones: OPENCV with k1, k2, k3, p1, p2, which is
OpenCV's radial-tangential model; a fisheye, equirectangular or other model is refused with one line, as is
a k4, nerfstudio's r^8 term that OpenCV's model has no place for), `mask_path` per frame, and `ply_file_path`
for the initial points (in the frames' world, as nerfstudio writes it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gspruner.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG")
INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y", "k1", "k2", "k3", "k4",
                  "p1", "p2", "camera_model")
# nerfstudio's camera models that are a pinhole with (optional) OpenCV radial-tangential distortion
PINHOLE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL")


@dataclass
class Frame:
    name: str  # image path relative to the data dir
    image_path: Path
    c2w: np.ndarray  # [4,4] float64, OpenCV convention
    K: np.ndarray  # [3,3] float64 at (width, height)
    width: int
    height: int
    dist: np.ndarray | None  # [5] float64 OpenCV (k1, k2, p1, p2, k3) or None when there is no distortion
    time: float | None  # D-NeRF time, None for static scenes
    mask_path: Path | None = None  # nerfstudio's per-frame mask (white = keep)


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


def image_size(path: Path) -> tuple[int, int]:  # (width, height) of an image file as stored, from its header
    from gspruner.data.images import read_header

    header = read_header(path)
    return header.width, header.height


def resolve_image(base_dir: Path, file_path: str, json_path: Path, index: int, key: str = "file_path") -> Path:
    """`file_path` relative to `base_dir`, with or without its extension."""
    path = base_dir / file_path
    if path.is_file():
        return path
    for suffix in IMAGE_SUFFIXES:
        candidate = path.with_name(path.name + suffix)
        if candidate.is_file():
            return candidate
    what = "image" if key == "file_path" else f"{key}"
    raise InputError(f"{json_path}: frame {index} names {what} {file_path!r}, which is not on disk")


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
    R = c2w[:3, :3]
    if abs(np.linalg.det(R) - 1.0) > 1e-2 or np.abs(R.T @ R - np.eye(3)).max() > 1e-2:
        raise InputError(f"{json_path}: frame {index} \"transform_matrix\" does not hold a rotation (determinant "
                         f"{np.linalg.det(R):.4g}): a camera pose is a rotation and a translation")
    return opengl_to_opencv(c2w)


def _number(p: dict, key: str, json_path: Path, where: str, positive: bool = False) -> float:
    try:
        value = float(p[key])
    except (TypeError, ValueError):
        raise InputError(f"{json_path}: {where}\"{key}\" is not a number ({p[key]!r})") from None
    if not math.isfinite(value) or (positive and value <= 0):
        raise InputError(f"{json_path}: {where}\"{key}\" must be {'positive' if positive else 'finite'}, got {value}")
    return value


def _intrinsics(p: dict, width: int, height: int, json_path: Path, where: str) -> tuple[np.ndarray, np.ndarray | None]:
    """K [3,3] and OpenCV distortion [5] | None from instant-ngp / nerfstudio keys (fl_x or camera_angle_x, ...)."""
    model = p.get("camera_model", "OPENCV")
    if model not in PINHOLE_MODELS:
        raise InputError(f"{json_path}: {where}camera_model {model!r} is not supported (pinhole models only: "
                         f"{', '.join(PINHOLE_MODELS)}); undistort the images to a pinhole camera first, e.g. "
                         f"with COLMAP's image_undistorter")
    if "fl_x" in p:
        fx = _number(p, "fl_x", json_path, where, positive=True)
    elif "camera_angle_x" in p:
        fx = 0.5 * width / math.tan(0.5 * _number(p, "camera_angle_x", json_path, where, positive=True))
    else:
        raise InputError(f"{json_path}: {where}neither \"fl_x\" nor \"camera_angle_x\" is given")
    if "fl_y" in p:
        fy = _number(p, "fl_y", json_path, where, positive=True)
    elif "camera_angle_y" in p:
        fy = 0.5 * height / math.tan(0.5 * _number(p, "camera_angle_y", json_path, where, positive=True))
    else:
        fy = fx
    if not (math.isfinite(fx) and math.isfinite(fy) and fx > 0 and fy > 0):
        raise InputError(f"{json_path}: {where}focal length must be positive, got {fx} x {fy}")
    cx = _number(p, "cx", json_path, where) if "cx" in p else width / 2
    cy = _number(p, "cy", json_path, where) if "cy" in p else height / 2
    k1, k2, k3, k4, p1, p2 = (_number(p, k, json_path, where) if k in p else 0.0
                              for k in ("k1", "k2", "k3", "k4", "p1", "p2"))
    if k4 != 0:
        raise InputError(f"{json_path}: {where}\"k4\" = {k4} is not supported (nerfstudio's r^8 radial term, which "
                         f"OpenCV's distortion model lacks); undistort the images first")
    dist = np.array([k1, k2, p1, p2, k3])
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return K, (dist if np.any(dist != 0) else None)


def _size(p: dict, image_path: Path, json_path: Path, where: str) -> tuple[int, int]:
    """(width, height) from "w" and "h", else the frame's own image file (its header)."""
    if "w" in p and "h" in p:
        w, h = (_number(p, k, json_path, where, positive=True) for k in ("w", "h"))
        if w != int(w) or h != int(h):
            raise InputError(f"{json_path}: {where}\"w\" and \"h\" must be whole numbers, got {w} x {h}")
        return int(w), int(h)
    return image_size(image_path)


def read_frames(json_path: Path, data_dir: Path) -> list[Frame]:
    """Frames of a NeRF-synthetic split file or an instant-ngp / nerfstudio transforms.json (per-frame keys
    override the top-level ones)."""
    data = read_json(json_path)
    common = {k: data[k] for k in INTRINSIC_KEYS if k in data}
    times = ["time" in f for f in data["frames"] if isinstance(f, dict)]
    if any(times) and not all(times):
        raise InputError(f"{json_path}: some frames have a \"time\" and others do not")
    frames = []
    for i, frame in enumerate(data["frames"]):
        if not isinstance(frame, dict) or not isinstance(frame.get("file_path"), str):
            raise InputError(f"{json_path}: frame {i} has no \"file_path\"")
        image_path = resolve_image(json_path.parent, frame["file_path"], json_path, i)
        own = [k for k in INTRINSIC_KEYS if k in frame]
        p = {**common, **{k: frame[k] for k in own}}
        where = f"frame {i}: " if own else ""
        width, height = _size(p, image_path, json_path, where)
        K, dist = _intrinsics(p, width, height, json_path, where)
        try:
            time = float(frame["time"]) if "time" in frame else None
        except (TypeError, ValueError):
            raise InputError(f"{json_path}: frame {i} has a non-numeric \"time\"") from None
        mask_path = None
        if frame.get("mask_path") is not None:
            if not isinstance(frame["mask_path"], str):
                raise InputError(f"{json_path}: frame {i} \"mask_path\" is not a path")
            mask_path = resolve_image(json_path.parent, frame["mask_path"], json_path, i, key="mask_path")
        name = image_path.relative_to(data_dir).as_posix() if image_path.is_relative_to(data_dir) else image_path.name
        frames.append(Frame(name, image_path, _pose(frame, json_path, i), K, width, height, dist, time, mask_path))
    return frames


def read_frames_points(json_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The initial points of a nerfstudio transforms.json (`ply_file_path`, relative to its folder):
    ([P,3] float64, [P,3] uint8); empty without one."""
    data = read_json(json_path)
    if data.get("ply_file_path") is None:
        return np.zeros((0, 3)), np.zeros((0, 3), np.uint8)
    if not isinstance(data["ply_file_path"], str):
        raise InputError(f"{json_path}: \"ply_file_path\" is not a path")
    path = json_path.parent / data["ply_file_path"]
    if not path.is_file():
        raise InputError(f"{json_path}: \"ply_file_path\" names {data['ply_file_path']!r}, which is not on disk")
    return read_point_cloud(path)


def read_point_cloud(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A point-cloud PLY (x, y, z and optionally red, green, blue; what nerfstudio and COLMAP write):
    ([P,3] float64, [P,3] uint8, grey where the file has no colour). InputError for anything else."""
    import plyfile

    try:
        ply = plyfile.PlyData.read(str(path))
        vertex = ply["vertex"]
        data = vertex.data
        if len(data) != vertex.count:
            raise plyfile.PlyParseError("early end-of-file")
    except KeyError:
        raise InputError(f"{path}: PLY file has no 'vertex' element") from None
    except Exception as e:  # plyfile raises PlyParseError, ValueError, EOFError, UnicodeDecodeError, ...
        raise InputError(f"{path}: not a readable PLY file ({' '.join(str(e).split()) or type(e).__name__})") from None
    names = set(data.dtype.names or ())
    missing = [n for n in ("x", "y", "z") if n not in names]
    if missing:
        raise InputError(f"{path}: point cloud lacks properties {', '.join(missing)}")
    xyz = np.stack([np.asarray(data[n], np.float64) for n in ("x", "y", "z")], axis=1)
    bad = ~np.isfinite(xyz).all(axis=1)
    if bad.any():
        raise InputError(f"{path}: {int(bad.sum())} of {len(xyz)} points have non-finite coordinates")
    if all(n in names for n in ("red", "green", "blue")):
        rgb = np.stack([np.asarray(data[n]) for n in ("red", "green", "blue")], axis=1)
        if rgb.dtype.kind == "f":  # colours stored as floats in [0, 1]
            rgb = np.clip(rgb * 255.0 + 0.5, 0, 255)
        rgb = rgb.astype(np.uint8)
    else:
        rgb = np.full((len(xyz), 3), 128, np.uint8)
    return xyz, rgb
