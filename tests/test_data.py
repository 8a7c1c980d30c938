"""Data layer: COLMAP read/write, scene loading (COLMAP, NeRF-synthetic, D-NeRF, instant-ngp), the demo scene,
normalization, downsampling cache, undistortion and bad-input errors. All data is generated here."""

import json
import math
import os
import shutil
import stat

import cv2
import numpy as np
import pytest
import torch

from gspruner.data import ensure_demo_scene, load_scene
from gspruner.data import colmap
from gspruner.data.colmap import ColmapCamera, ColmapImage, ColmapModel, ColmapPoints
from gspruner.data.normalize import (camera_extent, shared_view_sphere, similarity_from_cameras, transform_cameras,
                                     transform_points)
from gspruner.errors import InputError


def project(points, cam):  # [P,3] world, Camera -> pixels [P,2], depths [P]
    w2c = cam.viewmat.double().numpy()
    p = points @ w2c[:3, :3].T + w2c[:3, 3]
    uv = p @ cam.K.double().numpy().T
    return uv[:, :2] / uv[:, 2:], p[:, 2]


def random_rotation(rng):
    q = rng.normal(size=4)
    return colmap.qvec_to_rotmat(q / np.linalg.norm(q))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return ensure_demo_scene(tmp_path_factory.mktemp("demo") / "demo", width=16, height=12, n_views=10, n_points=300)


@pytest.fixture
def demo_copy(demo, tmp_path):
    return shutil.copytree(demo, tmp_path / "scene")


def make_model(rng, n_images=5, n_points=50):
    cameras = {
        1: ColmapCamera(1, "PINHOLE", 64, 48, np.array([50.0, 51.0, 32.0, 24.0])),
        3: ColmapCamera(3, "OPENCV", 80, 60, np.array([70.0, 71.0, 40.5, 29.5, -0.1, 0.02, 0.001, -0.002])),
        7: ColmapCamera(7, "SIMPLE_RADIAL", 32, 32, np.array([30.0, 16.0, 16.0, 0.05])),
    }
    images = [ColmapImage(i + 10, f"img_{i}.png", [1, 3, 7][i % 3], colmap.rotmat_to_qvec(random_rotation(rng)),
                          rng.normal(size=3)) for i in range(n_images)]
    points = ColmapPoints(rng.normal(size=(n_points, 3)), rng.integers(0, 256, (n_points, 3)).astype(np.uint8),
                          rng.random(n_points))
    return ColmapModel(cameras, images, points)


def assert_same_model(a: ColmapModel, b: ColmapModel):
    assert a.cameras.keys() == b.cameras.keys()
    for cid in a.cameras:
        ca, cb = a.cameras[cid], b.cameras[cid]
        assert (ca.model, ca.width, ca.height) == (cb.model, cb.width, cb.height)
        np.testing.assert_allclose(ca.params, cb.params)
    assert [(i.id, i.name, i.camera_id) for i in a.images] == [(i.id, i.name, i.camera_id) for i in b.images]
    for ia, ib in zip(a.images, b.images):
        np.testing.assert_allclose(ia.world_to_camera(), ib.world_to_camera(), atol=1e-12)
    np.testing.assert_allclose(a.points.xyz, b.points.xyz)
    np.testing.assert_array_equal(a.points.rgb, b.points.rgb)
    np.testing.assert_allclose(a.points.error, b.points.error)


# --------------------------------------------------------------------------------------------- COLMAP io

def test_quaternion_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        R = random_rotation(rng)
        q = colmap.rotmat_to_qvec(R)
        assert q[0] >= 0
        np.testing.assert_allclose(colmap.qvec_to_rotmat(q), R, atol=1e-12)


@pytest.mark.parametrize("writer", [colmap.write_colmap_binary, colmap.write_colmap_text])
def test_colmap_round_trip(tmp_path, writer):
    model = make_model(np.random.default_rng(1))
    writer(tmp_path, model)
    ext = ".bin" if writer is colmap.write_colmap_binary else ".txt"
    assert colmap.model_files(tmp_path)[0].suffix == ext
    assert_same_model(model, colmap.read_model(tmp_path))


