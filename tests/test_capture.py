"""`gspruner process`: photos or a video of a generated capture with known cameras -> a scene `train` reads."""

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image  # before pycolmap (see gspruner/capture/reconstruct.py)

from gspruner.capture import frames, synthetic
from gspruner.capture.align import model_cameras, pose_errors, umeyama
from gspruner.cli import main
from gspruner.data.colmap import read_model

pytest.importorskip("pycolmap")

N_VIEWS, WIDTH, HEIGHT = 32, 256, 192


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    """(photo folder, names, c2w [n,4,4]) of the generated textured capture."""
    folder = tmp_path_factory.mktemp("capture") / "photos"
    names, poses, _ = synthetic.write_capture(folder, N_VIEWS, WIDTH, HEIGHT, seed=0)
    return folder, names, poses


@pytest.fixture(scope="module")
def processed(capture, tmp_path_factory):
    folder, _, _ = capture
    out = tmp_path_factory.mktemp("processed") / "scene"
    assert main(["process", str(folder), "--out", str(out), "--no-progress"]) == 0
    return out


def _recovered(out: Path) -> dict[str, np.ndarray]:
    return model_cameras(out / "sparse" / "0")


def test_umeyama_recovers_a_similarity():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(20, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    rotation = q * np.sign(np.linalg.det(q))
    scale, r, t = umeyama(points, 2.5 * points @ rotation.T + [1.0, -2.0, 0.5])
    assert scale == pytest.approx(2.5) and np.allclose(r, rotation) and np.allclose(t, [1.0, -2.0, 0.5])


def test_photos_give_the_generator_cameras(capture, processed):
    _, names, poses = capture
    recovered = _recovered(processed)
    assert len(recovered) >= 0.95 * N_VIEWS
    common = sorted(recovered)
    errors = pose_errors(np.stack([recovered[n] for n in common]), poses[[names.index(n) for n in common]])
    assert errors["median_rotation_deg"] < 0.5 and errors["rotation_deg"].max() < 1.0
    assert errors["median_centre_fraction"] < 0.01


def test_output_is_a_pinhole_colmap_scene_with_the_photo_names(capture, processed):
    _, names, _ = capture
    model = read_model(processed / "sparse" / "0")
    assert {cam.model for cam in model.cameras.values()} <= {"PINHOLE", "SIMPLE_PINHOLE"}
    assert len(model.cameras) == 1  # one size: one shared camera
    assert sorted(p.name for p in (processed / "images").iterdir()) == sorted(im.name for im in model.images)
    assert set(im.name for im in model.images) <= set(names)
    summary = json.loads((processed / "process.json").read_text())
    assert summary["images_found"] == N_VIEWS and summary["images_registered"] == len(model.images)
    assert summary["matcher"] == "exhaustive" and summary["image_pairs"] == N_VIEWS * (N_VIEWS - 1) // 2
    assert summary["points3D"] == len(model.points.xyz) > 1000
    assert 0 < summary["mean_reprojection_error_px"] < 1.0
    assert set(summary["seconds"]) >= {"features", "matching", "mapping", "undistort", "total"}
    assert summary["pycolmap"]
    assert not list(processed.parent.glob(".*process*"))  # no staging folder left behind


def test_process_output_trains_with_and_without_colmap4_files(processed, tmp_path):
    from gspruner.data import load_scene

    scene = load_scene(processed, data_factor=2)
    assert len(scene.train) + len(scene.test) >= 0.95 * N_VIEWS
    colmap3 = tmp_path / "colmap3"
    shutil.copytree(processed, colmap3)
    for name in ("rigs.bin", "frames.bin"):  # COLMAP 3 writes neither
        (colmap3 / "sparse" / "0" / name).unlink(missing_ok=True)
    old = load_scene(colmap3, data_factor=2)
    assert [c.name for c in old.train] == [c.name for c in scene.train]
    assert np.allclose(np.stack([c.K for c in old.train]), np.stack([c.K for c in scene.train]))
    r = tmp_path / "run"
    assert main(["train", "--data-dir", str(processed), "--data-factor", "4", "--max-steps", "20", "--result-dir",
                 str(r), "--device", "cpu", "--no-progress", "--no-lpips"]) == 0
    assert json.loads((r / "metrics.json").read_text())["psnr"] > 10


def test_video_frames_give_the_generator_cameras(capture, tmp_path):
    folder, names, poses = capture
    video = tmp_path / "walk.mp4"
    synthetic.write_video(video, folder, names)
    out = tmp_path / "from_video"
    # sequential pairs only (auto would match all 276 pairs of 24 frames): the video path and the sequential matcher
    assert main(["process", str(video), "--out", str(out), "--no-progress", "--num-frames", "24",
                 "--matcher", "sequential"]) == 0
    summary = json.loads((out / "process.json").read_text())
    assert summary["kind"] == "video" and summary["matcher"] == "sequential"
    chosen = summary["video"]["chosen_frames"]
    assert summary["video"]["frames_decoded"] == N_VIEWS and len(chosen) == 24
    recovered = _recovered(out)
    assert len(recovered) >= 0.9 * 24
    order = sorted(recovered)  # frame_00001.jpg ... is frame chosen[0] ...
    reference = poses[[chosen[int(n[6:11]) - 1] for n in order]]
    errors = pose_errors(np.stack([recovered[n] for n in order]), reference)
    assert errors["median_rotation_deg"] < 0.5 and errors["median_centre_fraction"] < 0.01


def test_sharpest_frame_of_each_window():
    sharpness = np.array([1, 5, 2, 9, 1, 1, 3, 2, 8, 0.0])
    assert frames.sharpest_per_window(sharpness, 2).tolist() == [3, 8]
    assert frames.sharpest_per_window(sharpness, 20).tolist() == list(range(10))
    blurred = cv2.GaussianBlur(synthetic.render(synthetic.arc_cameras(1)[0], 96, 72, 77.0), (9, 9), 3)
    assert frames.laplacian_variance(synthetic.render(synthetic.arc_cameras(1)[0], 96, 72, 77.0)) > 3 * frames.laplacian_variance(blurred)


def test_photos_upright_converted_and_non_images_listed(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir(), dst.mkdir()
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:10, :] = 255  # white band along the stored image's top
    exif = Image.Exif()
    exif[frames.EXIF_ORIENTATION] = 6  # "rotate 90° clockwise to view": a portrait phone photo
    Image.fromarray(pixels).save(src / "phone.jpg", exif=exif.tobytes(), quality=95)
    Image.fromarray(pixels).save(src / "plain.jpg", quality=95)
    Image.fromarray(pixels).save(src / "web.webp")
    Image.fromarray((np.arange(40 * 60).reshape(40, 60) * 20).astype(np.uint16)).save(src / "deep.png")
    (src / "notes.txt").write_text("not an image")
    (src / "broken.jpg").write_bytes((src / "plain.jpg").read_bytes()[:200])
    pictures = frames.collect_photos(src, dst, progress=False)
    assert pictures.names == ["deep.png", "phone.jpg", "plain.jpg", "web.png"]
    assert sorted(s.split(":")[0] for s in pictures.skipped) == ["broken.jpg", "notes.txt"]
    assert pictures.rotated == ["phone.jpg"]
    with Image.open(dst / "phone.jpg") as upright:
        assert upright.size == (40, 60) and upright.getexif().get(frames.EXIF_ORIENTATION, 1) == 1
        column = np.asarray(upright.convert("L"))[:, -10:].mean()  # the band is now on the right
        assert column > 200 and np.asarray(upright.convert("L"))[:, :10].mean() < 50
    assert (dst / "plain.jpg").read_bytes() == (src / "plain.jpg").read_bytes()  # copied as it is
    with Image.open(dst / "deep.png") as deep:
        assert deep.mode == "L" and np.asarray(deep).max() == round(47980 / 65535 * 255)  # 16 bits scaled to 8


def test_one_camera_per_image_size(tmp_path):
    from gspruner.capture.reconstruct import SfmOptions, extract, pycolmap_module

    images = tmp_path / "images"
    images.mkdir()
    poses = synthetic.arc_cameras(4)
    sizes = {}
    for k, (w, h) in enumerate([(160, 120), (160, 120), (120, 160), (120, 160)]):
        cv2.imwrite(str(images / f"v{k}.png"), synthetic.render(poses[k], w, h, 0.8 * w)[..., ::-1])
        sizes[f"v{k}.png"] = (w, h)
    database = tmp_path / "db.db"
    extract(database, images, sorted(sizes), sizes, SfmOptions(), progress=False)
    with pycolmap_module().Database.open(database) as db:
        cameras = {db.read_image_with_name(n).camera_id for n in sizes}
        assert len(cameras) == 2
        assert db.read_image_with_name("v0.png").camera_id == db.read_image_with_name("v1.png").camera_id


def _tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _refused(args, capsys, *must_say) -> str:
    code = main(["process", *map(str, args), "--no-progress"])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if line.strip()]
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:"), err
    for text in must_say:
        assert text in err[0], err[0]
    return err[0]


