"""Neural 3D Video (N3V) loader: a tiny generated scene of 3 cameras x 6 frames (32x24 mp4v videos of a moving
square), LLFF poses_bounds.npy from known OpenCV poses, split / times / poses / pixels / caching / bad inputs."""

import os
import shutil

import cv2
import numpy as np
import pytest

from gspruner.data import load_scene
from gspruner.data.n3v import llff_to_opencv
from gspruner.data.normalize import transform_cameras
from gspruner.errors import InputError

W, H, FRAMES, FOCAL = 32, 24, 6, 30.0
COLOURS = [(0, 0, 255), (0, 255, 0), (255, 0, 0)]  # BGR square colour per camera


def look_at(centre):  # [3] -> [4,4] OpenCV c2w looking at the origin, world up = +z
    forward = -centre / np.linalg.norm(centre)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    c2w = np.eye(4)
    c2w[:3, :4] = np.stack([right, np.cross(forward, right), forward, centre], axis=1)
    return c2w


def opencv_to_llff_row(c2w, h, w, focal, near=0.5, far=10.0):  # [4,4] -> [17]: [down, right, back | t | hwf] + bounds
    R, t = c2w[:3, :3], c2w[:3, 3]
    pose = np.concatenate([np.stack([R[:, 1], R[:, 0], -R[:, 2], t], axis=1), [[h], [w], [focal]]], axis=1)
    return np.concatenate([pose.ravel(), [near, far]])


def frame_bgr(cam, j):  # [H,W,3] uint8: a square moving right by 4 px per frame on a grey background
    image = np.full((H, W, 3), 60, np.uint8)
    image[8:16, 2 + 4 * j:10 + 4 * j] = COLOURS[cam]
    return image


def write_video(path, frames):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (W, H))
    assert writer.isOpened(), "this OpenCV build cannot write mp4v .mp4"
    for f in frames:
        writer.write(f)
    writer.release()


def rgb(bgr):
    return bgr[..., ::-1].astype(np.float32) / 255


C2W = np.stack([look_at(np.array([3 * np.cos(a), 3 * np.sin(a), 0.5])) for a in (0.0, 2.0, 4.0)])  # [3,4,4]


@pytest.fixture(scope="module")
def n3v(tmp_path_factory):
    root = tmp_path_factory.mktemp("n3v") / "scene"
    root.mkdir()
    np.save(root / "poses_bounds.npy", np.stack([opencv_to_llff_row(c, H, W, FOCAL) for c in C2W]))
    for cam in range(3):
        write_video(root / f"cam{cam:02d}.mp4", [frame_bgr(cam, j) for j in range(FRAMES)])
    cap = cv2.VideoCapture(str(root / "cam00.mp4"))  # this OpenCV reads mp4v back, frame count in the header
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == FRAMES and cap.read()[0]
    cap.release()
    return root


@pytest.fixture
def n3v_copy(n3v, tmp_path):
    return shutil.copytree(n3v, tmp_path / "scene", ignore=shutil.ignore_patterns("frames_*"))


def test_split_times_and_cache(n3v):
    scene = load_scene(n3v)
    assert scene.kind == "n3v" and scene.background is None
    assert scene.points.shape == (50_000, 3) and scene.points_rgb.shape == (50_000, 3)  # frustum init, see below
    assert len(scene.test) == FRAMES and len(scene.train) == 2 * FRAMES
    assert {c.name.split("/")[0] for c in scene.test} == {"cam00"}
    assert [c.name for c in scene.train[:2]] == ["cam01/0000.png", "cam01/0001.png"]
    np.testing.assert_allclose([c.time for c in scene.test], np.linspace(0, 1, FRAMES))
    np.testing.assert_allclose([c.time for c in scene.train], np.tile(np.linspace(0, 1, FRAMES), 2))
    assert scene.test[3].image_path == n3v / "frames_1" / "cam00" / "0003.png"
    assert scene.scene_scale > 0