def test_images_txt_with_or_without_observation_lines(tmp_path):
    """COLMAP writes two lines per image, the second (observations) possibly empty; some writers leave it out.
    Neither way may swallow an image."""
    model = make_model(np.random.default_rng(5), n_images=5)
    colmap.write_colmap_text(tmp_path, model)
    path = tmp_path / "images.txt"
    image_lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    names = [im.name for im in model.images]
    path.write_text("\n".join(image_lines) + "\n")  # no observation lines at all
    assert [im.name for im in colmap.read_images_text(path)] == names
    observations = "12 34.5 -1 56 7.25 3 100.5 20.0 4"  # 3 (x, y, point id) triples, the first x a whole number
    path.write_text("# comment\n" + "".join(f"{line}\n{observations}\n" for line in image_lines))
    assert [im.name for im in colmap.read_images_text(path)] == names


def test_binary_preferred_and_sparse_fallback(tmp_path):
    model = make_model(np.random.default_rng(2))
    colmap.write_colmap_text(tmp_path / "sparse", model)
    assert colmap.find_model_dir(tmp_path) == tmp_path / "sparse"
    colmap.write_colmap_binary(tmp_path / "sparse" / "0", model)
    assert colmap.find_model_dir(tmp_path) == tmp_path / "sparse" / "0"


# ------------------------------------------------------------------------------------------ demo + COLMAP

def test_demo_scene_is_written_once(demo):
    assert len(list((demo / "images").glob("*.png"))) == 10
    model = colmap.read_model(demo / "sparse" / "0")
    assert [c.model for c in model.cameras.values()] == ["PINHOLE"] and len(model.points.xyz) == 300
    assert not [p for p in demo.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left
    stamp = (demo / "sparse" / "0" / "images.bin").stat().st_mtime_ns
    assert ensure_demo_scene(demo, width=16, height=12, n_views=10, n_points=300) == demo
    assert (demo / "sparse" / "0" / "images.bin").stat().st_mtime_ns == stamp


def test_demo_regenerates_on_new_params(tmp_path):
    root = ensure_demo_scene(tmp_path / "d", width=8, height=6, n_views=3, n_points=20)
    ensure_demo_scene(root, width=8, height=6, n_views=4, n_points=20)
    assert len(list((root / "images").glob("*.png"))) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_load_demo_split_and_images(demo):
    scene = load_scene(demo)
    assert scene.kind == "colmap" and scene.background is None
    assert [c.name for c in scene.test] == ["view_000.png", "view_008.png"]
    assert len(scene.train) == 8 and scene.train[0].name == "view_001.png"
    cam = scene.train[0]
    assert (cam.width, cam.height) == (16, 12) and cam.time is None
    assert cam.K.dtype == torch.float32 and cam.c2w.shape == (4, 4)
    image = scene.image(cam)
    assert image.shape == (12, 16, 3) and image.dtype == torch.float32 and 0 <= image.min() and image.max() <= 1
    assert scene.image(cam) is image  # cached
    assert scene.points.dtype == np.float32 and scene.points_rgb.dtype == np.uint8 and len(scene.points) == 300
    assert len(load_scene(demo, test_every=0).train) == 10


def test_data_factor_2_and_png_cache(demo_copy):
    full = load_scene(demo_copy)
    half = load_scene(demo_copy, data_factor=2)
    cam, cam2 = full.train[0], half.train[0]
    assert (cam2.width, cam2.height) == (8, 6)
    np.testing.assert_allclose(cam2.K[:2].numpy(), cam.K[:2].numpy() / 2, rtol=1e-6)
    cache = demo_copy / "images_2_png"
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        [p.name + ".png" for p in (demo_copy / "images").iterdir()] + ["sources.json"])
    assert cam2.image_path.parent == cache
    assert half.image(cam2).shape == (6, 8, 3)
    expected = cv2.resize(full.image(cam).numpy(), (8, 6), interpolation=cv2.INTER_AREA)
    assert np.abs(half.image(cam2).numpy() - expected).max() < 2 / 255


