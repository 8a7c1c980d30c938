"""Off-path test views and the few-view floater measure (gspruner/data/splits.py)."""

import numpy as np
import torch

from gspruner.capture.synthetic import look_at
from gspruner.data.scene import Camera
from gspruner.data.splits import few_view_fraction, off_path_views, path_distances


def _camera(name: str, eye) -> Camera:
    c2w = torch.tensor(look_at(np.asarray(eye, dtype=np.float64), np.zeros(3)), dtype=torch.float32)
    K = torch.tensor([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    return Camera(name=name, K=K, c2w=c2w, width=64, height=48, image_path=None)


def _arc(names, degrees, radius=4.0, height=1.0):
    return [_camera(n, [radius * np.cos(np.radians(a)), radius * np.sin(np.radians(a)), height])
            for n, a in zip(names, degrees)]


def test_views_off_the_walked_arc_come_first():
    train = _arc([f"t{k}" for k in range(12)], np.linspace(0, 120, 12))
    test = _arc(["between", "end", "far", "opposite"], [55.0, 125.0, 200.0, 240.0])
    distance = path_distances(train, test)
    assert distance[0] < distance[1] < distance[2] < distance[3]
    assert off_path_views(train, test) == [3, 2]  # the farther half, farthest first
    assert off_path_views(train, test[:1]) == [0]


def test_few_view_fraction_counts_gaussians_outside_most_images():
    cams = _arc([f"c{k}" for k in range(6)], np.linspace(0, 60, 6))
    means = torch.tensor([[0.0, 0.0, 0.0],  # the centre every camera looks at
                          [0.0, 0.0, 30.0],  # far above: in no image
                          [3.5, 0.3, 1.0]])  # right in front of the first camera only
    opacities = torch.tensor([0.5, 0.25, 0.25])
    result = few_view_fraction(means, opacities, cams, k=3)
    assert result["few_view_fraction"] == 2 / 3
    assert result["few_view_opacity_share"] == 0.5
    assert few_view_fraction(means, opacities, cams, k=1)["few_view_fraction"] == 1 / 3  # only the one above
    assert few_view_fraction(means, opacities, cams, k=7)["few_view_fraction"] == 1.0
