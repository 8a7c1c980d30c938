"""A procedural demo scene, ray-cast in numpy and written as a COLMAP dataset.

Textured spheres and boxes (smooth stripes, checkers, gradients) on a checkerboard ground under a sky dome,
Lambert shading with hard shadows, 2x2 supersampling. Cameras orbit the centre at three heights. Output:
`images/view_XXX.png`, a binary PINHOLE model in `sparse/0/`, SfM-like points sampled on the visible
surfaces with their seen colours (plus a little position noise), and `demo.json` with the parameters.
World: z up, ground at z = 0, objects within ~1.6 of the origin, sky dome of radius 20.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np

from gspruner.data.colmap import ColmapCamera, ColmapImage, ColmapModel, ColmapPoints, rotmat_to_qvec, write_colmap_binary

DEMO_VERSION = 4
EPS = 1e-4
LIGHT = np.array([0.4, -0.3, 1.0]) / np.linalg.norm([0.4, -0.3, 1.0])  # towards the sun
AMBIENT, DIFFUSE = 0.35, 0.65
DOME_RADIUS = 20.0
TARGET = np.array([0.0, 0.0, 0.45])  # where the cameras look
ORBIT_DISTANCE = 4.8
ELEVATIONS_DEG = (12.0, 28.0, 45.0)  # camera k sits at height k % 3
HFOV_DEG = 60.0


def _mix(c1, c2, s):  # colours [3], [3], weights [M] -> [M,3]
    return np.asarray(c1) * (1 - s[:, None]) + np.asarray(c2) * s[:, None]


def _stripes(coord, period):  # smooth stripes in [0,1]
    return 0.5 + 0.5 * np.sin(2 * np.pi * coord / period)


class Sphere:
    def __init__(self, center, radius, albedo):
        self.center, self.radius, self.albedo_fn = np.array(center, float), radius, albedo

    def hit(self, o, d):  # o [N,3] or [3], d [N,3] unit -> t [N], inf on a miss
        oc = o - self.center
        b = np.sum(oc * d, axis=-1)
        disc = b * b - (np.sum(oc * oc, axis=-1) - self.radius ** 2)
        root = np.sqrt(np.maximum(disc, 0.0))
        t = np.where(-b - root > EPS, -b - root, np.where(-b + root > EPS, -b + root, np.inf))
        return np.where(disc >= 0, t, np.inf)

    def normal(self, p):
        return (p - self.center) / self.radius

    def albedo(self, p, n):
        return self.albedo_fn(p - self.center, n)


class Box:
    """Box turned by `angle_deg` about z; the albedo sees box-local coordinates."""

    def __init__(self, center, half, angle_deg, albedo):
        a = math.radians(angle_deg)
        self.center, self.half, self.albedo_fn = np.array(center, float), np.array(half, float), albedo
        self.axes = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])  # columns

    def hit(self, o, d):
        ol, dl = (o - self.center) @ self.axes, d @ self.axes
        inv = 1.0 / np.where(np.abs(dl) < 1e-12, 1e-12, dl)
        t1, t2 = (-self.half - ol) * inv, (self.half - ol) * inv
        tmin, tmax = np.minimum(t1, t2).max(axis=-1), np.maximum(t1, t2).min(axis=-1)
        t = np.where(tmin > EPS, tmin, tmax)
        return np.where((tmax >= tmin) & (t > EPS), t, np.inf)

    def normal(self, p):
        local = (p - self.center) @ self.axes
        k = np.argmax(np.abs(local) / self.half, axis=-1)
        n_local = np.zeros_like(local)
        n_local[np.arange(len(k)), k] = np.sign(local[np.arange(len(k)), k])
        return n_local @ self.axes.T

    def albedo(self, p, n):
        return self.albedo_fn((p - self.center) @ self.axes * 0.9999 + self.half, n)  # in [0, 2*half]


def _objects():
    def checker(cell, c1, c2):
        return lambda q, n: _mix(c1, c2, (np.floor(q / cell).sum(axis=-1) % 2).astype(float))

    return [
        Sphere([0.3, 0.2, 0.65], 0.65, lambda q, n: _mix([0.85, 0.2, 0.15], [0.95, 0.9, 0.8], _stripes(q[:, 2], 0.5))),
        Sphere([-1.2, 0.9, 0.4], 0.4, lambda q, n: 0.25 + 0.6 * (0.5 + 0.5 * n[:, [0, 2, 1]])),
        Box([-0.9, -0.8, 0.45], [0.45, 0.45, 0.45], 30.0, checker(0.3, [0.15, 0.3, 0.75], [0.95, 0.8, 0.25])),
        Sphere([-0.9, -0.8, 1.15], 0.25, lambda q, n: _mix([0.35, 0.15, 0.5], [0.85, 0.6, 0.9], 0.5 + 0.5 * n[:, 2])),
        Box([1.3, -0.9, 0.3], [0.25, 0.6, 0.3], -20.0, lambda q, n: _mix([0.2, 0.65, 0.3], [0.95, 0.55, 0.1], q[:, 1] / 1.2)),
        Box([1.0, 1.2, 0.6], [0.15, 0.15, 0.6], 10.0, lambda q, n: _mix([0.1, 0.5, 0.55], [0.9, 0.95, 0.9], _stripes(q[:, 2], 0.3))),
    ]


def _ground_albedo(p):  # 1-unit checker, edges softened over ~0.05, fading to grey between radius 3 and 5.5
    light, dark = np.array([0.78, 0.74, 0.66]), np.array([0.42, 0.4, 0.36])
    parity = 0.5 - 0.5 * np.clip(6 * np.sin(np.pi * p[:, 0]) * np.sin(np.pi * p[:, 1]), -1, 1)
    fade = np.clip((np.hypot(p[:, 0], p[:, 1]) - 3.0) / 2.5, 0.0, 1.0)
    return _mix(_mix(light, dark, parity), (light + dark) / 2, fade)


def _sky(p):  # gradient by elevation on the dome
    elevation = np.clip(p[:, 2] / DOME_RADIUS, 0.0, 1.0)
    return _mix([0.88, 0.92, 0.96], [0.35, 0.55, 0.85], np.sqrt(elevation))


def _closest(o, d, objects):  # rays from o [3] along d [N,3] -> t [N] (inf on a miss), object index [N] (-1)
    t = np.full(len(d), np.inf)
    hit_id = np.full(len(d), -1)
    for k, obj in enumerate(objects):
        tk = obj.hit(o, d)
        closer = tk < t
        t[closer], hit_id[closer] = tk[closer], k
    return t, hit_id


def _object_surface(p, hit_id, objects):  # albedo [N,3] and normal [N,3] where hit_id >= 0, zeros elsewhere
    color, normal = np.zeros_like(p), np.zeros_like(p)
    for k, obj in enumerate(objects):
        sel = hit_id == k
        if sel.any():
            normal[sel] = obj.normal(p[sel])
            color[sel] = obj.albedo(p[sel], normal[sel])
    return color, normal


def _lighting(p, normal, objects):  # ambient + Lambert with hard shadows cast by `objects`: [M] for points p [M,3]
    ps = p + 1e-3 * normal
    lit = np.ones(len(ps), bool)
    for obj in objects:
        lit &= ~np.isfinite(obj.hit(ps, np.broadcast_to(LIGHT, ps.shape)))
    return AMBIENT + DIFFUSE * np.maximum(normal @ LIGHT, 0.0) * lit


def _shade(o, d, objects):
    """Colour [N,3] and hit point [N,3] of rays from o [3] along d [N,3]."""
    t, hit_id = _closest(o, d, objects)  # -1 sky dome, -2 ground, k object k
    with np.errstate(divide="ignore"):
        t_ground = np.where(d[:, 2] < -1e-9, -o[2] / d[:, 2], np.inf)
    oc = o - 0.0
    b = d @ oc
    t_dome = -b + np.sqrt(b * b - (oc @ oc - DOME_RADIUS ** 2))  # from inside: the far root
    ground = (t_ground < t) & (t_ground < t_dome)
    t[ground], hit_id[ground] = t_ground[ground], -2
    sky = hit_id == -1
    t[sky] = t_dome[sky]
    p = o + t[:, None] * d

    color, normal = _object_surface(p, hit_id, objects)
    color[sky] = _sky(p[sky])
    normal[ground] = [0.0, 0.0, 1.0]
    color[ground] = _ground_albedo(p[ground])
    solid = ~sky
    color[solid] *= _lighting(p[solid], normal[solid], objects)[:, None]
    return np.clip(color, 0.0, 1.0), p


def orbit_c2w(k: int, n_views: int) -> np.ndarray:  # [4,4] OpenCV camera-to-world looking at TARGET
    elevation = math.radians(ELEVATIONS_DEG[k % len(ELEVATIONS_DEG)])
    return look_at(TARGET, ORBIT_DISTANCE, 2 * np.pi * k / n_views, elevation)


def look_at(target, distance: float, azimuth: float, elevation: float) -> np.ndarray:
    """[4,4] OpenCV camera-to-world at `distance` from `target` (angles in radians, z up), looking at it."""
    target = np.asarray(target, float)
    position = target + distance * np.array(
        [math.cos(elevation) * math.cos(azimuth), math.cos(elevation) * math.sin(azimuth), math.sin(elevation)])
    return camera_looking_at(position, target)


def camera_looking_at(eye, target) -> np.ndarray:
    """[4,4] OpenCV camera-to-world (x right, y down, z forward) at `eye` looking at `target`, z up."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    c2w = np.eye(4)
    c2w[:3, :3] = np.stack([right, down, forward], axis=1)
    c2w[:3, 3] = eye
    return c2w