def test_read_only_data_dir_caches_in_home(demo_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    os.chmod(demo_copy, 0o555)
    try:
        scene = load_scene(demo_copy, data_factor=2)
    finally:
        os.chmod(demo_copy, 0o755)
    assert not (demo_copy / "images_2_png").exists()
    cached = list((tmp_path / "home" / ".cache" / "gspruner").glob("*/images_2_png/*.png.png"))
    assert len(cached) == 10 and scene.train[0].image_path in cached
    assert scene.image(scene.train[0]).shape == (6, 8, 3)


def test_normalization(demo):
    raw, norm = load_scene(demo, normalize=False), load_scene(demo)
    T = norm.transform
    s = np.cbrt(np.linalg.det(T[:3, :3]))
    np.testing.assert_allclose(T[:3, :3] / s @ (T[:3, :3] / s).T, np.eye(3), atol=1e-9)  # a similarity
    np.testing.assert_allclose(norm.points, transform_points(T, raw.points.astype(np.float64)), atol=1e-4)
    for cam_raw, cam_norm in zip(raw.train + raw.test, norm.train + norm.test):
        R = cam_norm.c2w[:3, :3].double()
        assert torch.allclose(R @ R.T, torch.eye(3, dtype=torch.float64), atol=1e-5)
        uv_raw, z_raw = project(raw.points.astype(np.float64), cam_raw)
        uv_norm, z_norm = project(norm.points.astype(np.float64), cam_norm)
        front = z_raw > 0.1
        np.testing.assert_array_equal(front, z_norm > 0.1 * s)
        seen = front & (np.abs(uv_raw - [8, 6]) < [8, 6]).all(axis=1)  # inside the 16x12 image
        assert seen.sum() > 20
        np.testing.assert_allclose(uv_norm[seen], uv_raw[seen], atol=1e-3)
    centers = np.stack([c.c2w[:3, 3].numpy() for c in norm.train + norm.test])
    assert np.linalg.norm(centers[:, :2].mean(axis=0)) < 0.1  # centred; cameras orbit at unit distance
    assert 0.7 < np.median(np.linalg.norm(centers, axis=1)) < 1.3
    assert centers[:, 2].min() > np.median(norm.points[:, 2])  # z up: cameras above the ground
    train_centers = np.stack([c.c2w[:3, 3].numpy() for c in norm.train])  # the scene scale: training cameras only
    assert norm.scene_scale == pytest.approx(np.linalg.norm(train_centers - train_centers.mean(0), axis=1).max())


def test_similarity_from_cameras_turns_up_to_z():
    rng = np.random.default_rng(3)
    R0 = random_rotation(rng)  # an arbitrary world orientation (gsplat's focus is relative to the origin)
    c2w = []
    for k in range(12):
        a = 2 * math.pi * k / 12
        pos = np.array([3 * math.cos(a), 3 * math.sin(a), 1.0])
        f = -pos / np.linalg.norm(pos)
        r = np.cross(f, [0, 0, 1.0])
        r /= np.linalg.norm(r)
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = np.stack([r, np.cross(f, r), f], 1), pos
        g = np.eye(4)
        g[:3, :3] = R0
        c2w.append(g @ m)
    c2w = transform_cameras(similarity_from_cameras(np.stack(c2w)), np.stack(c2w))
    up = -c2w[:, :3, 1].mean(0)
    np.testing.assert_allclose(up / np.linalg.norm(up), [0, 0, 1], atol=1e-9)
    np.testing.assert_allclose(np.median(np.linalg.norm(c2w[:, :3, 3], axis=1)), 1.0)
    np.testing.assert_allclose(c2w[:, :2, 3].mean(0), 0, atol=1e-9)


def write_opencv_model(demo, out, dist=(-0.25, 0.08, 0.002, -0.001)):
    shutil.copytree(demo / "images", out / "images")
    model = colmap.read_model(demo / "sparse" / "0")
    fx, fy, cx, cy = model.cameras[1].params
    model.cameras[1] = ColmapCamera(1, "OPENCV", 16, 12, np.array([fx, fy, cx, cy, *dist]))
    colmap.write_colmap_binary(out / "sparse" / "0", model)
    return out


@pytest.mark.parametrize("factor", [1, 2])
def test_opencv_undistortion(demo, tmp_path, factor):
    pinhole = load_scene(demo, data_factor=factor, normalize=False)
    distorted = load_scene(write_opencv_model(demo, tmp_path), data_factor=factor, normalize=False)
    cam0, cam = pinhole.train[0], distorted.train[0]
    assert not torch.allclose(cam.K, cam0.K)
    assert 0.6 * cam0.width <= cam.width <= cam0.width and 0.6 * cam0.height <= cam.height <= cam0.height
    assert 0.6 < cam.K[0, 0] / cam0.K[0, 0] < 1.0  # barrel distortion: a narrower valid region
    assert distorted.image(cam).shape == (cam.height, cam.width, 3)
    # the undistorted pixel (i, j), seen through the distorted camera, is where the remap samples
    recipe = distorted.recipes[cam.image_path]
    x0, y0, _, _ = recipe.undistortion.roi
    K_dist = cam0.K.double().numpy()
    i, j = cam.width // 2 + 1, cam.height - 2
    ray = np.linalg.inv(cam.K.double().numpy()) @ [i, j, 1.0]
    src, _ = cv2.projectPoints(ray[None], np.zeros(3), np.zeros(3), K_dist,
                               np.array([-0.25, 0.08, 0.002, -0.001]))
    expected = [recipe.undistortion.mapx[j + y0, i + x0], recipe.undistortion.mapy[j + y0, i + x0]]
    np.testing.assert_allclose(src.ravel(), expected, atol=1e-2)


# ------------------------------------------------------------------------------- NeRF-synthetic / ingp

def look_at_origin_opengl(position):  # [4,4] OpenGL c2w (x right, y up, z backward)
    back = np.asarray(position, float) / np.linalg.norm(position)
    right = np.cross([0, 0, 1.0], back)
    right /= np.linalg.norm(right)
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = np.stack([right, np.cross(back, right), back], 1), position
    return m


def write_rgba(path, size=8, alpha=255):
    image = np.zeros((size, size, 4), np.uint8)
    image[..., 2] = 255  # red (BGRA)
    image[..., 3] = alpha
    image[0, 0, 3] = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), image)