def test_poses_round_trip_and_intrinsics(n3v):
    raw, norm = load_scene(n3v, normalize=False), load_scene(n3v)
    for cam_index, cams in ((0, raw.test), (1, raw.train[:FRAMES]), (2, raw.train[FRAMES:])):
        for cam in cams:
            np.testing.assert_allclose(cam.c2w.double().numpy(), C2W[cam_index], atol=1e-6)
            np.testing.assert_allclose(cam.K.numpy(), [[FOCAL, 0, W / 2], [0, FOCAL, H / 2], [0, 0, 1]], atol=1e-5)
            assert (cam.width, cam.height) == (W, H)
    cam = raw.test[0]  # the origin projects to the image centre, a point to the camera's right to its right half
    w2c = cam.viewmat.double().numpy()
    for point, expected_x in ((np.zeros(3), W / 2), (C2W[0, :3, 0] * 0.5, None)):
        p = w2c[:3, :3] @ point + w2c[:3, 3]
        uv = (cam.K.double().numpy() @ p)[:2] / p[2]
        assert p[2] > 0
        if expected_x is None:
            assert uv[0] > W / 2 + 1 and abs(uv[1] - H / 2) < 1
        else:
            np.testing.assert_allclose(uv, [W / 2, H / 2], atol=1e-6)
    np.testing.assert_allclose(transform_cameras(norm.transform, C2W), np.stack(
        [c.c2w.double().numpy() for c in (norm.test[0], norm.train[0], norm.train[FRAMES])]), atol=1e-5)
    np.testing.assert_allclose(llff_to_opencv(opencv_to_llff_row(C2W[1], H, W, FOCAL)[:15].reshape(3, 5)), C2W[1])


def test_pixels_match_written_frames(n3v):
    scene = load_scene(n3v)
    for cam_index, cams in ((0, scene.test), (2, scene.train[FRAMES:])):
        for j, cam in enumerate(cams):
            image = scene.image(cam).numpy()
            assert image.shape == (H, W, 3)
            errors = [np.abs(image - rgb(frame_bgr(cam_index, k))).mean() for k in range(FRAMES)]
            assert errors[j] < 0.03 and int(np.argmin(errors)) == j  # within codec error, and the right frame
            np.testing.assert_allclose(image[12, 6 + 4 * j], rgb(frame_bgr(cam_index, j))[12, 6 + 4 * j], atol=0.1)


