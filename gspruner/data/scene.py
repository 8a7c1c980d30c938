"""Scenes: cameras with K / pose / size / time, lazily loaded images, the train/test split, normalization.

`load_scene(data_dir)` detects the format:
- `sparse/0/` or `sparse/` holding a COLMAP model, images in `images/`  -> kind "colmap"
- `transforms_train.json` (+ `transforms_test.json`)                     -> "blender", or "dnerf" with "time"
- `transforms.json`                                                      -> "ingp" (instant-ngp)
- `poses_bounds.npy` + `cam*.mp4` videos (Neural 3D Video, see n3v.py)    -> "n3v"
Every bad input raises `InputError` (one line naming the file) before anything is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import PIL.Image
import torch
from tqdm import tqdm

from gspruner.errors import InputError
from gspruner.data import colmap
from gspruner.data.normalize import camera_extent, normalize_world
from gspruner.data.transforms import Frame, read_frames

SUPPORTED_COLMAP_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV")


@dataclass
class Camera:
    name: str  # image file name (relative to the images folder / data dir)
    K: torch.Tensor  # [3,3] float32 at the loaded (downsampled / undistorted) resolution
    c2w: torch.Tensor  # [4,4] float32 camera-to-world, OpenCV axes (x right, y down, z forward)
    width: int
    height: int
    image_path: Path  # the file the pixels come from
    time: float | None = None  # D-NeRF time in [0, 1]; None for static scenes

    @property
    def viewmat(self) -> torch.Tensor:  # [4,4] world-to-camera (c2w is rigid)
        R, t = self.c2w[:3, :3], self.c2w[:3, 3]
        w2c = torch.eye(4, dtype=self.c2w.dtype)
        w2c[:3, :3] = R.T
        w2c[:3, 3] = -R.T @ t
        return w2c


@dataclass
class Undistortion:
    """cv2.remap maps at the loaded size, then a crop to the valid region."""

    mapx: np.ndarray  # [h,w] float32
    mapy: np.ndarray  # [h,w] float32
    roi: tuple[int, int, int, int]  # x, y, width, height


@dataclass
class ImageRecipe:
    """How a file's pixels become a camera's image: resize to `size`, then undistort."""

    size: tuple[int, int]  # (width, height) before undistortion
    undistortion: Undistortion | None = None


@dataclass
class Scene:
    train: list[Camera]
    test: list[Camera]
    points: np.ndarray  # [P,3] float32 SfM points in the normalized world (P may be 0)
    points_rgb: np.ndarray  # [P,3] uint8
    scene_scale: float  # max distance of the training cameras from their centroid
    transform: np.ndarray  # [4,4] normalization applied to the original world
    data_dir: Path
    kind: str  # "colmap" | "blender" | "ingp" | "dnerf" | "n3v"
    # The colour a scene with alpha (an object on a transparent background) is evaluated on; None for opaque
    # images. The same rule for every loader: images with alpha make an object-centric scene.
    background: tuple[float, float, float] | None
    recipes: dict[Path, ImageRecipe] = field(default_factory=dict, repr=False)  # image_path -> recipe
    _images: dict[Path, torch.Tensor] = field(default_factory=dict, repr=False)  # [H,W,4] premultiplied
    _composited: dict[Path, torch.Tensor] = field(default_factory=dict, repr=False)  # [H,W,3] on `background`

    @property
    def train_center(self) -> tuple[float, float, float]:
        """The training cameras' centroid (the centre `scene_scale` is measured from)."""
        centers = np.stack([c.c2w[:3, 3].double().numpy() for c in self.train]) if self.train else np.zeros((1, 3))
        return tuple(float(v) for v in centers.mean(axis=0))

    @property
    def has_alpha(self) -> bool:
        """Images with alpha: train on random backgrounds, evaluate on `background`."""
        return self.background is not None

    def check_images(self) -> None:
        """Every image of both splits opens and its header is whole (a PNG's chunks checksummed) before a run
        writes anything: a bad file is found in seconds, not when evaluation first reads it. A file that passes
        and still fails to decode is an InputError when it is read."""
        for cam in self.train + self.test:
            check_image_header(Path(cam.image_path))

    def rgba(self, cam: Camera) -> torch.Tensor:
        """[H,W,4] float32: RGB premultiplied by alpha, and alpha (1 for opaque images); cached after first load."""
        key = Path(cam.image_path)
        if key not in self._images:
            recipe = self.recipes.get(key) or ImageRecipe((cam.width, cam.height))
            pixels = load_pixels(key, recipe)
            if pixels.shape[:2] != (cam.height, cam.width):
                raise InputError(f"{key}: image is {pixels.shape[1]}x{pixels.shape[0]}, camera expects {cam.width}x{cam.height}")
            self._images[key] = torch.from_numpy(pixels)
        return self._images[key]

    def image(self, cam: Camera, background: torch.Tensor | tuple | None = None) -> torch.Tensor:
        """[H,W,3] float32 in [0,1]: the image composited on `background` (default: the scene's; ignored for
        opaque images)."""
        key = Path(cam.image_path)
        if background is None or not self.has_alpha:
            if key not in self._composited:
                self._composited[key] = self.image(cam, self.background) if self.has_alpha else self.rgba(cam)[..., :3]
            return self._composited[key]
        rgba = self.rgba(cam)
        bg = torch.as_tensor(background, dtype=torch.float32, device=rgba.device)
        return rgba[..., :3] + bg * (1.0 - rgba[..., 3:])