def write_blender(root, times=False, n=3):
    for split in ("train", "test", "val"):
        frames = []
        for k in range(n):
            write_rgba(root / split / f"r_{k}.png", alpha=128 if k == 1 else 255)
            a = 2 * math.pi * k / n + (0.3 if split == "test" else 0.0)
            frame = {"file_path": f"./{split}/r_{k}",
                     "transform_matrix": look_at_origin_opengl([4 * math.cos(a), 4 * math.sin(a), 1.5]).tolist()}
            if times:
                frame["time"] = k / (n - 1)
            frames.append(frame)
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": 0.69, "frames": frames}))
    return root


def test_blender_loader(tmp_path):
    scene = load_scene(write_blender(tmp_path), background=(0.0, 0.0, 1.0))
    assert scene.kind == "blender" and len(scene.train) == 3 and len(scene.test) == 3
    assert [c.name for c in scene.test] == ["test/r_0.png", "test/r_1.png", "test/r_2.png"]
    assert scene.background == (0.0, 0.0, 1.0) and len(scene.points) == 0 and scene.points.shape == (0, 3)
    np.testing.assert_array_equal(scene.transform, np.eye(4))
    cam = scene.train[0]
    f = 0.5 * 8 / math.tan(0.5 * 0.69)
    np.testing.assert_allclose(cam.K.numpy(), [[f, 0, 4], [0, f, 4], [0, 0, 1]], rtol=1e-6)
    # OpenGL -> OpenCV: the origin projects to the centre, a point above it (+z world) above the centre
    (u0, v0), (u1, v1) = project(np.array([[0, 0, 0.0], [0, 0, 0.5]]), cam)[0]
    assert abs(u0 - 4) < 1e-4 and abs(v0 - 4) < 1e-4 and abs(u1 - 4) < 1e-4 and v1 < 4 - 0.1
    assert project(np.zeros((1, 3)), cam)[1][0] > 0  # in front of the camera
    image = scene.image(cam).numpy()
    np.testing.assert_allclose(image[0, 0], [0, 0, 1])  # alpha 0 -> background
    np.testing.assert_allclose(image[1, 1], [1, 0, 0])
    np.testing.assert_allclose(scene.image(scene.train[1]).numpy()[1, 1], [128 / 255, 0, 1 - 128 / 255], atol=1e-6)
    half = load_scene(tmp_path, data_factor=2)
    assert (half.train[0].width, half.train[0].height) == (4, 4) and half.image(half.train[0]).shape == (4, 4, 3)
    np.testing.assert_allclose(half.train[0].K[:2].numpy(), cam.K[:2].numpy() / 2, rtol=1e-6)


