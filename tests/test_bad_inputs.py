"""A corpus of bad and unusual inputs across the loaders and the commands. Each case either loads correctly
(asserted on what it loads) or is refused by the command with exactly one `error:` line on stderr, exit code 2,
nothing written, and nothing the input asked for run (the pickled checkpoint's marker file).

The scenes are tiny (16x12 images) so the whole corpus runs in seconds."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import PIL.Image
import pytest
import torch

from gspruner.cli import main
from gspruner.data import colmap, ensure_demo_scene, load_scene

W, H = 16, 12


@dataclass
class Refused:
    args: list[str]  # the command line
    mentions: tuple[str, ...]  # what the error line must name (the file, the problem)
    not_created: tuple[Path, ...] = ()  # files the input would create if it were run


@dataclass
class Accepted:
    check: Callable[[], None]  # loads the input and asserts on what it holds
    args: list[str] | None = None  # a command that must also succeed on it
    outputs: tuple[Path, ...] = field(default_factory=tuple)  # what that command writes


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return ensure_demo_scene(tmp_path_factory.mktemp("demo") / "demo", width=W, height=H, n_views=10, n_points=300)


def train(scene: Path, tmp: Path, *extra: str) -> list[str]:
    return ["train", "--data-dir", str(scene), "--result-dir", str(tmp / "out"), "--max-steps", "2", "--device",
            "cpu", "--no-progress", "--no-lpips", "--no-save-renders", *extra]


def pattern(w=W, h=H, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, channels), dtype=np.uint8)


# ------------------------------------------------------------------------------------------- COLMAP images

def colmap_scene(tmp: Path, demo: Path) -> Path:
    return shutil.copytree(demo, tmp / "scene")


def rename_in_model(scene: Path, old: str, new: str) -> None:
    model = colmap.read_model(scene / "sparse" / "0")
    for im in model.images:
        if im.name == old:
            im.name = new
    colmap.write_colmap_binary(scene / "sparse" / "0", model)


def replaced_image(tmp, demo, data: bytes | None = None, name="view_003.png", pixels=None, write=None):
    """The demo scene with view_003.png replaced by `name` holding `data` / `pixels` / what `write` writes."""
    scene = colmap_scene(tmp, demo)
    (scene / "images" / "view_003.png").unlink()
    path = scene / "images" / name
    if data is not None:
        path.write_bytes(data)
    elif pixels is not None:
        cv2.imwrite(str(path), pixels)
    else:
        write(path)
    if name != "view_003.png":
        rename_in_model(scene, "view_003.png", name)
    return scene, path


def encoded(suffix: str, pixels=None, **params) -> bytes:
    ok, buffer = cv2.imencode(suffix, pattern() if pixels is None else pixels)
    assert ok
    return buffer.tobytes()


def truncated(suffix):
    def build(tmp, demo):
        data = encoded(suffix)
        scene, path = replaced_image(tmp, demo, data[: len(data) // 2], name=f"view_003{suffix}")
        return Refused(train(scene, tmp), (str(path),))
    return build


def zero_bytes(suffix):
    def build(tmp, demo):
        scene, path = replaced_image(tmp, demo, b"", name=f"view_003{suffix}")
        return Refused(train(scene, tmp), (str(path),))
    return build


def corrupt(suffix, signature: bytes):
    def build(tmp, demo):
        scene, path = replaced_image(tmp, demo, signature + bytes(range(256)) * 4, name=f"view_003{suffix}")
        return Refused(train(scene, tmp), (str(path),))
    return build


def not_an_image(tmp, demo):
    scene, path = replaced_image(tmp, demo, "a text file, not a picture\n".encode())
    return Refused(train(scene, tmp), (str(path), "not an image format"))


def wrong_shape(tmp, demo):
    scene, path = replaced_image(tmp, demo, pixels=pattern(W, W))
    return Refused(train(scene, tmp), (str(path), f"{W}x{W}", f"{W}x{H}"))


def loaded(scene: Path, name: str) -> np.ndarray:
    """The image `name` as the scene loads it: [H,W,3] float in [0,1]."""
    s = load_scene(scene, test_every=0)
    s.check_images()
    cam = next(c for c in s.train if c.name == name)
    assert (cam.width, cam.height) == (W, H)
    return s.image(cam).numpy()


def accepted_image(expected_rgb: np.ndarray, name="view_003.png", atol=1e-5, **replace):
    def build(tmp, demo):
        scene, _ = replaced_image(tmp, demo, name=name, **replace)
        return Accepted(lambda: np.testing.assert_allclose(loaded(scene, name), expected_rgb, atol=atol),
                        train(scene, tmp), (tmp / "out" / "metrics.json",))
    return build


BIG = pattern(2 * W, 2 * H, seed=1)
STORED = pattern(seed=2)
GRAY = pattern(channels=1, seed=3)[..., 0]
DEEP = (pattern(seed=4).astype(np.uint16) * 257 + 7)  # 16-bit, BGR


def exif_jpeg(pixels_rgb, orientation):
    def write(path):
        exif = PIL.Image.Exif()
        exif[0x0112] = orientation
        PIL.Image.fromarray(pixels_rgb).save(path, quality=100, subsampling=0, exif=exif)
    return write


def cmyk_jpeg(path):
    PIL.Image.fromarray(STORED).convert("CMYK").save(path, quality=100)


def palette_with_transparency(tmp, demo):
    def write(path):
        index = (np.arange(W * H).reshape(H, W) % 4).astype(np.uint8)
        im = PIL.Image.fromarray(index, "P")
        im.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255] + [0] * (256 * 3 - 12))
        im.save(path, transparency=0)  # palette entry 0 (red) transparent

    scene, path = replaced_image(tmp, demo, write=write)

    def check():
        s = load_scene(scene, test_every=0, background=(0.0, 0.0, 0.0))
        assert s.has_alpha
        rgba = s.rgba(next(c for c in s.train if c.image_path == path)).numpy()
        index = np.arange(W * H).reshape(H, W) % 4
        assert (rgba[index == 0] == 0).all()  # transparent: colour × alpha 0
        np.testing.assert_allclose(rgba[index == 1], [[0, 1, 0, 1]] * int((index == 1).sum()))
    return Accepted(check)


def missing_image(tmp, demo):
    scene = colmap_scene(tmp, demo)
    (scene / "images" / "view_004.png").unlink()
    return Refused(train(scene, tmp), (str(scene / "sparse" / "0" / "images.bin"), "view_004.png"))


def edit_model(tmp, demo, edit):
    scene = colmap_scene(tmp, demo)
    model = colmap.read_model(scene / "sparse" / "0")
    edit(model)
    colmap.write_colmap_binary(scene / "sparse" / "0", model)
    return scene


def nan_quaternion(tmp, demo):
    scene = edit_model(tmp, demo, lambda m: m.images[2].qvec.__setitem__(0, np.nan))
    return Refused(train(scene, tmp), (str(scene / "sparse" / "0" / "images.bin"), "no valid pose"))


def duplicate_colmap_names(tmp, demo):
    def edit(model):
        model.images[5].name = model.images[4].name
    scene = edit_model(tmp, demo, edit)
    return Refused(train(scene, tmp), (str(scene / "sparse" / "0" / "images.bin"), "more than once"))


def text_model_without_observation_lines(tmp, demo):
    scene = colmap_scene(tmp, demo)
    model = colmap.read_model(scene / "sparse" / "0")
    shutil.rmtree(scene / "sparse")
    colmap.write_colmap_text(scene / "sparse" / "0", model)
    path = scene / "sparse" / "0" / "images.txt"
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines() if line.strip()))

    def check():
        s = load_scene(scene, test_every=0)
        assert sorted(c.name for c in s.train) == sorted(im.name for im in model.images)
    return Accepted(check)


def non_ascii_paths(tmp, demo):
    scene = shutil.copytree(demo, tmp / "szène_日本")
    rename_in_model(scene, "view_003.png", "bild_ä.png")
    (scene / "images" / "view_003.png").rename(scene / "images" / "bild_ä.png")
    expected = cv2.imread(str(demo / "images" / "view_003.png"))[..., ::-1] / 255.0
    return Accepted(lambda: np.testing.assert_allclose(loaded(scene, "bild_ä.png"), expected, atol=1e-6),
                    train(scene, tmp), (tmp / "out" / "point_cloud.ply",))


# ----------------------------------------------------------------------------------------- transforms.json

def look_at(k: int, n: int = 8) -> list:
    a = 2 * math.pi * k / n
    position = np.array([3 * math.cos(a), 3 * math.sin(a), 1.0])
    back = position / np.linalg.norm(position)
    right = np.cross([0, 0, 1.0], back)
    right /= np.linalg.norm(right)
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = np.stack([right, np.cross(back, right), back], 1), position
    return m.tolist()


def transforms_scene(tmp, edit=None, n=8, **top) -> Path:
    """A transforms.json scene (8 frames of 16x12) after `edit(meta)`."""
    scene = tmp / "ns"
    (scene / "images").mkdir(parents=True)
    frames = []
    for k in range(n):
        cv2.imwrite(str(scene / "images" / f"f{k}.png"), pattern(seed=10 + k))
        frames.append({"file_path": f"images/f{k}.png", "transform_matrix": look_at(k, n)})
    meta = {"fl_x": 14.0, "fl_y": 14.0, "cx": 8.0, "cy": 6.0, "w": W, "h": H, "frames": frames, **top}
    if edit is not None:
        edit(meta)
    (scene / "transforms.json").write_text(json.dumps(meta))
    return scene


def json_refusal(*mentions, edit=None, **top):
    def build(tmp, demo):
        scene = transforms_scene(tmp, edit, **top)
        return Refused(train(scene, tmp, "--init-num-pts", "100"), (str(scene / "transforms.json"), *mentions))
    return build


def json_syntax(tmp, demo):
    scene = transforms_scene(tmp)
    path = scene / "transforms.json"
    path.write_text(path.read_text()[:-3])
    return Refused(train(scene, tmp), (str(path), "malformed JSON"))


def frame_set(index, key, value):
    def edit(meta):
        meta["frames"][index][key] = value
    return edit


def frame_del(index, key):
    def edit(meta):
        del meta["frames"][index][key]
    return edit


def point_cloud(tmp, demo, nan=False, drop=None, colour=True, **expect):
    import plyfile

    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(40, 3)).astype(np.float32)
    fields = [(a, "f4") for a in "xyz" if a != drop] + ([(c, "u1") for c in ("red", "green", "blue")] if colour else [])
    records = np.zeros(40, dtype=fields)
    for i, a in enumerate("xyz"):
        if a != drop:
            records[a] = xyz[:, i]
    if colour:
        for c in ("red", "green", "blue"):
            records[c] = 200
    if nan:
        records["y"][3] = np.nan
    scene = transforms_scene(tmp, ply_file_path="points.ply")
    plyfile.PlyData([plyfile.PlyElement.describe(records, "vertex")]).write(str(scene / "points.ply"))
    return scene, xyz


def ply_with_nan(tmp, demo):
    scene, _ = point_cloud(tmp, demo, nan=True)
    return Refused(train(scene, tmp), (str(scene / "points.ply"), "non-finite"))


def ply_without_z(tmp, demo):
    scene, _ = point_cloud(tmp, demo, drop="z")
    return Refused(train(scene, tmp), (str(scene / "points.ply"), "lacks properties z"))


def ply_without_colour(tmp, demo):
    scene, xyz = point_cloud(tmp, demo, colour=False)

    def check():
        s = load_scene(scene, normalize=False)
        np.testing.assert_allclose(s.points, xyz, atol=1e-6)
        assert (s.points_rgb == 128).all()
    return Accepted(check, train(scene, tmp), (tmp / "out" / "metrics.json",))


def mixed_frame_sizes(tmp, demo):
    def edit(meta):
        for key in ("w", "h"):
            del meta[key]
    scene = transforms_scene(tmp, edit)
    cv2.imwrite(str(scene / "images" / "f5.png"), pattern(2 * W, H, seed=5))

    def check():
        s = load_scene(scene, test_every=0, normalize=False)
        sizes = {c.name: (c.width, c.height) for c in s.train}
        assert sizes["images/f5.png"] == (2 * W, H) and sizes["images/f0.png"] == (W, H)
        np.testing.assert_allclose(s.image(next(c for c in s.train if c.name == "images/f5.png")).numpy(),
                                   pattern(2 * W, H, seed=5)[..., ::-1] / 255.0, atol=1e-6)
    return Accepted(check)


# ------------------------------------------------------------------------------------ checkpoints and PLYs

class CreatesAFile:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def pickled_payload(command):
    def build(tmp, demo):
        marker = tmp / "marker"
        ckpt = tmp / "evil.pt"
        torch.save({"splats": {"means": torch.zeros(3, 3)}, "config": {"x": CreatesAFile(marker)}}, ckpt)
        args = {"eval": ["eval", "--ckpt", str(ckpt), "--device", "cpu"],
                "export": ["export", "--ckpt", str(ckpt), "--out", str(tmp / "o.ply")]}[command]
        return Refused(args, (str(ckpt), "refused"), not_created=(marker,))
    return build


def truncated_checkpoint(tmp, demo):
    ckpt = tmp / "cut.pt"
    torch.save({"splats": {"means": torch.randn(1000, 3)}}, ckpt)
    ckpt.write_bytes(ckpt.read_bytes()[:2000])
    return Refused(["eval", "--ckpt", str(ckpt), "--device", "cpu"], (str(ckpt), "not a readable"))


def splats(n=20):
    g = torch.Generator().manual_seed(0)
    return {"means": torch.randn(n, 3, generator=g), "scales": torch.randn(n, 3, generator=g) - 3,
            "quats": torch.randn(n, 4, generator=g), "opacities": torch.randn(n, generator=g),
            "sh0": torch.randn(n, 1, 3, generator=g), "shN": torch.zeros(n, 0, 3)}


def gaussian_ply(tmp, damage=None) -> Path:
    from gspruner.export import write_ply
    import plyfile

    path = tmp / "scene.ply"
    write_ply(path, splats())
    if damage is not None:
        data = plyfile.PlyData.read(str(path), mmap=False)["vertex"].data
        data = damage(data)
        plyfile.PlyData([plyfile.PlyElement.describe(data, "vertex")]).write(str(path))
    return path


def gaussian_ply_with_nan(tmp, demo):
    def damage(data):
        data["opacity"][4] = np.nan
        return data
    path = gaussian_ply(tmp, damage)
    return Refused(["eval", "--ply", str(path), "--data-dir", str(demo), "--device", "cpu", "--no-lpips"],
                   (str(path), "NaN"))


def gaussian_ply_without_opacity(tmp, demo):
    import numpy.lib.recfunctions as rf

    path = gaussian_ply(tmp, lambda data: rf.drop_fields(data, "opacity", usemask=False))
    return Refused(["export", "--ply", str(path), "--format", "spz", "--out", str(tmp / "o.spz")],
                   (str(path), "opacity"))


def zero_byte_ply_view(tmp, demo):
    path = tmp / "empty.ply"
    path.write_bytes(b"")
    return Refused(["view", "--ply", str(path), "--port", "0", "--device", "cpu"], (str(path),))


def export_from_non_ascii_path(tmp, demo):
    from gspruner.export import read_ply

    folder = tmp / "données_模型"
    folder.mkdir()
    source = gaussian_ply(folder)
    target = folder / "копия.ply"

    def check():
        back, original = read_ply(target), read_ply(source)
        for key in original:
            torch.testing.assert_close(back[key], original[key])
    return Accepted(check, ["export", "--ply", str(source), "--format", "ply", "--out", str(target)], (target,))


CASES: dict[str, Callable[[Path, Path], Refused | Accepted]] = {
    # images, through the COLMAP loader and `train`
    "png truncated": truncated(".png"),
    "jpg truncated": truncated(".jpg"),
    "png zero bytes": zero_bytes(".png"),
    "jpg zero bytes": zero_bytes(".jpg"),
    "png corrupt after its signature": corrupt(".png", b"\x89PNG\r\n\x1a\n"),
    "jpg corrupt after its signature": corrupt(".jpg", b"\xff\xd8\xff\xe0"),
    "text file named .png": not_an_image,
    "image of another shape": wrong_shape,
    "image of the camera's shape at twice its size": accepted_image(
        cv2.resize(BIG[..., ::-1].astype(np.float32) / 255, (W, H), interpolation=cv2.INTER_AREA), pixels=BIG),
    "EXIF-rotated jpg that fits as stored": accepted_image(STORED / 255.0, name="view_003.jpg", atol=6 / 255,
                                                           write=exif_jpeg(STORED, 6)),
    "EXIF-rotated jpg stored turned": accepted_image(STORED / 255.0, name="view_003.jpg", atol=6 / 255,
                                                     write=exif_jpeg(np.ascontiguousarray(np.rot90(STORED, 1)), 6)),
    "16-bit png": accepted_image(DEEP[..., ::-1] / 65535.0, pixels=DEEP),
    "grayscale png": accepted_image(np.repeat(GRAY[..., None] / 255.0, 3, axis=2), pixels=GRAY),
    "4-channel (CMYK) jpg": accepted_image(STORED / 255.0, name="view_003.jpg", atol=6 / 255, write=cmyk_jpeg),
    "palette png with a transparent entry": palette_with_transparency,
    "non-ASCII scene and image names": non_ascii_paths,
    # COLMAP models
    "COLMAP model naming a missing image": missing_image,
    "COLMAP NaN quaternion": nan_quaternion,
    "COLMAP duplicate image names": duplicate_colmap_names,
    "COLMAP images.txt without observation lines": text_model_without_observation_lines,
    # transforms.json (instant-ngp / nerfstudio)
    "transforms.json syntax error": json_syntax,
    "transforms.json without frames": json_refusal("frames", edit=lambda m: m.pop("frames")),
    "frame without file_path": json_refusal("file_path", edit=frame_del(2, "file_path")),
    "frame without transform_matrix": json_refusal("transform_matrix", edit=frame_del(2, "transform_matrix")),
    "NaN pose": json_refusal("frame 1", edit=frame_set(1, "transform_matrix", [[math.nan] * 4] * 4)),
    "zero-determinant pose": json_refusal("frame 4", "determinant",
                                          edit=frame_set(4, "transform_matrix", [[1, 0, 0, 0], [0, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])),
    "zero focal length": json_refusal("fl_x", fl_x=0.0),
    "no focal length at all": json_refusal("fl_x", edit=lambda m: [m.pop(k) for k in ("fl_x", "fl_y")]),
    "duplicate frame names": json_refusal("more than once", edit=frame_set(3, "file_path", "images/f2.png")),
    "fisheye camera model": json_refusal("OPENCV_FISHEYE", camera_model="OPENCV_FISHEYE"),
    "mask_path to a missing file": json_refusal("mask_path", edit=frame_set(0, "mask_path", "masks/none.png")),
    "frames of different sizes without w/h": mixed_frame_sizes,
    "point cloud with NaN": ply_with_nan,
    "point cloud without z": ply_without_z,
    "point cloud without colours": ply_without_colour,
    # checkpoints and scene files, through eval / export / view
    "checkpoint with a pickled payload (eval)": pickled_payload("eval"),
    "checkpoint with a pickled payload (export)": pickled_payload("export"),
    "truncated checkpoint": truncated_checkpoint,
    "Gaussian PLY with NaN": gaussian_ply_with_nan,
    "Gaussian PLY without opacity": gaussian_ply_without_opacity,
    "zero-byte PLY (view)": zero_byte_ply_view,
    "export from and to non-ASCII paths": export_from_non_ascii_path,
}


def tree(root: Path) -> dict:
    return {str(p.relative_to(root)): p.stat().st_size for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name, tmp_path, demo, capsys):
    expect = CASES[name](tmp_path, demo)
    before = tree(tmp_path)
    capsys.readouterr()
    if isinstance(expect, Refused):
        code = main(expect.args)
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 2 and len(err) == 1 and err[0].startswith("error: "), (code, err)
        for word in expect.mentions:
            assert word in err[0], (word, err[0])
        assert tree(tmp_path) == before  # nothing written
        for path in expect.not_created:
            assert not path.exists()
    else:
        if expect.args is not None:
            assert main(expect.args) == 0
            for path in expect.outputs:
                assert path.is_file()
        expect.check()
