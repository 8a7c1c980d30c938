"""Scenes: cameras with K / pose / size / time, lazily loaded images, the train/test split, normalization, and
the readers of COLMAP (kind "colmap"), NeRF-synthetic / D-NeRF ("blender" / "dnerf") and instant-ngp ("ingp")
folders; n3v.py reads Neural 3D Video, and load.py's `load_scene(data_dir)` picks the reader a folder needs.
Every bad input raises `InputError` (one line naming the file) before anything is written. How a file's
pixels become a camera's image (orientation, the size check, resizing, the cache, masks): images.py.

Masks: a COLMAP scene may hold `masks/` beside `images/` (nerfstudio's and OpenSplat's layout: the image's
name with .png for its extension, white = keep); a transforms.json frame may name its `mask_path`. A camera
carries its mask file; `Scene.mask(cam)` gives [H,W,1] (1 = keep) or None, and the loss and the metrics take
it from there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gspruner.errors import InputError
from gspruner.data import colmap
from gspruner.data.images import ImageRecipe, Undistortion, check_image, downsampled_images, has_alpha, load_mask, load_pixels
# the cache helpers n3v.py (and evaluation's renders) use, where they have always been imported from
from gspruner.data.images import downsample_cache_dir, is_fresh as _is_fresh, writable as _writable, write_png_atomic  # noqa: F401
from gspruner.data.normalize import camera_extent, normalize_world
from gspruner.data.transforms import Frame, read_frames, read_frames_points

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
    mask_path: Path | None = None  # white = keep; None: every pixel counts

    @property
    def viewmat(self) -> torch.Tensor:  # [4,4] world-to-camera (c2w is rigid)
        R, t = self.c2w[:3, :3], self.c2w[:3, 3]
        w2c = torch.eye(4, dtype=self.c2w.dtype)
        w2c[:3, :3] = R.T
        w2c[:3, 3] = -R.T @ t
        return w2c


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
    recipes: dict[Path, ImageRecipe] = field(default_factory=dict, repr=False)  # image_path / mask_path -> recipe
    _images: dict[Path, torch.Tensor] = field(default_factory=dict, repr=False)  # [H,W,4] premultiplied
    _masks: dict[Path, torch.Tensor] = field(default_factory=dict, repr=False)  # [H,W,1] 1 = keep
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

    @property
    def masked(self) -> bool:
        """Whether any camera has a mask."""
        return any(cam.mask_path is not None for cam in self.train + self.test)

    def check_images(self) -> None:
        """Every image (and mask) of both splits opens, its header is whole (a PNG's chunks checksummed) and its
        shape fits its camera, before a run writes anything: a bad file is found in seconds, not when
        evaluation first reads it. A file that passes and still fails to decode is an InputError when it is read."""
        for cam in self.train + self.test:
            for path in (cam.image_path, cam.mask_path):
                if path is not None:
                    check_image(Path(path), self.recipes.get(Path(path)))

    def _recipe(self, path: Path, cam: Camera) -> ImageRecipe:
        return self.recipes.get(path) or ImageRecipe((cam.width, cam.height))

    def rgba(self, cam: Camera) -> torch.Tensor:
        """[H,W,4] float32: RGB premultiplied by alpha, and alpha (1 for opaque images); cached after first load."""
        key = Path(cam.image_path)
        if key not in self._images:
            pixels = load_pixels(key, self._recipe(key, cam))
            if pixels.shape[:2] != (cam.height, cam.width):
                raise InputError(f"{key}: image is {pixels.shape[1]}x{pixels.shape[0]}, camera expects {cam.width}x{cam.height}")
            self._images[key] = torch.from_numpy(pixels)
        return self._images[key]

    def mask(self, cam: Camera) -> torch.Tensor | None:
        """[H,W,1] float32, 1 where the pixel counts (loss and metrics) and 0 where it is masked out; None for a
        camera without a mask. Cached after first load."""
        if cam.mask_path is None:
            return None
        key = Path(cam.mask_path)
        if key not in self._masks:
            mask = load_mask(key, self._recipe(key, cam))
            if mask.shape[:2] != (cam.height, cam.width):
                raise InputError(f"{key}: mask is {mask.shape[1]}x{mask.shape[0]}, camera expects {cam.width}x{cam.height}")
            if not mask.any():
                raise InputError(f"{key}: the mask keeps no pixel (white = keep, black = ignore)")
            self._masks[key] = torch.from_numpy(np.ascontiguousarray(mask))
        return self._masks[key]

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


# ------------------------------------------------------------------------------------------------ cameras

def fit_camera(K: np.ndarray, width: int, height: int, dist: np.ndarray | None, factor: int):
    """Intrinsics at 1/factor resolution, undistorted as gsplat does when `dist` (OpenCV's k1, k2, p1, p2[, k3])
    is given. Returns (K [3,3] float64, (width, height) loaded, ImageRecipe); the recipe expects files of the
    camera's shape (width x height at any resolution)."""
    import cv2

    w, h = max(1, int(round(width / factor))), max(1, int(round(height / factor)))
    K = K.astype(np.float64).copy()
    K[0] *= w / width  # actual ratios, not 1/factor: rounding can change them slightly
    K[1] *= h / height
    if dist is None:
        return K, (w, h), ImageRecipe((w, h), camera_size=(int(width), int(height)))
    dist = np.asarray(dist, np.float64)
    K_new, (x, y, rw, rh) = cv2.getOptimalNewCameraMatrix(K, dist, (w, h), 0)
    mapx, mapy = cv2.initUndistortRectifyMap(K, dist, None, K_new, (w, h), cv2.CV_32FC1)
    if rw <= 0 or rh <= 0:
        x, y, rw, rh = 0, 0, w, h
    K_new[0, 2] -= x
    K_new[1, 2] -= y
    return K_new, (rw, rh), ImageRecipe((w, h), Undistortion(mapx, mapy, (x, y, rw, rh)), (int(width), int(height)))


# ------------------------------------------------------------------------------------------------ readers

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


def load_colmap(data_dir: Path, model_dir: Path, factor: int, test_every: int, normalize: bool, background) -> Scene:
    cameras_file, images_file, _ = colmap.model_files(model_dir)
    model = colmap.read_model(model_dir)
    if not model.images:
        raise InputError(f"{images_file}: no images in the COLMAP model")
    image_dir = data_dir / "images"
    missing = [im.name for im in model.images if not (image_dir / im.name).is_file()]
    if missing:
        raise InputError(f"{images_file}: names {len(missing)} image(s) not found in {image_dir}, e.g. {missing[0]!r}")
    check_unique([im.name for im in model.images], images_file)
    for im in model.images:
        if im.camera_id not in model.cameras:
            raise InputError(f"{images_file}: image {im.name!r} uses camera {im.camera_id}, not in {cameras_file}")
        if not (np.isfinite(im.qvec).all() and np.isfinite(im.tvec).all()) or np.linalg.norm(im.qvec) < 1e-12:
            raise InputError(f"{images_file}: image {im.name!r} has no valid pose (quaternion {im.qvec.tolist()}, "
                             f"translation {im.tvec.tolist()})")
    used = sorted({im.camera_id for im in model.images})
    intrinsics = {cid: _colmap_intrinsics(model.cameras[cid], cameras_file) for cid in used}
    masks = colmap_masks(data_dir, [im.name for im in model.images])

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
    recipes = {}
    if factor > 1:  # from the full-resolution images, never a JPEG images_N/ folder
        paths = downsampled_images(data_dir, factor, paths, {im.name: fitted[im.camera_id][2] for im in images})
        # the cached files are made to the loaded size: no shape to check, the undistortion still to apply
        recipes = {paths[im.name]: dataclasses.replace(fitted[im.camera_id][2], camera_size=None) for im in images}

    cameras = []
    for im, pose in zip(images, c2w):
        K, (w, h), recipe = fitted[im.camera_id]
        cameras.append(_camera(im.name, K, pose, w, h, paths[im.name], mask_path=masks.get(im.name)))
        recipes.setdefault(paths[im.name], recipe)
        if im.name in masks:
            recipes[masks[im.name]] = recipe
    train, test = split_every(cameras, test_every)
    return Scene(train, test, points.astype(np.float32), model.points.rgb.astype(np.uint8), train_extent(train),
                 transform, data_dir, "colmap", scene_background([image_dir / im.name for im in images], background),
                 recipes)


def check_unique(names: list[str], listed_in: Path) -> None:
    """InputError naming the first image listed twice."""
    seen = set()
    for name in names:
        if name in seen:
            raise InputError(f"{listed_in}: image {name!r} is listed more than once")
        seen.add(name)


def colmap_masks(data_dir: Path, names: list[str]) -> dict[str, Path]:
    """name -> its mask in `data_dir/masks/` (`a.jpg`: `masks/a.jpg.png`, else `masks/a.png`), none without the
    folder; with the folder, every image needs its mask (InputError naming the first one without)."""
    mask_dir = data_dir / "masks"
    if not mask_dir.is_dir():
        return {}
    masks = {}
    for name in names:
        candidates = (mask_dir / (name + ".png"), mask_dir / Path(name).with_suffix(".png"))
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise InputError(f"{mask_dir}: no mask for image {name!r} (looked for {candidates[1].name} and "
                             f"{candidates[0].name}); a masks/ folder needs one per image")
        masks[name] = found
    return masks


def _camera(name, K, c2w, width, height, image_path, time=None, mask_path=None) -> Camera:
    return Camera(name, torch.tensor(K, dtype=torch.float32), torch.tensor(c2w, dtype=torch.float32),
                  int(width), int(height), Path(image_path), time, None if mask_path is None else Path(mask_path))


def _cameras_from_frames(frames: list[Frame], c2w: np.ndarray, factor: int, recipes: dict) -> list[Camera]:
    fitted = {}  # intrinsics + distortion + size -> (K, size, recipe): maps built once per camera model
    cameras = []
    for frame, pose in zip(frames, c2w):
        key = (frame.K.tobytes(), None if frame.dist is None else frame.dist.tobytes(), frame.width, frame.height)
        if key not in fitted:
            fitted[key] = fit_camera(frame.K, frame.width, frame.height, frame.dist, factor)
        K, (w, h), recipes[frame.image_path] = fitted[key]
        if frame.mask_path is not None:
            recipes[frame.mask_path] = fitted[key][2]
        cameras.append(_camera(frame.name, K, pose, w, h, frame.image_path, frame.time, frame.mask_path))
    return cameras


def train_extent(train: list[Camera]) -> float:
    """The scene scale: max distance of the training cameras from their centroid (test cameras never count)."""
    return camera_extent(np.stack([c.c2w.double().numpy() for c in train])) if train else 1.0


def scene_background(image_paths, background) -> tuple[float, float, float] | None:
    """One rule for every loader: a scene any of whose images has alpha is evaluated on `background` (the opaque
    ones, alpha 1, composite to themselves); None when all are opaque. Read from the files' headers."""
    if background is None or not has_alpha(image_paths):
        return None
    return tuple(float(c) for c in background)


def load_blender(data_dir: Path, factor: int, test_every: int, background) -> Scene:
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
                 np.eye(4), data_dir, kind, scene_background([f.image_path for f in train_frames + test_frames],
                                                             background), recipes)


def load_ingp(data_dir: Path, factor: int, test_every: int, normalize: bool, background) -> Scene:
    """instant-ngp / nerfstudio transforms.json: frames sorted by name, split every `test_every`; the world is
    normalized from the cameras, and the initial points (nerfstudio's `ply_file_path`, in the frames' world)
    come along."""
    json_path = data_dir / "transforms.json"
    frames = sorted(read_frames(json_path, data_dir), key=lambda f: f.name)
    check_unique([f.name for f in frames], json_path)
    points, rgb = read_frames_points(json_path)
    c2w, transform = np.stack([f.c2w for f in frames]), np.eye(4)
    if normalize:
        c2w, points, transform = normalize_world(c2w, points)
    recipes = {}
    train, test = split_every(_cameras_from_frames(frames, c2w, factor, recipes), test_every)
    return Scene(train, test, points.astype(np.float32), rgb, train_extent(train),
                 transform, data_dir, "ingp", scene_background([f.image_path for f in frames], background), recipes)