def test_alpha_is_kept_and_composited_on_any_background(tmp_path):
    """Images with alpha stay RGBA (premultiplied) so training can composite them on a random colour; the scene
    scale comes from the training cameras alone."""
    scene = load_scene(write_blender(tmp_path, n=4), background=(1.0, 1.0, 1.0))
    assert scene.has_alpha
    rgba = scene.rgba(scene.train[1]).numpy()
    np.testing.assert_allclose(rgba[1, 1], [128 / 255, 0, 0, 128 / 255], atol=1e-6)  # red x alpha, alpha
    np.testing.assert_allclose(rgba[0, 0], [0, 0, 0, 0])
    green = scene.image(scene.train[1], torch.tensor([0.0, 1.0, 0.0])).numpy()
    np.testing.assert_allclose(green[1, 1], [128 / 255, 1 - 128 / 255, 0], atol=1e-6)
    np.testing.assert_allclose(green[0, 0], [0, 1, 0])
    np.testing.assert_allclose(scene.image(scene.train[1]).numpy()[0, 0], [1, 1, 1])  # default: the scene's
    # train cameras sit on a circle of radius 4 around the origin; the test ones are never counted
    train_c2w = np.stack([c.c2w.double().numpy() for c in scene.train])
    np.testing.assert_allclose(scene.scene_scale, camera_extent(train_c2w))
    moved = json.loads((tmp_path / "transforms_test.json").read_text())
    moved["frames"][0]["transform_matrix"] = look_at_origin_opengl([40.0, 0.0, 1.5]).tolist()
    (tmp_path / "transforms_test.json").write_text(json.dumps(moved))
    assert load_scene(tmp_path).scene_scale == pytest.approx(scene.scene_scale)


def test_opaque_images_have_no_background(demo):
    scene = load_scene(demo)
    assert not scene.has_alpha and scene.background is None
    cam = scene.train[0]
    np.testing.assert_array_equal(scene.image(cam, torch.tensor([0.0, 1.0, 0.0])).numpy(), scene.image(cam).numpy())
    assert scene.rgba(cam)[..., 3].min() == 1.0


def test_shared_view_sphere_of_an_orbit():
    """Cameras on a sphere of radius 4 looking at (0.2, -0.1, 0.3) with a 40° FOV all see a ball of radius
    4·sin(20°) around it whole (NeRF-synthetic: ~1.37)."""
    target = np.array([0.2, -0.1, 0.3])
    c2w = []
    for k in range(12):
        a, e = 2 * math.pi * k / 12, 0.2 + 0.5 * (k % 3)
        m = look_at_origin_opengl(4 * np.array([math.cos(a) * math.cos(e), math.sin(a) * math.cos(e), math.sin(e)]))
        m[:3, 3] += target
        m[:3, 1:3] *= -1  # OpenGL -> OpenCV
        c2w.append(m)
    center, radius = shared_view_sphere(np.stack(c2w), np.full(12, math.tan(math.radians(20))))
    np.testing.assert_allclose(center, target, atol=1e-9)
    assert radius == pytest.approx(4 * math.sin(math.radians(20)), rel=1e-6)