def test_frame_step_max_frames_and_data_factor(n3v_copy):
    scene = load_scene(n3v_copy, frame_step=2)
    assert [c.name for c in scene.test] == ["cam00/0000.png", "cam00/0002.png", "cam00/0004.png"]
    np.testing.assert_allclose([c.time for c in scene.test], [0, 0.5, 1])
    assert np.abs(scene.image(scene.test[1]).numpy() - rgb(frame_bgr(0, 2))).mean() < 0.03
    assert sorted(p.name for p in (n3v_copy / "frames_1" / "cam01").iterdir()) == ["0000.png", "0002.png", "0004.png"]
    scene = load_scene(n3v_copy, frame_step=2, max_frames=2)
    assert [c.name for c in scene.train] == ["cam01/0000.png", "cam01/0002.png", "cam02/0000.png", "cam02/0002.png"]
    assert [c.time for c in scene.train] == [0, 1, 0, 1]
    assert len(load_scene(n3v_copy, max_frames=4).test) == 4

    half = load_scene(n3v_copy, data_factor=2, max_frames=3)
    cam = half.test[2]
    assert (cam.width, cam.height) == (W // 2, H // 2)
    assert cam.image_path == n3v_copy / "frames_2" / "cam00" / "0002.png"
    np.testing.assert_allclose(cam.K.numpy(), [[FOCAL / 2, 0, W / 4], [0, FOCAL / 2, H / 4], [0, 0, 1]], atol=1e-5)
    expected = cv2.resize(rgb(frame_bgr(0, 2)), (W // 2, H // 2), interpolation=cv2.INTER_AREA)
    assert np.abs(half.image(cam).numpy() - expected).mean() < 0.04


def test_hwf_scaled_to_video_size(n3v_copy):
    rows = np.load(n3v_copy / "poses_bounds.npy")
    rows[:, 4], rows[:, 9], rows[:, 14] = 4 * H, 4 * W, 4 * FOCAL  # hwf of a 4x larger original
    np.save(n3v_copy / "poses_bounds.npy", rows)
    cam = load_scene(n3v_copy, max_frames=1).test[0]
    np.testing.assert_allclose(cam.K.numpy(), [[FOCAL, 0, W / 2], [0, FOCAL, H / 2], [0, 0, 1]], atol=1e-5)


def test_stale_frames_regenerated(n3v_copy):
    load_scene(n3v_copy, max_frames=2)
    video = n3v_copy / "cam01.mp4"
    write_video(video, [frame_bgr(2, j) for j in range(FRAMES)])  # now the blue square
    os.utime(video, (os.path.getmtime(video) + 10,) * 2)
    scene = load_scene(n3v_copy, max_frames=2)
    assert np.abs(scene.image(scene.train[1]).numpy() - rgb(frame_bgr(2, 1))).mean() < 0.03


def test_read_only_scene_caches_in_home(n3v_copy, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    os.chmod(n3v_copy, 0o555)
    try:
        scene = load_scene(n3v_copy, max_frames=2)
    finally:
        os.chmod(n3v_copy, 0o755)
    assert not (n3v_copy / "frames_1").exists()
    cached = sorted((tmp_path / "home" / ".cache" / "gspruner").glob("*/frames_1/cam*/*.png"))
    assert len(cached) == 6 and scene.test[1].image_path in cached
    assert scene.image(scene.test[1]).shape == (H, W, 3)


def test_unequal_frame_counts_use_the_minimum(n3v_copy):
    write_video(n3v_copy / "cam02.mp4", [frame_bgr(2, j) for j in range(4)])
    with pytest.warns(UserWarning, match="4 to 6 frames"):
        scene = load_scene(n3v_copy)
    assert len(scene.test) == 4 and len(scene.train) == 8
    np.testing.assert_allclose([c.time for c in scene.test], np.linspace(0, 1, 4))


@pytest.mark.parametrize("breakage, message", [
    ("shape", "expected shape"),
    ("rows", "2 camera rows but 3"),
    ("video", "unreadable video"),
    ("frame_step", "frame_step must be"),
    ("max_frames", "max_frames must be"),
])
def test_bad_inputs(n3v_copy, breakage, message):
    kwargs = {}
    poses = n3v_copy / "poses_bounds.npy"
    if breakage == "shape":
        np.save(poses, np.load(poses)[:, :15])
    elif breakage == "rows":
        np.save(poses, np.load(poses)[:2])
    elif breakage == "video":
        (n3v_copy / "cam02.mp4").write_bytes(b"not a video" * 10)
    else:
        kwargs = {breakage: 0}
    with pytest.raises(InputError, match=message):
        load_scene(n3v_copy, **kwargs)
    assert not (n3v_copy / "frames_1").exists()  # nothing written


def test_missing_folder(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_scene(tmp_path / "nope", frame_step=2)


def test_initial_points_lie_in_the_training_frustums_within_bounds(n3v):
    """No SfM for videos: points on random training-camera pixels at depths inside the LLFF near/far bounds
    (0.5..10 here, scaled by the normalization), coloured by their pixel of the first frame."""
    scene = load_scene(n3v)
    assert scene.points.shape[1] == 3 and len(scene.points) == len(scene.points_rgb) > 1000
    scale = np.linalg.norm(scene.transform[:3, 0])
    first = [c for c in scene.train if c.time == 0.0]  # cam01, cam02 at frame 0
    hits = np.zeros(len(scene.points), bool)
    for cam in first:
        w2c = np.linalg.inv(cam.c2w.double().numpy())
        p = scene.points @ w2c[:3, :3].T + w2c[:3, 3]
        uv = p[:, :2] / p[:, 2:3] * cam.K[0, 0].item() + cam.K[:2, 2].numpy()
        inside = (p[:, 2] >= 0.5 * scale - 1e-4) & (p[:, 2] <= 10 * scale + 1e-4) & (uv >= 0).all(1) & (uv[:, 0] <= W) & (uv[:, 1] <= H)
        hits |= inside
    assert hits.all()  # every point is in front of a training camera, inside its image, within its bounds
    colours = {tuple(c) for c in scene.points_rgb.tolist()}
    assert any(abs(r - 255) < 40 and g < 60 for r, g, _ in colours) or any(g > 200 for _, g, _ in colours)  # the squares
    assert any(abs(r - 60) < 10 and abs(g - 60) < 10 for r, g, _ in colours)  # the grey background
