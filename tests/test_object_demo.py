"""The procedural NeRF-synthetic object scene: layout, alpha, cameras aimed at the object, thin legs, caching."""

import json

import cv2
import numpy as np
import pytest

from gspruner.data import ensure_object_demo_scene, load_scene
from gspruner.data.demo import _closest
from gspruner.data.dynamic_demo import render_objects_rgba
from gspruner.data.object_demo import LEG_HALF_WIDTH, LEG_XY, chair_objects

LEGS = ((1, 1), (1, -1), (-1, 1), (-1, -1))  # (sign x, sign y) of the legs, objects 1..4 of chair_objects()


def as_numpy(cam):  # OpenCV c2w [4,4], K [3,3] in float64
    return cam.c2w.double().numpy(), cam.K.double().numpy()


def project(cam, point):  # pixel (x, y) of a world point [3], and its depth
    K, w2c = cam.K.double().numpy(), cam.viewmat.double().numpy()
    p = w2c[:3, :3] @ np.asarray(point, float) + w2c[:3, 3]
    uv = K @ p
    return uv[:2] / uv[2], p[2]


def read_rgba(cam):  # [H,W,4] uint8, RGBA
    image = cv2.imread(str(cam.image_path), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.shape == (cam.height, cam.width, 4) and image.dtype == np.uint8
    return image[..., [2, 1, 0, 3]]


def elevation(cam):
    p = cam.c2w.double().numpy()[:3, 3]
    return np.degrees(np.arcsin(p[2] / np.linalg.norm(p)))


@pytest.fixture(scope="module")
def scene(tiny_object_scene):
    return load_scene(tiny_object_scene)


def test_layout(tiny_object_scene):
    root = tiny_object_scene
    for split, n in (("train", 40), ("test", 8)):
        meta = json.loads((root / f"transforms_{split}.json").read_text())
        assert meta["camera_angle_x"] == pytest.approx(0.6911, abs=1e-4) and len(meta["frames"]) == n
        assert [f["file_path"] for f in meta["frames"]] == [f"./{split}/r_{k:03d}" for k in range(n)]
        assert all("time" not in f for f in meta["frames"])  # static
    assert json.loads((root / "object_demo.json").read_text())["n_train"] == 40


def test_loads_as_blender_with_alpha(scene):
    assert scene.kind == "blender" and len(scene.train) == 40 and len(scene.test) == 8
    assert scene.background == (1.0, 1.0, 1.0)  # RGBA: composited on the default white
    for cam in scene.train + scene.test:
        assert (cam.width, cam.height) == (64, 64) and cam.time is None
        alpha = read_rgba(cam)[..., 3]
        assert (alpha == 0).any() and (alpha == 255).any()
        assert alpha[[0, 0, -1, -1], [0, -1, 0, -1]].max() == 0  # corners miss the object
        assert 0.05 < (alpha > 0).mean() < 0.6
        assert ((alpha > 0) & (alpha < 255)).any()  # antialiased edges


def test_cream_object_with_a_coloured_accent(scene):
    rgba = np.concatenate([read_rgba(c)[..., :3][read_rgba(c)[..., 3] == 255] for c in scene.train]) / 255.0
    assert (rgba.min(axis=1) > 0.7).mean() > 0.2  # plenty of near-white surface ...
    assert rgba.max() < 0.99  # ... but never the background's pure white
    assert ((rgba[:, 2] - rgba[:, 0]) > 0.3).mean() > 0.005  # the blue ball


def test_cameras_look_at_the_origin(scene):
    for cam in scene.train + scene.test:
        c2w, _ = as_numpy(cam)
        assert np.linalg.norm(c2w[:3, 3]) == pytest.approx(4.0)
        uv, depth = project(cam, [0.0, 0.0, 0.0])
        assert depth == pytest.approx(4.0)
        np.testing.assert_allclose(uv, [cam.width / 2, cam.height / 2], atol=1e-3)  # float32 cameras
        assert 4.0 < elevation(cam) < 71.0  # upper hemisphere
        assert project(cam, [0.0, 0.0, 1.0])[0][1] < cam.height / 2  # z up is up in the image


def test_views_spread_and_held_out(scene):
    def directions(cams):
        p = np.stack([as_numpy(c)[0][:3, 3] for c in cams])
        return p / np.linalg.norm(p, axis=1, keepdims=True)

    train, test = directions(scene.train), directions(scene.test)
    azimuths = np.arctan2(train[:, 1], train[:, 0])
    assert np.histogram(azimuths, bins=8, range=(-np.pi, np.pi))[0].min() >= 2  # all round the object
    assert np.ptp([elevation(c) for c in scene.train]) > 55.0
    nearest_train = np.degrees(np.arccos(np.clip((test @ train.T).max(axis=1), -1, 1)))
    assert nearest_train.min() > 5.0  # test views are not train views
    train_gap = np.degrees(np.arccos(np.clip(np.sort(train @ train.T, axis=1)[:, -2], -1, 1)))
    assert train_gap.min() > 5.0  # no duplicated train views either


def test_silhouettes_differ(scene):
    alphas = np.stack([read_rgba(c)[..., 3] / 255.0 for c in scene.train[::5]])
    diff = np.abs(alphas[:, None] - alphas[None]).mean(axis=(2, 3))
    assert diff[~np.eye(len(alphas), dtype=bool)].min() > 0.03


def test_pose_round_trip(tiny_object_scene):
    """Re-rendering from the loaded (OpenCV) camera reproduces the stored image."""
    scene = load_scene(tiny_object_scene, background=(0.0, 0.0, 0.0))
    for cam in (scene.train[7], scene.test[3]):
        rgba = render_objects_rgba(*as_numpy(cam), cam.width, cam.height, chair_objects())
        np.testing.assert_allclose(scene.image(cam).numpy(), rgba[..., :3] * rgba[..., 3:], atol=1.5 / 255)


def test_thin_legs(scene):
    """From low cameras the legs show under the seat as 1-3 pixel wide columns, with background between them."""
    objects = chair_objects()
    low = [c for c in scene.train if elevation(c) < 15.0]
    assert len(low) >= 4
    widths = []
    for cam in low:
        alpha = read_rgba(cam)[..., 3]
        c2w, _ = as_numpy(cam)
        xs = []
        for k, (sx, sy) in enumerate(LEGS):
            point = np.array([sx * LEG_XY, sy * LEG_XY, -0.6])
            d = (point - c2w[:3, 3]) / np.linalg.norm(point - c2w[:3, 3])
            _, hit_id = _closest(c2w[:3, 3], d[None], objects)
            assert hit_id[0] in (1, 2, 3, 4)  # the ray through a leg meets a leg (this one or one in front)
            (x, y), _ = project(cam, point)
            x, y = int(x), int(y)
            row = alpha[y]
            assert row[x - 1:x + 2].max() > 0  # the leg is in the image
            left, right = x, x
            while left > 0 and row[left - 1] > 0:
                left -= 1
            while right < len(row) - 1 and row[right + 1] > 0:
                right += 1
            widths.append(right - left + 1)
            xs.append(x)
        between = alpha[y, min(xs):max(xs) + 1]
        assert (between == 0).mean() > 0.4  # mostly background between the legs: they stay thin
    assert np.median(widths) <= 2 and max(widths) <= 4  # 4: two legs side by side in the image
    # a leg is 2 * LEG_HALF_WIDTH = 0.05 wide: about 1 pixel at this distance (f ~ 89 px)
    assert 2 * LEG_HALF_WIDTH * scene.train[0].K[0, 0].item() / 4.0 < 1.5


def test_regenerates_when_params_change(tmp_path):
    root = ensure_object_demo_scene(tmp_path / "obj", width=8, height=8, n_train=3, n_test=0)
    assert not (root / "transforms_test.json").exists()
    stamp = (root / "train" / "r_000.png").stat().st_mtime_ns
    assert ensure_object_demo_scene(root, width=8, height=8, n_train=3, n_test=0) == root
    assert (root / "train" / "r_000.png").stat().st_mtime_ns == stamp  # cached
    ensure_object_demo_scene(root, width=8, height=8, n_train=4, n_test=1)
    assert len(json.loads((root / "transforms_train.json").read_text())["frames"]) == 4
    assert (root / "test" / "r_000.png").is_file()
    old = json.loads((root / "transforms_train.json").read_text())["frames"][0]["transform_matrix"]
    ensure_object_demo_scene(root, width=8, height=8, n_train=4, n_test=1, seed=1)
    assert json.loads((root / "transforms_train.json").read_text())["frames"][0]["transform_matrix"] != old
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obj"]  # no temp or old dirs left behind
    with pytest.raises(ValueError):
        ensure_object_demo_scene(tmp_path / "bad", n_train=0)