def test_dnerf_time(tmp_path):
    scene = load_scene(write_blender(tmp_path, times=True))
    assert scene.kind == "dnerf"
    assert [c.time for c in scene.train] == [0.0, 0.5, 1.0]


def test_ingp_loader(tmp_path):
    frames = []
    for k in range(9):
        write_rgba(tmp_path / "images" / f"{k:02d}.png", size=10)
        frame = {"file_path": f"images/{k:02d}" + (".png" if k % 2 else ""),
                 "transform_matrix": look_at_origin_opengl([3 * math.cos(k), 3 * math.sin(k), 1.0]).tolist()}
        if k == 3:
            frame["fl_x"] = 20.0
        frames.append(frame)
    meta = {"fl_x": 12.0, "fl_y": 13.0, "cx": 5.5, "cy": 4.5, "w": 10, "h": 10, "frames": frames}
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    scene = load_scene(tmp_path, normalize=False)
    assert scene.kind == "ingp" and len(scene.test) == 2 and len(scene.train) == 7
    assert scene.test[1].name == "images/08.png"
    by_name = {c.name: c for c in scene.train + scene.test}
    np.testing.assert_allclose(by_name["images/00.png"].K.numpy(), [[12, 0, 5.5], [0, 13, 4.5], [0, 0, 1]])
    assert by_name["images/03.png"].K[0, 0] == 20.0
    c2w = np.array(frames[0]["transform_matrix"])
    c2w[:3, 1:3] *= -1
    np.testing.assert_allclose(by_name["images/00.png"].c2w.numpy(), c2w, atol=1e-6)
    assert by_name["images/00.png"].viewmat.numpy() @ [0, 0, 0, 1.0] @ [0, 0, 1, 0] > 0  # origin in front

    meta["k1"] = -0.2
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    undistorted = load_scene(tmp_path)
    cam = undistorted.train[0]
    assert cam.K[0, 0] < 12 and undistorted.image(cam).shape == (cam.height, cam.width, 3)
    assert undistorted.scene_scale > 0 and not np.allclose(undistorted.transform, np.eye(4))


def test_transforms_frames_without_w_h_take_their_own_image_size(tmp_path):
    """instant-ngp / NeRF-synthetic without "w"/"h": each frame its own image's size, never the first one's."""
    frames = []
    for k, (w, h) in enumerate([(10, 10), (20, 10), (10, 10)]):
        cv2.imwrite(str(tmp_path / f"{k}.png"), np.full((h, w, 3), 60 * k, np.uint8))
        frames.append({"file_path": f"{k}.png", "transform_matrix": look_at_origin_opengl([3, k, 1.0]).tolist()})
    (tmp_path / "transforms.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": frames}))
    scene = load_scene(tmp_path, test_every=0, normalize=False)
    cams = {c.name: c for c in scene.train}
    assert (cams["1.png"].width, cams["1.png"].height) == (20, 10) and (cams["0.png"].width, cams["0.png"].height) == (10, 10)
    assert cams["1.png"].K[0, 0] == pytest.approx(2 * cams["0.png"].K[0, 0]) and cams["1.png"].K[0, 2] == 10
    np.testing.assert_allclose(scene.image(cams["1.png"]).numpy(), 60 / 255)


def write_point_cloud(path, xyz, rgb=None, nan=False, drop=None):
    import plyfile

    fields = [("x", "f4"), ("y", "f4"), ("z", "f4")] + ([("red", "u1"), ("green", "u1"), ("blue", "u1")] if rgb is not None else [])
    fields = [f for f in fields if f[0] != drop]
    records = np.zeros(len(xyz), dtype=fields)
    for i, axis in enumerate("xyz"):
        if axis != drop:
            records[axis] = xyz[:, i]
    if rgb is not None:
        for i, c in enumerate(("red", "green", "blue")):
            records[c] = rgb[:, i]
    if nan:
        records["x"][1] = np.nan
    plyfile.PlyData([plyfile.PlyElement.describe(records, "vertex")]).write(str(path))