def subpixel_rays(c2w: np.ndarray, K: np.ndarray, width: int, height: int) -> list[np.ndarray]:
    """Unit world directions [H*W,3] through the 2x2 subpixel grid (4 arrays), from the OpenCV camera c2w [4,4]."""
    u, v = np.meshgrid(np.arange(width, dtype=float), np.arange(height, dtype=float))
    rays = []
    for sy in (0.25, 0.75):
        for sx in (0.25, 0.75):
            cam = np.stack([(u + sx - K[0, 2]) / K[0, 0], (v + sy - K[1, 2]) / K[1, 1], np.ones_like(u)], -1)
            d = cam.reshape(-1, 3) @ c2w[:3, :3].T
            rays.append(d / np.linalg.norm(d, axis=-1, keepdims=True))
    return rays


def render_view(c2w: np.ndarray, K: np.ndarray, width: int, height: int, objects=None):
    """Image [H,W,3] float in [0,1] (2x2 supersampled) and per-pixel surface point [H,W,3] and colour."""
    objects = objects if objects is not None else _objects()
    samples = [_shade(c2w[:3, 3], d, objects) for d in subpixel_rays(c2w, K, width, height)]
    image = np.mean([c for c, _ in samples], axis=0).reshape(height, width, 3)
    color, points = samples[0]
    return image, points.reshape(height, width, 3), color.reshape(height, width, 3)


