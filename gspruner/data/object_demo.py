"""A procedural static object scene, ray-cast in numpy with demo.py's caster and written in the NeRF-synthetic layout.

A cream-white chair at the origin: a square seat with faint wood-grain stripes, four thin legs (0.05 wide), two
thin back posts carrying a thin backrest panel and rail, and a small blue ball on the seat as the one coloured
accent. It is the regression guard for object scenes on a transparent background: near-white surfaces are what a
model composited on white can fake with "transparent", and the thin legs and posts are what it loses first.
No ground and no sky: rays that miss are transparent (alpha 0), as in NeRF-synthetic.
Cameras at distance 4 look at the origin with NeRF-synthetic's field of view. Train views lie on a golden-angle
(Fibonacci) spiral over the upper hemisphere, elevations 5..70 degrees spread evenly in area, the spiral turned
by a random azimuth drawn from `seed`; each test view is the best of 64 random candidates on the same band (the
one farthest from every train view and earlier test view), so test views are held-out viewpoints, not duplicates.
Output: `transforms_{train,test}.json` (OpenGL camera-to-world, no "time": kind "blender"), RGBA PNGs
`train/r_XXX.png` and `test/r_XXX.png` (2x2 supersampled, straight alpha) and `object_demo.json` with the parameters.
World: z up, seat top at z = 0, legs down to z = -0.95, backrest up to z = 0.9, |x|, |y| <= 0.5.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from gspruner.data.demo import Box, Sphere, _mix, _stripes, ensure_generated, look_at
from gspruner.data.dynamic_demo import CAMERA_DISTANCE, write_rgba_split

OBJECT_VERSION = 1
ELEVATIONS_DEG = (5.0, 70.0)  # band of the camera elevations (train and test)
TEST_CANDIDATES = 64
CREAM = np.array([0.93, 0.9, 0.82])

# chair geometry (world units)
SEAT_HALF = 0.5  # seat: |x|, |y| <= 0.5, z in [-SEAT_THICKNESS, 0]
SEAT_THICKNESS = 0.1
LEG_XY = 0.44  # leg centres at (+-LEG_XY, +-LEG_XY)
LEG_HALF_WIDTH = 0.025  # legs and back posts are 0.05 wide
LEG_BOTTOM = -0.95
BACK_TOP = 0.9  # the back posts (x = -LEG_XY) rise to here


def chair_objects() -> list:
    """The chair as demo.py Spheres / Boxes: [seat, 4 legs (x, y) = (+,+), (+,-), (-,+), (-,-), 2 back posts,
    backrest panel, backrest rail, accent ball]."""

    def seat(q, n):  # faint grain along x, slightly warmer on the edges
        grain = _stripes(q[:, 0] + 0.15 * np.sin(7.0 * q[:, 1]), 0.12)
        return _mix([0.95, 0.93, 0.87], [0.88, 0.84, 0.74], 0.35 * grain)

    def wood(q, n):  # legs and posts: cream, a shade darker towards the floor
        return _mix(CREAM * 0.94, CREAM, np.clip(q[:, 2] / 1.0, 0.0, 1.0))

    def panel(q, n):  # backrest: faint horizontal bands
        return _mix([0.96, 0.94, 0.9], [0.9, 0.87, 0.78], 0.4 * _stripes(q[:, 2], 0.09))

    leg_half_height = 0.5 * (-SEAT_THICKNESS - LEG_BOTTOM)
    leg_z = LEG_BOTTOM + leg_half_height
    legs = [Box([sx * LEG_XY, sy * LEG_XY, leg_z], [LEG_HALF_WIDTH, LEG_HALF_WIDTH, leg_half_height], 0.0, wood)
            for sx, sy in ((1, 1), (1, -1), (-1, 1), (-1, -1))]
    post_half_height = 0.5 * BACK_TOP
    posts = [Box([-LEG_XY, sy * LEG_XY, post_half_height], [LEG_HALF_WIDTH, LEG_HALF_WIDTH, post_half_height], 0.0,
                 wood) for sy in (1, -1)]
    return [
        Box([0.0, 0.0, -0.5 * SEAT_THICKNESS], [SEAT_HALF, SEAT_HALF, 0.5 * SEAT_THICKNESS], 0.0, seat),
        *legs,
        *posts,
        Box([-LEG_XY, 0.0, 0.66], [0.02, LEG_XY - LEG_HALF_WIDTH, 0.18], 0.0, panel),  # 0.04 thick
        Box([-LEG_XY, 0.0, 0.3], [0.018, LEG_XY - LEG_HALF_WIDTH, 0.03], 0.0, wood),  # thin rail
        Sphere([0.12, 0.1, 0.16], 0.16,
               lambda q, n: _mix([0.08, 0.25, 0.7], [0.25, 0.6, 0.95], 0.5 + 0.5 * n[:, 2])),
    ]


def _direction(azimuth, elevation):  # unit vectors [N,3] from angles [N]
    return np.stack([np.cos(elevation) * np.cos(azimuth), np.cos(elevation) * np.sin(azimuth), np.sin(elevation)], -1)


def view_angles(n_train: int, n_test: int, seed: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """split -> (azimuths [n], elevations [n]) in radians."""
    rng = np.random.default_rng(seed)
    z_lo, z_hi = np.sin(np.radians(ELEVATIONS_DEG))
    k = np.arange(n_train)
    train_el = np.arcsin(z_lo + (z_hi - z_lo) * (k + 0.5) / n_train)  # even in area over the band
    train_az = (rng.uniform(0, 2 * math.pi) + k * math.pi * (3 - math.sqrt(5))) % (2 * math.pi)  # golden angle
    taken = list(_direction(train_az, train_el))
    test_az, test_el = [], []
    for _ in range(n_test):
        az = rng.uniform(0, 2 * math.pi, TEST_CANDIDATES)
        el = np.arcsin(rng.uniform(z_lo, z_hi, TEST_CANDIDATES))
        best = np.argmin((_direction(az, el) @ np.stack(taken).T).max(axis=1))  # farthest from every view so far
        test_az.append(az[best])
        test_el.append(el[best])
        taken.append(_direction(az[best], el[best]))
    return {"train": (train_az, train_el), "test": (np.array(test_az), np.array(test_el))}


def _generate(out: Path, width: int, height: int, n_train: int, n_test: int, seed: int) -> None:
    objects = chair_objects()
    for split, (azimuths, elevations) in view_angles(n_train, n_test, seed).items():
        frames = [(look_at(np.zeros(3), CAMERA_DISTANCE, az, el), objects, {}) for az, el in zip(azimuths, elevations)]
        write_rgba_split(out, split, frames, width, height)


def ensure_object_demo_scene(root: Path, width: int = 64, height: int = 64, n_train: int = 40, n_test: int = 8,
                             seed: int = 0) -> Path:
    """Generates the static object scene at `root` once (atomically: temp dir + rename); returns `root`."""
    if n_train < 1 or n_test < 0:
        raise ValueError(f"need n_train >= 1 and n_test >= 0, got {n_train} and {n_test}")
    params = {"version": OBJECT_VERSION, "width": width, "height": height, "n_train": n_train, "n_test": n_test,
              "seed": seed}
    return ensure_generated(Path(root), params, "object_demo.json", "transforms_train.json",
                            lambda out: _generate(out, width, height, n_train, n_test, seed))
