"""A capture with known cameras, to test `process`: a textured room with a cube and a sphere, ray-cast in numpy.

Every surface carries a solid texture of random-colour cells with a random-colour dot in each, at two
scales (blobs and corners for SIFT at every distance), so structure from motion has something to hold on to,
unlike the demo's smooth stripes. Cameras walk an arc around the centre at varying heights, looking at it,
as a hand-held capture does. World: z up; cameras are OpenCV camera-to-world.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..data.demo import camera_looking_at

ROOM = (np.array([-6.0, -6.0, 0.0]), np.array([6.0, 6.0, 5.0]))  # inside faces are seen
CUBE = (np.array([-0.7, -0.7, 0.0]), np.array([0.7, 0.7, 1.4]))
SPHERE = (np.array([1.4, -1.1, 0.6]), 0.6)
TARGET = np.array([0.0, 0.0, 0.7])
_TABLE = np.random.default_rng(12345).random((8192, 8))  # per-cell random numbers


def _hash(cells: np.ndarray) -> np.ndarray:  # [N,3] int -> [N] index into _TABLE
    c = cells.astype(np.int64)
    return ((c[:, 0] * 73856093) ^ (c[:, 1] * 19349663) ^ (c[:, 2] * 83492791)) % len(_TABLE)


def albedo(p: np.ndarray) -> np.ndarray:
    """[N,3] points -> [N,3] colours in [0,1]: cells of size 0.6 and 0.15, each with a dot, blended."""
    colour = np.zeros_like(p)
    for size, weight in ((0.6, 0.55), (0.15, 0.45)):
        cells = np.floor(p / size)
        r = _TABLE[_hash(cells)]
        local = p / size - cells  # [0,1)^3 inside the cell
        base = r[:, 0:3] * 0.8 + 0.1
        dot = np.linalg.norm(local - (0.25 + 0.5 * r[:, 3:6]), axis=1) < 0.12 + 0.15 * r[:, 6]
        cell_colour = np.where(dot[:, None], 1.0 - base, base)
        colour += weight * cell_colour
    return colour


def _slabs(o, d, lo, hi):  # rays o [3], d [N,3] -> t_near, t_far [N]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (lo - o) / d, (hi - o) / d
    return np.minimum(t1, t2).max(1), np.maximum(t1, t2).min(1)


def trace(o: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Colours [N,3] seen along rays from `o` [3] in directions `d` [N,3] (unit)."""
    _, t = _slabs(o, d, *ROOM)  # the room's far wall from inside
    near, far = _slabs(o, d, *CUBE)
    hit = (near <= far) & (near > 1e-6)
    t = np.where(hit & (near < t), near, t)
    centre, radius = SPHERE
    oc = o - centre
    b = d @ oc
    disc = b * b - (oc @ oc - radius * radius)
    ts = -b - np.sqrt(np.maximum(disc, 0.0))
    t = np.where((disc > 0) & (ts > 1e-6) & (ts < t), ts, t)
    return albedo(o + d * t[:, None])


def look_at(eye: np.ndarray, target: np.ndarray = TARGET) -> np.ndarray:
    """[4,4] OpenCV camera-to-world at `eye` looking at `target` (default: the scene's centre), z up."""
    return camera_looking_at(eye, target)


def arc_cameras(n: int, arc_deg: float = 240.0, radius: float = 3.6, seed: int = 0) -> np.ndarray:
    """[n,4,4] cameras along an arc of `arc_deg` around the centre, height and distance wobbling."""
    rng = np.random.default_rng(seed)
    poses = []
    for k in range(n):
        a = math.radians(arc_deg) * k / max(n - 1, 1)
        r = radius * (1.0 + 0.08 * math.sin(3.1 * a)) + rng.normal(0, 0.03)
        z = 1.6 + 0.5 * math.sin(2.3 * a + 0.4) + rng.normal(0, 0.03)
        poses.append(look_at(np.array([r * math.cos(a), r * math.sin(a), z]), TARGET + rng.normal(0, 0.05, 3)))
    return np.stack(poses)


def render(c2w: np.ndarray, width: int, height: int, focal: float, supersample: int = 2,
           principal_offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """uint8 [H,W,3] RGB of a pinhole camera (principal point at the centre + `principal_offset` px), box-filtered
    supersamples."""
    s = supersample
    cx, cy = width / 2 + principal_offset[0], height / 2 + principal_offset[1]
    u, v = np.meshgrid((np.arange(width * s) + 0.5) / s, (np.arange(height * s) + 0.5) / s)
    dirs = np.stack([(u - cx) / focal, (v - cy) / focal, np.ones_like(u)], -1).reshape(-1, 3)
    dirs = dirs @ c2w[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    image = trace(c2w[:3, 3], dirs).reshape(height, s, width, s, 3).mean((1, 3))
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_capture(folder: Path, n: int, width: int, height: int, seed: int = 0, arc_deg: float = 240.0,
                  supersample: int = 2, principal_offset: tuple[float, float] = (0.0, 0.0)):
    """`folder/view_000.jpg ...` of `n` arc cameras; returns (names, c2w [n,4,4], focal)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    focal = 0.8 * width
    poses = arc_cameras(n, arc_deg=arc_deg, seed=seed)
    names = []
    for k, c2w in enumerate(poses):
        name = f"view_{k:03d}.jpg"
        cv2.imwrite(str(folder / name), render(c2w, width, height, focal, supersample, principal_offset)[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
        names.append(name)
    return names, poses, focal


def write_video(path: Path, frames_dir: Path, names: list[str], fps: float = 10.0) -> None:
    """The images `names` in `frames_dir` as one MPEG-4 video, in that order."""
    import cv2

    first = cv2.imread(str(frames_dir / names[0]))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (first.shape[1], first.shape[0]))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write MPEG-4 video here")
    for name in names:
        writer.write(cv2.imread(str(frames_dir / name)))
    writer.release()