# ------------------------------------------------------------------------------------------------ pixels

def check_image_header(path: Path) -> None:
    """InputError unless `path` is an image whose header reads (Pillow's verify: format, size, PNG checksums);
    a format Pillow does not know passes when OpenCV recognises its signature."""
    try:
        with PIL.Image.open(path) as im:
            im.verify()
    except PIL.UnidentifiedImageError:
        if not cv2.haveImageReader(str(path)):
            raise InputError(f"{path}: unreadable image (not an image format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: unreadable image ({exc})") from None


def read_image(path: Path) -> np.ndarray:  # [H,W,C] uint8/uint16 as stored (BGR / BGRA / gray)
    with _native_stderr() as decoder_says:  # libpng / libjpeg print their complaints there
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        reason = " ".join(decoder_says()).strip()
        raise InputError(f"{path}: unreadable image" + (f" ({reason})" if reason else ""))
    for line in decoder_says():  # a warning on an image that did decode: passed on
        print(line, file=sys.stderr)
    return image


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _native_stderr():
    """Capture what C libraries write to file descriptor 2 inside the block; yields a function returning the
    lines, so a decoder's complaint becomes part of one error line instead of a second line of its own.
    One block at a time (the lock): descriptor 2 is process-wide."""
    sys.stderr.flush()
    captured: list[str] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield lambda: captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.extend(line for line in sink.read().decode(errors="replace").splitlines() if line.strip())


