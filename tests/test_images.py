"""Image files -> camera images (gspruner/data/images.py): the shape check, EXIF orientation, the downsampling
cache keyed by its sources, premultiplied resampling, alpha from every image, masks."""

import os
import shutil

import cv2
import numpy as np
import PIL.Image
import PIL.ImageOps
import pytest
import torch

from gspruner.data import colmap, ensure_demo_scene, load_scene
from gspruner.errors import InputError


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return ensure_demo_scene(tmp_path_factory.mktemp("demo") / "demo", width=16, height=12, n_views=10, n_points=300)


@pytest.fixture
def scene_dir(demo, tmp_path):
    return shutil.copytree(demo, tmp_path / "scene")


def one_line_error(fn, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def pattern(width, height, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def test_an_image_of_another_shape_is_refused_not_stretched(scene_dir):
    bad = scene_dir / "images" / "view_003.png"
    cv2.imwrite(str(bad), pattern(16, 16))  # its camera is 16x12
    scene = load_scene(scene_dir)
    cam = next(c for c in scene.train if c.image_path == bad)
    for call in (scene.check_images, lambda: scene.image(cam), lambda: load_scene(scene_dir, data_factor=2)):
        message = one_line_error(call)
        assert str(bad) in message and "16x16" in message and "16x12" in message


def test_an_image_of_the_same_shape_at_another_resolution_is_resized(scene_dir):
    path = scene_dir / "images" / "view_003.png"
    big = pattern(32, 24)
    cv2.imwrite(str(path), big)
    scene = load_scene(scene_dir)
    scene.check_images()
    cam = next(c for c in scene.train if c.image_path == path)
    expected = cv2.resize(big[..., ::-1].astype(np.float32) / 255, (16, 12), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(scene.image(cam).numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_pillows_exif_transpose(tmp_path, orientation):
    from gspruner.data.images import apply_orientation

    image = PIL.Image.fromarray(pattern(5, 3))
    exif = PIL.Image.Exif()
    exif[0x0112] = orientation
    image.save(tmp_path / "o.png", exif=exif)
    with PIL.Image.open(tmp_path / "o.png") as im:
        expected = np.asarray(PIL.ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(apply_orientation(np.asarray(image), orientation), expected)


def write_jpeg_with_orientation(path, pixels_rgb, orientation):
    exif = PIL.Image.Exif()
    exif[0x0112] = orientation
    PIL.Image.fromarray(pixels_rgb).save(path, quality=100, subsampling=0, exif=exif)


def colmap_scene_of(scene_dir, names):
    """The demo's model with its images renamed to `names` (the first len(names) of them)."""
    model = colmap.read_model(scene_dir / "sparse" / "0")
    model.images = model.images[:len(names)]
    for im, name in zip(model.images, names):
        im.name = name
    colmap.write_colmap_binary(scene_dir / "sparse" / "0", model)
    return model


def test_exif_orientation_as_colmap_reads_it(scene_dir):
    """Pixels as stored when they fit the camera (COLMAP ignores the tag); the EXIF turn applied when only the
    turned image fits (the camera was made on the turned image); the same for the image and its mask."""
    stored = pattern(16, 12, seed=1)
    turned = np.ascontiguousarray(np.rot90(stored, 1))  # 12x16: shown as `stored` under orientation 6
    write_jpeg_with_orientation(scene_dir / "images" / "as_stored.jpg", stored, 6)
    write_jpeg_with_orientation(scene_dir / "images" / "turned.jpg", turned, 6)
    colmap_scene_of(scene_dir, ["view_000.png", "as_stored.jpg", "turned.jpg"] + [f"view_00{i}.png" for i in range(3, 10)])
    masks = scene_dir / "masks"
    masks.mkdir()
    for name in [f"view_00{i}" for i in (0, *range(3, 10))]:
        cv2.imwrite(str(masks / f"{name}.png"), np.full((12, 16), 255, np.uint8))
    cv2.imwrite(str(masks / "as_stored.png"), np.full((12, 16), 255, np.uint8))
    turned_mask = np.full((12, 16), 255, np.uint8)
    turned_mask[:, :4] = 0  # the left quarter of the shown image masked
    write_jpeg_with_orientation(masks / "turned.png", np.ascontiguousarray(np.rot90(turned_mask, 1)), 6)  # a PNG with EXIF
    scene = load_scene(scene_dir)
    scene.check_images()
    cams = {c.name: c for c in scene.train + scene.test}
    for name in ("as_stored.jpg", "turned.jpg"):
        assert (cams[name].width, cams[name].height) == (16, 12)
        np.testing.assert_allclose(scene.image(cams[name]).numpy(), stored / 255.0, atol=6 / 255)  # JPEG
    np.testing.assert_array_equal(scene.mask(cams["turned.jpg"])[..., 0].numpy(), turned_mask / 255.0)
    half = load_scene(scene_dir, data_factor=2)  # the cache applies the same rule
    cam = next(c for c in half.train + half.test if c.name == "turned.jpg")
    expected = cv2.resize(stored.astype(np.float32) / 255, (8, 6), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(half.image(cam).numpy(), expected, atol=6 / 255)


def test_cache_is_one_file_per_source(scene_dir):
    """a.jpg and a.png of one scene are two cache entries, never one."""
    jpg, png = pattern(16, 12, seed=2), pattern(16, 12, seed=3)
    PIL.Image.fromarray(jpg).save(scene_dir / "images" / "a.jpg", quality=100, subsampling=0)
    PIL.Image.fromarray(png).save(scene_dir / "images" / "a.png")
    colmap_scene_of(scene_dir, ["a.jpg", "a.png"] + [f"view_00{i}.png" for i in range(2, 10)])
    scene = load_scene(scene_dir, data_factor=2, test_every=0)
    cams = {c.name: c for c in scene.train}
    assert cams["a.jpg"].image_path != cams["a.png"].image_path
    for name, pixels in (("a.jpg", jpg), ("a.png", png)):
        expected = cv2.resize(pixels.astype(np.float32) / 255, (8, 6), interpolation=cv2.INTER_AREA)
        np.testing.assert_allclose(scene.image(cams[name]).numpy(), expected, atol=3 / 255)


def test_cache_is_rebuilt_when_a_source_changes_under_its_old_mtime(scene_dir):
    """`cp -p` / `rsync -a` / unzip bring a new file with an old modification time: the content decides."""
    first = load_scene(scene_dir, data_factor=2)
    source = scene_dir / "images" / "view_001.png"
    stamp = source.stat()
    new = pattern(16, 12, seed=4)
    cv2.imwrite(str(source), new)
    os.utime(source, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    cached = first.train[0].image_path
    assert cached.stat().st_mtime >= source.stat().st_mtime  # by mtime the cache would look fresh
    again = load_scene(scene_dir, data_factor=2)
    expected = cv2.resize(new[..., ::-1].astype(np.float32) / 255, (8, 6), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(again.image(again.train[0]).numpy(), expected, atol=2 / 255)


def test_cached_rgba_is_resized_premultiplied(scene_dir):
    """Transparent pixels hide a green colour: the cache must not bleed it into the downsampled edges."""
    rgba = np.zeros((12, 16, 4), np.uint8)
    rgba[..., 1] = 255  # green, hidden: alpha 0
    rgba[:, ::2, :] = (0, 0, 255, 255)  # every other column opaque red (BGRA)
    for path in (scene_dir / "images").iterdir():
        cv2.imwrite(str(path), rgba)
    full, half = load_scene(scene_dir), load_scene(scene_dir, data_factor=2)
    assert half.has_alpha
    expected = cv2.resize(full.rgba(full.train[0]).numpy(), (8, 6), interpolation=cv2.INTER_AREA)
    got = half.rgba(half.train[0]).numpy()
    np.testing.assert_allclose(got, expected, atol=2 / 255)
    assert got[..., 1].max() < 2 / 255  # no green


def test_alpha_is_decided_from_every_image(scene_dir):
    """The first image opaque, a later one with alpha: the scene has alpha."""
    path = scene_dir / "images" / "view_005.png"
    rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    cv2.imwrite(str(path), np.concatenate([rgba, np.full((12, 16, 1), 128, np.uint8)], axis=2))
    scene = load_scene(scene_dir, background=(0.0, 1.0, 0.0))
    assert scene.has_alpha and scene.background == (0.0, 1.0, 0.0)
    cam = next(c for c in scene.train if c.image_path == path)
    expected = rgba[..., ::-1] / 255.0 * (128 / 255) + np.array([0, 1, 0]) * (1 - 128 / 255)
    np.testing.assert_allclose(scene.image(cam).numpy(), expected, atol=1e-5)


def test_masks_folder_beside_images(scene_dir):
    masks = scene_dir / "masks"
    masks.mkdir()
    for i in range(10):
        mask = np.full((12, 16), 255, np.uint8)
        mask[:, :i] = 0
        cv2.imwrite(str(masks / f"view_00{i}.png"), mask)
    scene = load_scene(scene_dir)
    assert scene.masked
    for cam in scene.train + scene.test:
        i = int(cam.name[-5])
        m = scene.mask(cam)
        assert m.shape == (12, 16, 1) and m.dtype == torch.float32
        assert m[:, :i].sum() == 0 and m[:, i:].min() == 1
    half = load_scene(scene_dir, data_factor=2)
    m = half.mask(next(c for c in half.train if c.name == "view_004.png"))
    np.testing.assert_array_equal(m[..., 0].numpy(), np.repeat([[0, 0, 1, 1, 1, 1, 1, 1]], 6, axis=0))
    (masks / "view_007.png").unlink()
    message = one_line_error(load_scene, scene_dir)
    assert str(masks) in message and "view_007.png" in message


def test_a_mask_of_another_shape_or_keeping_nothing_is_refused(scene_dir):
    masks = scene_dir / "masks"
    masks.mkdir()
    for i in range(10):
        cv2.imwrite(str(masks / f"view_00{i}.png"), np.full((12, 16), 255, np.uint8))
    cv2.imwrite(str(masks / "view_002.png"), np.full((16, 16), 255, np.uint8))
    cv2.imwrite(str(masks / "view_003.png"), np.zeros((12, 16), np.uint8))
    scene = load_scene(scene_dir)
    cams = {c.name: c for c in scene.train}
    message = one_line_error(scene.check_images)
    assert str(masks / "view_002.png") in message and "16x16" in message
    assert "keeps no pixel" in one_line_error(scene.mask, cams["view_003.png"])
