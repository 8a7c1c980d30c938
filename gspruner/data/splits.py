"""Which test views lie off the capture path, and how many Gaussians few training views constrain.

The every-8th split (Mip-NeRF 360) holds out views between training views: they sit on the path the camera
walked, where floaters hide behind the views they were fitted to. A user judges a scene from elsewhere.
- `off_path_views`: the test views farthest from their nearest training camera, the farther half of them
  (distance: camera centres in units of the training cameras' radius, plus 1 − cos of the angle between
  viewing directions); `evaluate` reports the metrics over them as `*_off_path`.
- `few_view_fraction`: a floater measure without ground truth: the share of Gaussians whose centre falls in
  front of fewer than `k` training cameras' images (a Gaussian seen by one or two views is free to sit
  anywhere along their rays: the definition of a floater), and that share weighted by opacity.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _centres_and_directions(cams) -> tuple[np.ndarray, np.ndarray]:
    c2w = np.stack([cam.c2w.double().numpy() for cam in cams])  # [n,4,4] OpenCV camera-to-world
    return c2w[:, :3, 3], c2w[:, :3, 2]  # centres, forward (+z) axes


def path_distances(train, test) -> np.ndarray:
    """[len(test)] distance of each test camera to its nearest training camera (module doc)."""
    if not train or not test:
        return np.zeros(len(test))
    train_c, train_d = _centres_and_directions(train)
    test_c, test_d = _centres_and_directions(test)
    radius = float(np.median(np.linalg.norm(train_c - train_c.mean(0), axis=1))) or 1.0
    position = np.linalg.norm(test_c[:, None] - train_c[None], axis=2) / radius  # [test, train]
    direction = 1.0 - np.clip(test_d @ train_d.T, -1.0, 1.0)
    return (position + direction).min(axis=1)


def off_path_views(train, test) -> list[int]:
    """Indices into `test` of its farther half from the training path (at least one), farthest first."""
    if not test:
        return []
    distance = path_distances(train, test)
    keep = max(1, math.ceil(len(test) / 2))
    return [int(i) for i in np.argsort(-distance, kind="stable")[:keep]]


@torch.no_grad()
def few_view_fraction(means: torch.Tensor, opacities: torch.Tensor, cams, k: int = 3) -> dict:
    """Share of Gaussians (means [N,3], activated opacities [N]) inside fewer than `k` training images."""
    n = means.shape[0]
    if n == 0 or not cams:
        return {"few_view_fraction": None, "few_view_opacity_share": None, "few_view_k": k}
    seen = torch.zeros(n, dtype=torch.int32)
    points = means.detach().double().cpu()
    for cam in cams:
        w2c = cam.viewmat.double()
        p = points @ w2c[:3, :3].T + w2c[:3, 3]
        z = p[:, 2]
        K = cam.K.double()
        u = K[0, 0] * p[:, 0] / z.clamp_min(1e-9) + K[0, 2]
        v = K[1, 1] * p[:, 1] / z.clamp_min(1e-9) + K[1, 2]
        seen += ((z > 0.01) & (u >= 0) & (u < cam.width) & (v >= 0) & (v < cam.height)).int()
    few = seen < k
    weight = opacities.detach().double().cpu().flatten()
    return {"few_view_fraction": float(few.double().mean()),
            "few_view_opacity_share": float(weight[few].sum() / weight.sum().clamp_min(1e-12)), "few_view_k": k}