def load_pixels(path: Path, recipe: ImageRecipe) -> np.ndarray:
    """[H,W,4] float32 in [0,1]: RGB premultiplied by alpha (alpha 1 for images without one), resized and
    undistorted (both linear filters, so on premultiplied colour they do not bleed the hidden colour of
    transparent pixels into the edges)."""
    raw = read_image(path)
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(raw.dtype, 1.0)
    image = raw.astype(np.float32) / scale
    if image.ndim == 2:
        image = image[..., None]
    channels = image.shape[2]
    rgb = np.repeat(image[..., :1], 3, axis=2) if channels < 3 else image[..., 2::-1]  # BGR -> RGB
    alpha = image[..., 3:4] if channels == 4 else image[..., 1:2] if channels == 2 else np.ones_like(rgb[..., :1])
    rgba = np.concatenate([rgb * alpha, alpha], axis=-1)
    if (rgba.shape[1], rgba.shape[0]) != recipe.size:
        shrink = recipe.size[0] < rgba.shape[1]
        rgba = cv2.resize(rgba, recipe.size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if recipe.undistortion is not None:
        u = recipe.undistortion
        rgba = cv2.remap(rgba, u.mapx, u.mapy, cv2.INTER_LINEAR)
        x, y, w, h = u.roi
        rgba = rgba[y:y + h, x:x + w]
    rgba = np.clip(rgba, 0.0, 1.0)
    rgba[..., :3] = np.minimum(rgba[..., :3], rgba[..., 3:])  # premultiplied: colour ≤ alpha
    return np.ascontiguousarray(rgba, dtype=np.float32)


def fit_camera(K: np.ndarray, width: int, height: int, dist: np.ndarray | None, factor: int):
    """Intrinsics at 1/factor resolution, undistorted as gsplat does when `dist` (k1,k2,p1,p2) is given.

    Returns (K [3,3] float64, (width, height) loaded, ImageRecipe)."""
    w, h = max(1, int(round(width / factor))), max(1, int(round(height / factor)))
    K = K.astype(np.float64).copy()
    K[0] *= w / width  # actual ratios, not 1/factor: rounding can change them slightly
    K[1] *= h / height
    if dist is None:
        return K, (w, h), ImageRecipe((w, h))
    dist = np.asarray(dist, np.float64)
    K_new, (x, y, rw, rh) = cv2.getOptimalNewCameraMatrix(K, dist, (w, h), 0)
    mapx, mapy = cv2.initUndistortRectifyMap(K, dist, None, K_new, (w, h), cv2.CV_32FC1)
    if rw <= 0 or rh <= 0:
        x, y, rw, rh = 0, 0, w, h
    K_new[0, 2] -= x
    K_new[1, 2] -= y
    return K_new, (rw, rh), ImageRecipe((w, h), Undistortion(mapx, mapy, (x, y, rw, rh)))


# --------------------------------------------------------------------------- downsampled image cache

def _writable(path: Path) -> bool:  # mode bits too: root may write anywhere, but should not here
    return os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def _is_fresh(target: Path, source: Path) -> bool:
    return target.is_file() and target.stat().st_mtime >= source.stat().st_mtime


def downsample_cache_dir(data_dir: Path, factor: int, sources: dict[Path, Path], name: str | None = None) -> Path:
    """`data_dir/{name or images_{factor}_png}/` if complete or writable, else a per-data-dir user cache."""
    local = data_dir / (name or f"images_{factor}_png")
    if all(_is_fresh(local / rel, src) for rel, src in sources.items()) or _writable(data_dir):
        return local
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "gspruner" / digest / local.name


def write_png_atomic(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    if not cv2.imwrite(str(tmp), image):
        raise OSError(f"{tmp}: cv2.imwrite failed")
    os.replace(tmp, path)


def downsampled_images(data_dir: Path, factor: int, sources: dict[str, Path], sizes: dict[str, tuple[int, int]]):
    """name -> PNG of `sources[name]` resized (cv2.INTER_AREA) to `sizes[name]`, cached on disk."""
    rel = {name: Path(name).with_suffix(".png") for name in sources}
    out_dir = downsample_cache_dir(data_dir, factor, {rel[n]: sources[n] for n in sources})
    targets = {name: out_dir / rel[name] for name in sources}
    todo = [name for name in sources if not _is_fresh(targets[name], sources[name])]
    for name in tqdm(todo, desc=f"downsampling x{factor} -> {out_dir}", unit="img", disable=not todo):
        small = cv2.resize(read_image(sources[name]), sizes[name], interpolation=cv2.INTER_AREA)
        write_png_atomic(targets[name], small)
    return targets


# ------------------------------------------------------------------------------------------------ loading

def load_scene(data_dir, data_factor: int = 1, test_every: int = 8, normalize: bool = True,
               background: tuple[float, float, float] | None = (1.0, 1.0, 1.0),
               frame_step: int = 1, max_frames: int | None = None) -> Scene:
    """`frame_step` (every k-th frame) and `max_frames` (the first n kept) apply to video scenes (n3v) only."""
    from gspruner.data import n3v  # n3v builds Scenes: imported here, not at the top (circular)

    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise InputError(f"{data_dir}: data directory does not exist")
    if int(data_factor) != data_factor or data_factor < 1:
        raise InputError(f"{data_dir}: data_factor must be a positive integer, got {data_factor}")
    if n3v.is_n3v(data_dir):
        return n3v.load_n3v(data_dir, int(data_factor), normalize, frame_step, max_frames)
    model_dir = colmap.find_model_dir(data_dir)
    if model_dir is not None:
        return _load_colmap(data_dir, model_dir, int(data_factor), test_every, normalize, background)
    if (data_dir / "transforms_train.json").is_file():
        return _load_blender(data_dir, int(data_factor), test_every, background)
    if (data_dir / "transforms.json").is_file():
        return _load_ingp(data_dir, int(data_factor), test_every, normalize, background)
    raise InputError(f"{data_dir}: no COLMAP model (sparse/0/, sparse/), transforms_train.json, transforms.json "
                     f"or poses_bounds.npy with cam*.mp4 videos")


def split_every(cameras: list[Camera], test_every: int) -> tuple[list[Camera], list[Camera]]:
    """Mip-NeRF 360 / gsplat split: indices i % test_every == 0 are test; test_every <= 0: all train."""
    if test_every <= 0:
        return list(cameras), []
    return ([c for i, c in enumerate(cameras) if i % test_every != 0],
            [c for i, c in enumerate(cameras) if i % test_every == 0])


def _colmap_intrinsics(cam: colmap.ColmapCamera, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    p = cam.params
    if cam.model not in SUPPORTED_COLMAP_MODELS:
        raise InputError(f"{path}: camera {cam.id} uses the unsupported {cam.model} model "
                         f"(supported: {', '.join(SUPPORTED_COLMAP_MODELS)})")
    if cam.model in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"):
        fx = fy = p[0]
        cx, cy, extra = p[1], p[2], p[3:]
    else:
        fx, fy, cx, cy, extra = p[0], p[1], p[2], p[3], p[4:]
    dist = np.zeros(4)
    dist[:len(extra)] = extra  # SIMPLE_RADIAL k | RADIAL k1 k2 | OPENCV k1 k2 p1 p2
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return K, (dist if np.any(dist != 0) else None)


def _load_colmap(data_dir: Path, model_dir: Path, factor: int, test_every: int, normalize: bool, background) -> Scene:
    cameras_file, images_file, _ = colmap.model_files(model_dir)
    model = colmap.read_model(model_dir)
    if not model.images:
        raise InputError(f"{images_file}: no images in the COLMAP model")
    image_dir = data_dir / "images"
    missing = [im.name for im in model.images if not (image_dir / im.name).is_file()]
    if missing:
        raise InputError(f"{images_file}: names {len(missing)} image(s) not found in {image_dir}, e.g. {missing[0]!r}")
    for im in model.images:
        if im.camera_id not in model.cameras:
            raise InputError(f"{images_file}: image {im.name!r} uses camera {im.camera_id}, not in {cameras_file}")
    used = sorted({im.camera_id for im in model.images})
    intrinsics = {cid: _colmap_intrinsics(model.cameras[cid], cameras_file) for cid in used}

    images = sorted(model.images, key=lambda im: im.name)
    c2w = np.linalg.inv(np.stack([im.world_to_camera() for im in images]))  # [N,4,4]
    points, transform = model.points.xyz, np.eye(4)
    if normalize:
        c2w, points, transform = normalize_world(c2w, points)

    fitted = {}  # camera id -> (K, (w, h), recipe); undistortion maps built once per camera model
    for cid in used:
        cam = model.cameras[cid]
        fitted[cid] = fit_camera(intrinsics[cid][0], cam.width, cam.height, intrinsics[cid][1], factor)
    paths = {im.name: image_dir / im.name for im in images}
    if factor > 1:  # from the full-resolution images, never a JPEG images_N/ folder
        sizes = {im.name: fitted[im.camera_id][2].size for im in images}
        paths = downsampled_images(data_dir, factor, paths, sizes)

    cameras, recipes = [], {}
    for im, pose in zip(images, c2w):
        K, (w, h), recipe = fitted[im.camera_id]
        cameras.append(_camera(im.name, K, pose, w, h, paths[im.name]))
        recipes[paths[im.name]] = recipe
    train, test = split_every(cameras, test_every)
    return Scene(train, test, points.astype(np.float32), model.points.rgb.astype(np.uint8), train_extent(train),
                 transform, data_dir, "colmap", scene_background(train[0].image_path if train else None, background),
                 recipes)


def _camera(name, K, c2w, width, height, image_path, time=None) -> Camera:
    return Camera(name, torch.tensor(K, dtype=torch.float32), torch.tensor(c2w, dtype=torch.float32),
                  int(width), int(height), Path(image_path), time)


def _cameras_from_frames(frames: list[Frame], c2w: np.ndarray, factor: int, recipes: dict) -> list[Camera]:
    fitted = {}  # intrinsics + distortion + size -> (K, size, recipe): maps built once per camera model
    cameras = []
    for frame, pose in zip(frames, c2w):
        key = (frame.K.tobytes(), None if frame.dist is None else frame.dist.tobytes(), frame.width, frame.height)
        if key not in fitted:
            fitted[key] = fit_camera(frame.K, frame.width, frame.height, frame.dist, factor)
        K, (w, h), recipes[frame.image_path] = fitted[key]
        cameras.append(_camera(frame.name, K, pose, w, h, frame.image_path, frame.time))
    return cameras


def train_extent(train: list[Camera]) -> float:
    """The scene scale: max distance of the training cameras from their centroid (test cameras never count)."""
    return camera_extent(np.stack([c.c2w.double().numpy() for c in train])) if train else 1.0


def scene_background(image_path: Path | None, background) -> tuple[float, float, float] | None:
    """One rule for every loader: a scene whose images have alpha is evaluated on `background`; None when opaque."""
    if image_path is None or background is None:
        return None
    image = read_image(Path(image_path))
    return tuple(float(c) for c in background) if image.ndim == 3 and image.shape[2] in (2, 4) else None


def _load_blender(data_dir: Path, factor: int, test_every: int, background) -> Scene:
    """NeRF-synthetic / D-NeRF in the given world (centred, radius ~4); test = transforms_test.json (else every
    `test_every`-th train frame); val is ignored."""
    train_frames = read_frames(data_dir / "transforms_train.json", data_dir)
    test_json = data_dir / "transforms_test.json"
    test_frames = read_frames(test_json, data_dir) if test_json.is_file() else []
    if test_frames and (test_frames[0].time is None) != (train_frames[0].time is None):
        raise InputError(f"{test_json}: frames {'lack' if test_frames[0].time is None else 'have'} \"time\", "
                         f"unlike transforms_train.json")
    kind = "blender" if train_frames[0].time is None else "dnerf"
    recipes = {}
    train = _cameras_from_frames(train_frames, np.stack([f.c2w for f in train_frames]), factor, recipes)
    if test_frames:
        test = _cameras_from_frames(test_frames, np.stack([f.c2w for f in test_frames]), factor, recipes)
    else:
        train, test = split_every(train, test_every)
    return Scene(train, test, np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), train_extent(train),
                 np.eye(4), data_dir, kind, scene_background(train_frames[0].image_path, background), recipes)


def _load_ingp(data_dir: Path, factor: int, test_every: int, normalize: bool, background) -> Scene:
    """instant-ngp transforms.json: frames sorted by name, split every `test_every`, cameras-only normalization."""
    frames = sorted(read_frames(data_dir / "transforms.json", data_dir), key=lambda f: f.name)
    c2w, transform = np.stack([f.c2w for f in frames]), np.eye(4)
    if normalize:
        c2w, _, transform = normalize_world(c2w, np.zeros((0, 3)))
    recipes = {}
    train, test = split_every(_cameras_from_frames(frames, c2w, factor, recipes), test_every)
    return Scene(train, test, np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8), train_extent(train),
                 transform, data_dir, "ingp", scene_background(frames[0].image_path, background), recipes)