def _generate(out: Path, width: int, height: int, n_views: int, n_points: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    f = width / (2 * math.tan(math.radians(HFOV_DEG) / 2))
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    objects = _objects()
    (out / "images").mkdir(parents=True)
    images, all_points, all_colors = [], [], []
    for k in range(n_views):
        c2w = orbit_c2w(k, n_views)
        image, points, colors = render_view(c2w, K, width, height, objects)
        name = f"view_{k:03d}.png"
        cv2.imwrite(str(out / "images" / name), np.round(image[..., ::-1] * 255).astype(np.uint8))
        R = c2w[:3, :3].T
        images.append(ColmapImage(k + 1, name, 1, rotmat_to_qvec(R), -R @ c2w[:3, 3]))
        all_points.append(points.reshape(-1, 3))
        all_colors.append(colors.reshape(-1, 3))
    points, colors = np.concatenate(all_points), np.concatenate(all_colors)
    pick = rng.choice(len(points), size=min(n_points, len(points)), replace=False)
    xyz = points[pick] + rng.normal(scale=0.01, size=(len(pick), 3))
    rgb = np.round(colors[pick] * 255).astype(np.uint8)
    camera = ColmapCamera(1, "PINHOLE", width, height, np.array([f, f, width / 2, height / 2]))
    write_colmap_binary(out / "sparse" / "0", ColmapModel({1: camera}, images, ColmapPoints(xyz, rgb, np.full(len(pick), 0.5))))


def ensure_demo_scene(root=Path("data/demo"), width: int = 128, height: int = 96, n_views: int = 48,
                      n_points: int = 10_000, seed: int = 0) -> Path:
    """Generates the demo scene at `root` once (atomically: temp dir + rename); returns `root`."""
    params = {"version": DEMO_VERSION, "width": width, "height": height, "n_views": n_views,
              "n_points": n_points, "seed": seed}
    return ensure_generated(Path(root), params, "demo.json", "sparse/0/images.bin",
                            lambda out: _generate(out, width, height, n_views, n_points, seed))


def ensure_generated(root: Path, params: dict, meta_name: str, marker: str, generate) -> Path:
    """`generate(tmp)` into a temp dir beside `root`, then renamed to `root` (with `params` in `root/meta_name`),
    unless `root/marker` exists and `root/meta_name` already holds `params`; returns `root`."""
    meta = root / meta_name
    if (root / marker).is_file() and meta.is_file():
        try:
            if json.loads(meta.read_text()) == params:
                return root
        except (OSError, ValueError):
            pass
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.tmp.", dir=root.parent))
    try:
        generate(tmp)
        (tmp / meta_name).write_text(json.dumps(params, indent=1) + "\n")
        if root.exists():
            old = root.with_name(f".{root.name}.old.{os.getpid()}")
            root.rename(old)
            tmp.rename(root)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
