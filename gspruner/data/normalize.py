"""World normalization as gsplat's `examples/datasets/normalize.py` (1.5.3), reimplemented.

1. `similarity_from_cameras`: rotate so that the mean camera up (-y) is +z, recenter on the median of the
   cameras' focus points (the point of each optical axis nearest to the origin), scale by 1 / median
   camera distance. (gsplat's code turns the mean up to -y instead; with SfM points the PCA step below
   decides the final axes either way, so only scenes without points see the difference.)
2. `align_principal_axes` on the points: PCA about their median, z = the smallest axis.
3. A 180 degree turn about x when median(z) > mean(z) (assumes most points lie low, on the ground).
All transforms are similarities: cameras stay rigid, projections of points are unchanged.
"""

from __future__ import annotations

import numpy as np

FLIP_X = np.diag([1.0, -1.0, -1.0, 1.0])  # 180 degrees about x


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # unit [3], unit [3] -> [3,3], R @ a = b
    v, c = np.cross(a, b), float(np.dot(a, b))
    if c < -1 + 1e-9:  # opposite: half a turn about any axis perpendicular to a
        axis = np.cross(a, [1.0, 0.0, 0.0] if abs(a[0]) < 0.9 else [0.0, 1.0, 0.0])
        axis /= np.linalg.norm(axis)
        return 2 * np.outer(axis, axis) - np.eye(3)
    skew = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + skew + skew @ skew / (1 + c)


def similarity_from_cameras(c2w: np.ndarray) -> np.ndarray:  # [N,4,4] OpenCV c2w -> [4,4] similarity
    R, t = c2w[:, :3, :3], c2w[:, :3, 3]
    up = -R[:, :, 1].mean(axis=0)
    R_align = rotation_between(up / np.linalg.norm(up), np.array([0.0, 0.0, 1.0]))
    R, t = R_align @ R, t @ R_align.T
    forward = R[:, :, 2]  # [N,3]
    focus = t - np.sum(t * forward, axis=-1, keepdims=True) * forward  # nearest point to the origin per axis
    translate = -np.median(focus, axis=0)
    scale = 1.0 / np.median(np.linalg.norm(t + translate, axis=-1))
    T = np.eye(4)
    T[:3, :3] = scale * R_align
    T[:3, 3] = scale * translate
    return T


def align_principal_axes(points: np.ndarray) -> np.ndarray:  # [P,3] -> [4,4] rigid
    center = np.median(points, axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(points - center, rowvar=False))
    axes = eigenvectors[:, np.argsort(eigenvalues)[::-1]]  # columns: largest .. smallest variance
    if np.linalg.det(axes) < 0:
        axes[:, 0] *= -1
    T = np.eye(4)
    T[:3, :3] = axes.T
    T[:3, 3] = -axes.T @ center
    return T


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:  # [4,4], [P,3] -> [P,3]
    return points @ T[:3, :3].T + T[:3, 3]


def transform_cameras(T: np.ndarray, c2w: np.ndarray) -> np.ndarray:  # [4,4], [N,4,4] -> [N,4,4] rigid
    out = T @ c2w
    scale = np.linalg.norm(T[:3, 0])
    out[:, :3, :3] /= scale
    return out


def normalize_world(c2w: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """[N,4,4] c2w, [P,3] points -> (c2w, points, T [4,4]) in the normalized world. PCA needs P >= 4."""
    T = similarity_from_cameras(c2w)
    if len(points) >= 4:
        T = align_principal_axes(transform_points(T, points)) @ T
        z = transform_points(T, points)[:, 2]
        if np.median(z) > np.mean(z):
            T = FLIP_X @ T
    return transform_cameras(T, c2w), transform_points(T, points), T


def camera_extent(c2w: np.ndarray) -> float:  # [N,4,4] -> max distance of camera centres from their mean
    centers = c2w[:, :3, 3]
    return float(np.max(np.linalg.norm(centers - centers.mean(axis=0), axis=-1)))


def shared_view_sphere(c2w: np.ndarray, half_fov_tan: np.ndarray) -> tuple[np.ndarray, float]:
    """The sphere every camera sees whole: the bounds of an object-centric capture.

    c2w [N,4,4] OpenCV camera-to-world, half_fov_tan [N] tan of each camera's smaller half field of view.
    Centre: the point nearest to all optical axes (least squares); radius: min over cameras of
    d_i · sin(θ_i − φ_i), with d_i the camera's distance to the centre, θ_i its half field of view and φ_i the
    angle between its axis and the centre. On NeRF-synthetic (cameras at radius ~4, 40° FOV) this is ~1.37,
    about INRIA 3DGS's ±1.3 random-init cube for those scenes.
    """
    origins, axes = c2w[:, :3, 3], c2w[:, :3, 2]
    axes = axes / np.linalg.norm(axes, axis=-1, keepdims=True)
    P = np.eye(3)[None] - axes[:, :, None] * axes[:, None, :]  # [N,3,3] projectors orthogonal to each axis
    A, b = P.sum(axis=0), np.einsum("nij,nj->i", P, origins)
    center = np.linalg.lstsq(A, b, rcond=None)[0] if len(c2w) > 1 else origins[0] + axes[0]
    to_center = center - origins
    distance = np.linalg.norm(to_center, axis=-1)
    cos_offset = np.einsum("ni,ni->n", to_center, axes) / np.maximum(distance, 1e-12)
    offset = np.arccos(np.clip(cos_offset, -1.0, 1.0))
    margin = np.clip(np.arctan(half_fov_tan) - offset, 0.0, None)
    radius = float(np.min(distance * np.sin(margin)))
    if radius <= 0:  # no point seen by every camera: fall back to the cameras' own spread
        radius = 0.5 * camera_extent(c2w)
    return center, radius