def test_too_few_images_is_one_line_and_writes_nothing(capture, tmp_path, capsys):
    folder, names, _ = capture
    src = tmp_path / "two"
    src.mkdir()
    for name in names[:2]:
        shutil.copy(folder / name, src / name)
    (src / "readme.txt").write_text("hello")
    out = tmp_path / "nested" / "out"
    _refused([src, "--out", out], capsys, "2 usable image", "readme.txt")
    assert not (tmp_path / "nested").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["two"]


def test_undecodable_video_is_one_line(tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    _refused([video, "--out", tmp_path / "out"], capsys, "clip.mp4")
    assert not (tmp_path / "out").exists()


def test_nothing_registers_is_one_line(tmp_path, capsys):
    src = tmp_path / "noise"
    src.mkdir()
    rng = np.random.default_rng(0)
    for k in range(4):  # unrelated noise: features, but no two views of one scene
        cv2.imwrite(str(src / f"n{k}.png"), cv2.resize(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), (128, 96),
                                                     interpolation=cv2.INTER_NEAREST))
    _refused([src, "--out", tmp_path / "out"], capsys, "registered")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))


def test_out_holding_something_else_is_left_as_it_was(capture, tmp_path, capsys):
    folder, _, _ = capture
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("precious")
    before = _tree_digest(out)
    _refused([folder, "--out", out], capsys, "something else")
    assert _tree_digest(out) == before