def write_nerfstudio(root, n=6, **top):
    """A nerfstudio-style transforms.json: OPENCV with k1, k2, k3, p1, p2, per-frame intrinsics on frame 2,
    masks per frame, a sparse point cloud."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    frames = []
    for k in range(n):
        cv2.imwrite(str(root / "images" / f"frame_{k:05d}.jpg"), np.full((24, 32, 3), 100, np.uint8))
        mask = np.full((24, 32), 255, np.uint8)
        mask[:, :8] = 0
        cv2.imwrite(str(root / "masks" / f"frame_{k:05d}.png"), mask)
        a = 2 * math.pi * k / n
        frame = {"file_path": f"images/frame_{k:05d}.jpg", "mask_path": f"masks/frame_{k:05d}.png",
                 "transform_matrix": look_at_origin_opengl([3 * math.cos(a), 3 * math.sin(a), 1.0]).tolist()}
        if k == 2:
            frame.update(fl_x=40.0, fl_y=41.0, cx=16.5, cy=12.5)
        frames.append(frame)
    rng = np.random.default_rng(0)
    xyz, rgb = rng.normal(size=(50, 3)) * 0.3, rng.integers(0, 256, (50, 3)).astype(np.uint8)
    write_point_cloud(root / "sparse_pc.ply", xyz, rgb)
    meta = {"camera_model": "OPENCV", "fl_x": 30.0, "fl_y": 30.0, "cx": 16.0, "cy": 12.0, "w": 32, "h": 24,
            "k1": 0.0, "k2": 0.0, "k3": 0.0, "p1": 0.0, "p2": 0.0, "ply_file_path": "sparse_pc.ply", "frames": frames,
            **top}
    (root / "transforms.json").write_text(json.dumps(meta))
    return xyz, rgb


def test_nerfstudio_transforms(tmp_path):
    xyz, rgb = write_nerfstudio(tmp_path)
    scene = load_scene(tmp_path, test_every=0)
    cams = {c.name: c for c in scene.train}
    assert cams["images/frame_00002.jpg"].K[0, 0] == 40 and cams["images/frame_00002.jpg"].K[1, 2] == 12.5
    assert cams["images/frame_00000.jpg"].K[0, 0] == 30
    # ply_file_path: the initial points, in the frames' world, normalized with the cameras
    np.testing.assert_allclose(scene.points, transform_points(scene.transform, xyz.astype(np.float32).astype(np.float64)),
                               atol=1e-5)
    np.testing.assert_array_equal(scene.points_rgb, rgb)
    # mask_path: the left quarter masked out
    mask = scene.mask(cams["images/frame_00001.jpg"])[..., 0].numpy()
    assert scene.masked and mask[:, :8].sum() == 0 and mask[:, 8:].min() == 1
    # k3 reaches the undistortion (OpenCV's r^6 term)
    write_nerfstudio(tmp_path / "k3", k3=0.05)
    distorted = load_scene(tmp_path / "k3", test_every=0)
    cam = distorted.train[0]
    assert distorted.recipes[cam.image_path].undistortion is not None and cam.K[0, 0] != 30


@pytest.mark.parametrize("change,message", [({"camera_model": "OPENCV_FISHEYE", "k4": 0.01}, "OPENCV_FISHEYE"),
                                            ({"camera_model": "EQUIRECTANGULAR"}, "EQUIRECTANGULAR"),
                                            ({"k4": 0.01}, "k4"),
                                            ({"fl_x": 0.0}, "fl_x"),
                                            ({"ply_file_path": "nothing.ply"}, "nothing.ply")])
def test_nerfstudio_refusals(tmp_path, change, message):
    write_nerfstudio(tmp_path, **change)
    text = assert_input_error(tmp_path / "transforms.json", load_scene, tmp_path)
    assert message in text


def test_zero_determinant_pose_is_refused(tmp_path):
    write_nerfstudio(tmp_path)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    meta["frames"][3]["transform_matrix"] = [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    (tmp_path / "transforms.json").write_text(json.dumps(meta))
    assert "frame 3" in assert_input_error(tmp_path / "transforms.json", load_scene, tmp_path)


# ------------------------------------------------------------------------------------------- bad inputs

def assert_input_error(names, fn, *args, **kwargs):
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert str(names) in message, message
    return message


def test_missing_and_unknown_dirs(tmp_path):
    assert_input_error(tmp_path / "nope", load_scene, tmp_path / "nope")
    assert_input_error(tmp_path, load_scene, tmp_path)


def test_colmap_image_not_on_disk(demo_copy):
    (demo_copy / "images" / "view_003.png").unlink()
    message = assert_input_error(demo_copy / "sparse" / "0" / "images.bin", load_scene, demo_copy)
    assert "view_003.png" in message


def test_colmap_without_images(demo_copy):
    model = colmap.read_model(demo_copy / "sparse" / "0")
    model.images = []
    colmap.write_colmap_binary(demo_copy / "sparse" / "0", model)
    assert_input_error(demo_copy / "sparse" / "0" / "images.bin", load_scene, demo_copy)


def test_no_images_folder(demo_copy):
    shutil.rmtree(demo_copy / "images")
    assert_input_error(demo_copy / "sparse" / "0" / "images.bin", load_scene, demo_copy)


def test_unsupported_camera_model(demo_copy):
    model = colmap.read_model(demo_copy / "sparse" / "0")
    model.cameras[1] = ColmapCamera(1, "OPENCV_FISHEYE", 16, 12, np.array([10, 10, 8, 6, 0.1, 0, 0, 0.0]))
    colmap.write_colmap_binary(demo_copy / "sparse" / "0", model)
    message = assert_input_error(demo_copy / "sparse" / "0" / "cameras.bin", load_scene, demo_copy)
    assert "OPENCV_FISHEYE" in message


@pytest.mark.parametrize("name", ["cameras.bin", "images.bin", "points3D.bin"])
@pytest.mark.parametrize("damage", ["truncate", "huge_count", "trailing"])
def test_corrupt_binary(demo_copy, name, damage):
    path = demo_copy / "sparse" / "0" / name
    data = path.read_bytes()
    data = {"truncate": data[: len(data) - 7], "huge_count": (10**9).to_bytes(8, "little") + data[8:],
            "trailing": data + b"\x01\x02"}[damage]
    path.write_bytes(data)
    assert_input_error(path, load_scene, demo_copy)


def test_malformed_text_model(tmp_path):
    colmap.write_colmap_text(tmp_path / "sparse" / "0", make_model(np.random.default_rng(4)))
    path = tmp_path / "sparse" / "0" / "cameras.txt"
    path.write_text(path.read_text() + "9 PINHOLE 10 10 1.0 oops\n")
    assert_input_error(path, load_scene, tmp_path)


def test_unreadable_image(demo_copy):
    bad = demo_copy / "images" / "view_002.png"
    bad.write_bytes(b"not a png")
    scene = load_scene(demo_copy)  # pixels are read lazily (only the first training image, for its alpha)
    assert scene.train[1].image_path == bad
    assert_input_error(bad, scene.image, scene.train[1])
    assert_input_error(bad, load_scene, demo_copy, data_factor=2)  # downsampling reads them all


@pytest.mark.parametrize("case", ["syntax", "no_frames", "empty_frames", "missing_image", "bad_matrix"])
def test_bad_transforms_json(tmp_path, case):
    root = write_blender(tmp_path)
    path = root / "transforms_train.json"
    meta = json.loads(path.read_text())
    if case == "syntax":
        path.write_text(path.read_text()[:-5])
    else:
        if case == "no_frames":
            del meta["frames"]
        elif case == "empty_frames":
            meta["frames"] = []
        elif case == "missing_image":
            meta["frames"][1]["file_path"] = "./train/nothing_here"
        elif case == "bad_matrix":
            meta["frames"][0]["transform_matrix"] = [[1, 0], [0, 1]]
        path.write_text(json.dumps(meta))
    assert_input_error(path, load_scene, root)


def test_read_only_check_respects_mode_bits(demo_copy):
    # the shared data folder is read-only by its mode bits even for root: never write there
    os.chmod(demo_copy, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        from gspruner.data.scene import _writable
        assert not _writable(demo_copy)
    finally:
        os.chmod(demo_copy, 0o755)
