"""The procedural D-NeRF scene: layout, times, RGBA, the loader's view of it, and that the objects move."""

import json

import cv2
import numpy as np
import pytest

from gspruner.data import ensure_dynamic_demo_scene, load_scene
from gspruner.data.dynamic_demo import render_rgba


def as_numpy(cam):  # OpenCV c2w [4,4], K [3,3] in float64
    return cam.c2w.double().numpy(), cam.K.double().numpy()


def test_layout(tiny_dynamic_scene):
    root = tiny_dynamic_scene
    for split, n in (("train", 24), ("test", 6)):
        meta = json.loads((root / f"transforms_{split}.json").read_text())
        assert meta["camera_angle_x"] > 0 and len(meta["frames"]) == n
        assert meta["frames"][0]["file_path"] == f"./{split}/r_000"
        image = cv2.imread(str(root / split / "r_000.png"), cv2.IMREAD_UNCHANGED)
        assert image.shape == (40, 40, 4) and image.dtype == np.uint8
    assert json.loads((root / "dynamic_demo.json").read_text())["n_train"] == 24


def test_loads_as_dnerf(tiny_dynamic_scene):
    scene = load_scene(tiny_dynamic_scene)
    assert scene.kind == "dnerf" and len(scene.train) == 24 and len(scene.test) == 6
    assert scene.background == (1.0, 1.0, 1.0)  # RGBA images are composited
    times = np.array([c.time for c in scene.train])
    np.testing.assert_allclose(times, np.linspace(0, 1, 24))
    test_times = np.array([c.time for c in scene.test])
    assert ((test_times > 0) & (test_times < 1)).all()
    assert np.abs(test_times[:, None] - times[None]).min() > 0.01  # between train times
    for cam in scene.train + scene.test:
        c2w, _ = as_numpy(cam)
        assert (cam.width, cam.height) == (40, 40)
        assert np.linalg.norm(c2w[:3, 3]) == pytest.approx(4.0)
        assert c2w[:3, 2] @ -c2w[:3, 3] / 4.0 == pytest.approx(1.0)  # OpenCV +z looks at the origin
    positions = np.stack([as_numpy(c)[0][:3, 3] for c in scene.train])
    steps = np.diff(np.unwrap(np.arctan2(positions[:, 1], positions[:, 0])))
    np.testing.assert_allclose(steps, 2 * np.pi / 24, atol=1e-5)  # azimuth advancing with the frame
    assert np.ptp(positions[:, 2]) > 1.0  # varied elevations


def test_alpha_and_background(tiny_dynamic_scene):
    black = load_scene(tiny_dynamic_scene, background=(0.0, 0.0, 0.0))
    white = load_scene(tiny_dynamic_scene)
    for k in (0, 11, 23):
        dark, light = black.image(black.train[k]).numpy(), white.image(white.train[k]).numpy()
        for y, x in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
            np.testing.assert_array_equal(dark[y, x], 0.0)
            np.testing.assert_array_equal(light[y, x], 1.0)
        assert np.abs(dark[20, 20] - light[20, 20]).max() < 1e-6  # the centre is opaque: no background shows
        raw = cv2.imread(str(black.train[k].image_path), cv2.IMREAD_UNCHANGED)
        assert raw[[0, 0, -1, -1], [0, -1, 0, -1], 3].max() == 0 and raw[19:21, 19:21, 3].min() > 0
        assert 0 < (raw[..., 3] == 255).mean() < 0.5 and ((raw[..., 3] > 0) & (raw[..., 3] < 255)).any()  # antialiased


def test_pose_round_trip(tiny_dynamic_scene):
    """Re-rendering from the loaded (OpenCV) camera at its time reproduces the stored image."""
    scene = load_scene(tiny_dynamic_scene, background=(0.0, 0.0, 0.0))
    for cam in (scene.train[7], scene.test[2]):
        rgba = render_rgba(*as_numpy(cam), cam.width, cam.height, cam.time)
        np.testing.assert_allclose(scene.image(cam).numpy(), rgba[..., :3] * rgba[..., 3:], atol=1.5 / 255)


def test_objects_move(tiny_dynamic_scene):
    scene = load_scene(tiny_dynamic_scene)
    c2w, K = as_numpy(scene.train[5])
    start, end = render_rgba(c2w, K, 40, 40, 0.0), render_rgba(c2w, K, 40, 40, 1.0)
    assert np.abs(start[..., 3] - end[..., 3]).mean() > 0.02  # silhouettes differ
    assert np.abs(start - end).max() > 0.5
    np.testing.assert_array_equal(render_rgba(c2w, K, 40, 40, 0.3), render_rgba(c2w, K, 40, 40, 0.3))


def test_regenerates_when_params_change(tmp_path):
    root = ensure_dynamic_demo_scene(tmp_path / "dyn", width=8, height=8, n_train=3, n_test=0)
    assert not (root / "transforms_test.json").exists()
    stamp = (root / "train" / "r_000.png").stat().st_mtime_ns
    assert ensure_dynamic_demo_scene(root, width=8, height=8, n_train=3, n_test=0) == root
    assert (root / "train" / "r_000.png").stat().st_mtime_ns == stamp  # cached
    ensure_dynamic_demo_scene(root, width=8, height=8, n_train=4, n_test=1)
    assert len(json.loads((root / "transforms_train.json").read_text())["frames"]) == 4
    assert (root / "test" / "r_000.png").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dyn"]  # no temp or old dirs left behind
    with pytest.raises(ValueError):
        ensure_dynamic_demo_scene(tmp_path / "bad", n_train=1)