def test_failed_overwrite_leaves_the_earlier_output_byte_for_byte(processed, tmp_path, capsys):
    earlier = tmp_path / "earlier"
    shutil.copytree(processed, earlier)
    before = _tree_digest(earlier)
    src = tmp_path / "empty"
    src.mkdir()
    _refused([src, "--out", earlier], capsys, "earlier `gspruner process` output")  # without --overwrite
    _refused([src, "--out", earlier, "--overwrite"], capsys, "0 usable")
    assert _tree_digest(earlier) == before


def test_ctrl_c_leaves_no_half_written_dataset(capture, tmp_path, monkeypatch):
    from gspruner.capture import reconstruct

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reconstruct, "extract", interrupted)  # photos already copied into the staging folder
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        main(["process", str(capture[0]), "--out", str(out), "--no-progress"])
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _moved(poses: dict[str, np.ndarray], names: list[str], shift) -> dict[str, np.ndarray]:
    moved = {k: v.copy() for k, v in poses.items()}
    for name in names:
        moved[name][:3, 3] += shift
    return moved


def test_mappings_agree_tells_a_wrong_join_from_a_similarity(capture):
    from gspruner.capture.reconstruct import mappings_agree

    _, names, poses = capture
    a = dict(zip(names, poses))
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    similar = {}
    for name, c2w in a.items():  # the same cameras in another frame: rotated, scaled 3x, shifted
        m = np.eye(4)
        m[:3, :3] = q @ c2w[:3, :3]
        m[:3, 3] = 3.0 * q @ c2w[:3, 3] + [5.0, -1.0, 2.0]
        similar[name] = m
    assert mappings_agree(a, similar)[0]
    spread = np.sqrt(((poses[:, :3, 3] - poses[:, :3, 3].mean(0)) ** 2).sum(1).mean())
    # the first third joined with a wrong translation (what the incremental mapper did to the fox video)
    assert not mappings_agree(a, _moved(a, names[: N_VIEWS // 3 + 6], [0.5 * spread, 0.0, 0.0]))[0]
    assert not mappings_agree(a, {n: a[n] for n in names[:2]})[0]  # too few images in common


def test_a_wrong_first_mapping_is_outvoted(capture, tmp_path, monkeypatch):
    """The first mapping joins the first half of the photos wrongly; the check asks second opinions until two
    agree (the global mapper, then the incremental one from a stricter start, ...) and keeps that model, so the
    output has the generator's cameras."""
    import pycolmap

    from gspruner.capture import reconstruct

    folder, names, poses = capture
    real = reconstruct.map_images
    calls = []

    def first_one_wrong(*args, **kwargs):
        model = real(*args, **kwargs)
        calls.append(args[4])
        if len(calls) == 1:
            spread = np.ptp(np.stack([im.projection_center() for im in model.images.values()]), axis=0).max()
            for image in model.images.values():
                if image.name in names[: N_VIEWS // 2]:
                    frame = model.frames[image.frame_id]
                    pose = frame.rig_from_world
                    frame.rig_from_world = pycolmap.Rigid3d(pose.rotation, pose.translation + [0.5 * spread, 0.0, 0.0])
        return model

    monkeypatch.setattr(reconstruct, "map_images", first_one_wrong)
    out = tmp_path / "scene"
    assert main(["process", str(folder), "--out", str(out), "--no-progress"]) == 0
    assert calls[:3] == ["incremental", "global", "incremental"]
    check = json.loads((out / "process.json").read_text())["mapping_check"]
    assert check["kept"] != "incremental" and "warning" not in check
    assert not check["comparisons"]["incremental vs global"]["agree"]
    recovered = _recovered(out)
    common = sorted(recovered)
    errors = pose_errors(np.stack([recovered[n] for n in common]), poses[[names.index(n) for n in common]])
    assert errors["median_rotation_deg"] < 0.5 and errors["median_centre_fraction"] < 0.01


def test_principal_point_off_the_centre_is_refined(tmp_path):
    """A lens whose principal point is 7 px right of the centre (2.0° at this focal length): COLMAP's mapper keeps
    it at the centre and turns every camera by that angle; --refine-principal-point finds it. (The generated
    cameras all look at one point, which leaves the vertical offset free: only the horizontal one is tested.)"""
    folder = tmp_path / "photos"
    names, poses, focal = synthetic.write_capture(folder, 24, WIDTH, HEIGHT, seed=1, principal_offset=(7.0, 0.0))
    errors, centres = {}, {}
    for refine in (False, True):
        out = tmp_path / f"scene-{refine}"
        flag = "--refine-principal-point" if refine else "--no-refine-principal-point"
        assert main(["process", str(folder), "--out", str(out), "--no-progress", "--no-check-mapping", flag,
                     "--camera-model", "PINHOLE"]) == 0
        summary = json.loads((out / "process.json").read_text())
        assert summary["principal_point_refined"] == refine and summary["mapping_check"] == {"checked": False}
        centres[refine] = summary["cameras_estimated"][0]["params"][2]
        recovered = _recovered(out)
        common = sorted(recovered)
        errors[refine] = pose_errors(np.stack([recovered[n] for n in common]),
                                     poses[[names.index(n) for n in common]])["median_rotation_deg"]
    assert centres[False] == WIDTH / 2 and abs(centres[True] - (WIDTH / 2 + 7.0)) < 2.0, centres
    assert errors[False] > 1.5 and errors[True] < 1.0, errors
