"""Image files -> a camera's pixels, by one rule for every loader (COLMAP, transforms.json, N3V frames).

- **Pixels as stored.** COLMAP reads images without applying their EXIF orientation tag (it did so briefly in
  3.7 and went back, colmap PR #1406: cameras of one device must share intrinsics whichever way the phone was
  held), and so do nerfstudio's and instant-ngp's loaders; the cameras therefore describe the stored pixel
  grid, and that is what is loaded. Only when the stored grid does not fit the camera and the file's EXIF
  orientation turns it a quarter (orientations 5-8) so that it does fit, was the camera made on the turned
  image: then the orientation is applied, to the image and its mask alike (`decide_orientation`).
- **The same shape or nothing.** A file whose aspect ratio differs from its camera's by more than
  ASPECT_TOLERANCE is refused with one line naming it and both sizes; one of the same shape at another
  resolution is resized (gsplat rescales the same way).
- **Premultiplied resampling.** Resizing and undistortion act on colour × alpha, so the hidden colour of
  transparent pixels never bleeds into the edges; the on-disk cache of downsampled images does the same.
- **The cache is keyed by its source** (`downsampled_images`): each cached PNG is named after the source's
  full name (`a.jpg` -> `a.jpg.png`, so `a.jpg` and `a.png` never share one), and `sources.json` beside it
  records the SHA-256 of each source's bytes and the sizes it was made for; an entry whose source changed
  (also one copied over with its old mtime: `cp -p`, `rsync -a`, `tar`, unzip) is rebuilt.
- **Masks** (`load_mask`): white = keep, black = ignore, any depth; resized and undistorted as their image.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import PIL.Image
from tqdm import tqdm

from gspruner.errors import InputError

ASPECT_TOLERANCE = 0.01  # relative difference of width / height between a file and its camera
EXIF_ORIENTATION_TAG = 0x0112
QUARTER_TURNS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
CACHE_MANIFEST = "sources.json"
CACHE_VERSION = 2  # 1: the cache before sources.json (named by stem, fresh by mtime)


@dataclass
class Undistortion:
    """cv2.remap maps at the loaded size, then a crop to the valid region."""

    mapx: np.ndarray  # [h,w] float32
    mapy: np.ndarray  # [h,w] float32
    roi: tuple[int, int, int, int]  # x, y, width, height


@dataclass
class ImageRecipe:
    """How a file's pixels become a camera's image: orient, resize to `size`, then undistort."""

    size: tuple[int, int]  # (width, height) before undistortion
    undistortion: Undistortion | None = None
    # The camera's full-resolution (width, height): the file must have its shape (see decide_orientation).
    # None for a file made to `size` by gspruner itself (the downsampling cache).
    camera_size: tuple[int, int] | None = None


# ------------------------------------------------------------------------------------------------ headers

@dataclass(frozen=True)
class ImageHeader:
    width: int  # as stored
    height: int
    alpha: bool  # an alpha channel (or a transparent palette entry / colour key)


def read_header(path: Path, verify: bool = False) -> ImageHeader:
    """Size and alpha from the file's header (Pillow; `verify`: also its checksums, a PNG's chunks); a format
    Pillow does not know is decoded by OpenCV. InputError for anything that is not a readable image."""
    try:
        with PIL.Image.open(path) as im:
            header = ImageHeader(im.width, im.height, im.mode in ALPHA_MODES or "transparency" in im.info)
            if verify:
                im.verify()
            return header
    except PIL.UnidentifiedImageError:
        if not cv2.haveImageReader(str(path)):
            raise InputError(f"{path}: unreadable image (not an image format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"{path}: unreadable image ({' '.join(str(exc).split())})") from None
    image = read_image(path)
    return ImageHeader(image.shape[1], image.shape[0], image.ndim == 3 and image.shape[2] in (2, 4))


def check_image_header(path: Path) -> None:
    """InputError unless `path` is an image whose header reads (Pillow's verify: format, size, PNG checksums)."""
    read_header(path, verify=True)


def has_alpha(paths) -> bool:
    """Whether any of the files has an alpha channel (header only). A file whose header does not read counts as
    opaque here: it is refused when it is checked or read."""
    for path in paths:
        try:
            if read_header(Path(path)).alpha:
                return True
        except InputError:
            continue
    return False


# ------------------------------------------------------------------------------------ orientation and size

def same_shape(size: tuple[int, int], other: tuple[int, int]) -> bool:
    """Aspect ratios (width / height) within ASPECT_TOLERANCE of each other."""
    return abs((size[0] / size[1]) / (other[0] / other[1]) - 1.0) <= ASPECT_TOLERANCE


def exif_orientation(path: Path) -> int:
    """The EXIF orientation tag (1..8; 1 when absent or unreadable)."""
    try:
        with PIL.Image.open(path) as im:
            value = int(im.getexif().get(EXIF_ORIENTATION_TAG, 1))
    except Exception:  # a file without (readable) EXIF: as stored
        return 1
    return value if 1 <= value <= 8 else 1


def decide_orientation(path: Path, stored: tuple[int, int], camera: tuple[int, int]) -> int:
    """The EXIF orientation to apply to a file of `stored` (width, height) for a camera of `camera`: 1 (as
    stored) when the shapes agree; the file's quarter-turn orientation when only the turned image fits; else
    InputError naming the file and both sizes."""
    if same_shape(stored, camera):
        return 1
    orientation = exif_orientation(path)
    if orientation in QUARTER_TURNS and same_shape((stored[1], stored[0]), camera):
        return orientation
    turned = f" (EXIF orientation {orientation}, which does not make it fit either)" if orientation != 1 else ""
    raise InputError(f"{path}: image is {stored[0]}x{stored[1]}{turned}, its camera is {camera[0]}x{camera[1]}: "
                     f"aspect ratios {stored[0] / stored[1]:.4f} and {camera[0] / camera[1]:.4f} differ by more "
                     f"than {ASPECT_TOLERANCE:.0%}")


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """[H,W,...] as displayed under EXIF `orientation` (Pillow's ImageOps.exif_transpose on an array)."""
    transpose = lambda a: np.swapaxes(a, 0, 1)  # noqa: E731
    ops = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],  # mirrored left-right
        3: lambda a: a[::-1, ::-1],  # 180°
        4: lambda a: a[::-1],  # mirrored top-bottom
        5: transpose,
        6: lambda a: np.rot90(a, -1),  # 90° clockwise
        7: lambda a: transpose(a[::-1, ::-1]),
        8: lambda a: np.rot90(a, 1),  # 90° counter-clockwise
    }
    return np.ascontiguousarray(ops[orientation](image))


def check_image(path: Path, recipe: ImageRecipe | None) -> None:
    """Before a run writes anything: the header reads and its shape fits the camera."""
    header = read_header(path, verify=True)
    if recipe is not None and recipe.camera_size is not None:
        decide_orientation(path, (header.width, header.height), recipe.camera_size)


# ------------------------------------------------------------------------------------------------ pixels

def read_image(path: Path) -> np.ndarray:  # [H,W,C] uint8/uint16 as stored (BGR / BGRA / gray), EXIF ignored
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


def _oriented(path: Path, raw: np.ndarray, recipe: ImageRecipe) -> np.ndarray:
    if recipe.camera_size is None:
        return raw
    return apply_orientation(raw, decide_orientation(path, (raw.shape[1], raw.shape[0]), recipe.camera_size))


def premultiplied(raw: np.ndarray) -> np.ndarray:
    """[H,W,C] as stored (BGR / BGRA / gray / gray+alpha, any depth) -> [H,W,4] float32 RGB × alpha, alpha."""
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(raw.dtype, 1.0)
    image = raw.astype(np.float32) / scale
    if image.ndim == 2:
        image = image[..., None]
    channels = image.shape[2]
    rgb = np.repeat(image[..., :1], 3, axis=2) if channels < 3 else image[..., 2::-1]  # BGR -> RGB
    alpha = image[..., 3:4] if channels == 4 else image[..., 1:2] if channels == 2 else np.ones_like(rgb[..., :1])
    return np.concatenate([rgb * alpha, alpha], axis=-1)


def _resample(image: np.ndarray, recipe: ImageRecipe, border: float = 0.0) -> np.ndarray:
    """Resize to recipe.size (area when shrinking, cubic when enlarging), then undistort and crop."""
    if (image.shape[1], image.shape[0]) != recipe.size:
        shrink = recipe.size[0] < image.shape[1]
        image = cv2.resize(image, recipe.size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
    if recipe.undistortion is not None:
        u = recipe.undistortion
        image = cv2.remap(image, u.mapx, u.mapy, cv2.INTER_LINEAR, borderValue=border)
        x, y, w, h = u.roi
        image = image[y:y + h, x:x + w]
    return image


def load_pixels(path: Path, recipe: ImageRecipe) -> np.ndarray:
    """[H,W,4] float32 in [0,1]: RGB premultiplied by alpha (alpha 1 for images without one), oriented,
    resized and undistorted (both linear filters, so on premultiplied colour they do not bleed the hidden
    colour of transparent pixels into the edges)."""
    rgba = _resample(premultiplied(_oriented(path, read_image(path), recipe)), recipe)
    rgba = np.clip(rgba, 0.0, 1.0)
    rgba[..., :3] = np.minimum(rgba[..., :3], rgba[..., 3:])  # premultiplied: colour ≤ alpha
    return np.ascontiguousarray(rgba, dtype=np.float32)


def load_mask(path: Path, recipe: ImageRecipe) -> np.ndarray:
    """[H,W,1] float32, 1 = keep, 0 = ignore: a mask image (white = keep; grey levels and colour channels
    averaged, thresholded at one half) oriented, resized and undistorted like its image (pixels outside the
    undistorted image's source are ignored)."""
    raw = read_image(path)
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(raw.dtype, 1.0)
    value = raw.astype(np.float32) / scale
    if value.ndim == 3:
        value = value[..., :3].mean(axis=2) if value.shape[2] >= 3 else value[..., 0]
    value = _resample(_oriented(path, value, recipe), recipe)
    return (value >= 0.5).astype(np.float32)[..., None]


# --------------------------------------------------------------------------- downsampled image cache

def writable(path: Path) -> bool:  # mode bits too: root may write anywhere, but should not here
    return os.access(path, os.W_OK) and bool(path.stat().st_mode & 0o222)


def is_fresh(target: Path, source: Path) -> bool:
    """By modification time (the N3V frame cache; images use `downsampled_images`' content hashes)."""
    return target.is_file() and target.stat().st_mtime >= source.stat().st_mtime


def downsample_cache_dir(data_dir: Path, factor: int, sources: dict[Path, Path], name: str | None = None,
                         complete=None) -> Path:
    """`data_dir/{name or images_{factor}_png}/` if complete or writable, else a per-data-dir user cache.
    `complete(folder) -> bool` says whether a folder holds every entry fresh (default: each target of `sources`
    {relative path: source} at least as new as its source)."""
    local = data_dir / (name or f"images_{factor}_png")
    if complete is None:
        complete = lambda folder: all(is_fresh(folder / rel, src) for rel, src in sources.items())  # noqa: E731
    if complete(local) or writable(data_dir):
        return local
    digest = hashlib.sha1(str(data_dir.resolve()).encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "gspruner" / digest / local.name


def write_png_atomic(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    if not cv2.imwrite(str(tmp), image):
        raise OSError(f"{tmp}: cv2.imwrite failed")
    os.replace(tmp, path)


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    return digest.hexdigest()


def _read_manifest(folder: Path) -> dict:
    try:
        manifest = json.loads((folder / CACHE_MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(manifest, dict) or manifest.get("version") != CACHE_VERSION:
        return {}
    return manifest.get("entries") if isinstance(manifest.get("entries"), dict) else {}


def cached_name(name: str) -> str:
    """The cache file of source `name`: its whole name plus .png (`a.jpg` -> `a.jpg.png`), one per source."""
    return name + ".png"


def _straight_alpha(rgba: np.ndarray, dtype) -> np.ndarray:
    """[H,W,4] premultiplied float RGBA -> BGR(A) of `dtype` with straight alpha (a PNG's), alpha dropped when
    the image is opaque."""
    maximum = 65535.0 if dtype == np.uint16 else 255.0
    alpha = rgba[..., 3:]
    rgb = np.where(alpha > 0, rgba[..., :3] / np.maximum(alpha, 1e-12), 0.0)
    out = np.concatenate([rgb[..., ::-1], alpha], axis=-1) if (alpha < 1).any() else rgb[..., ::-1]
    return (np.clip(out, 0.0, 1.0) * maximum + 0.5).astype(dtype)


def downsampled_images(data_dir: Path, factor: int, sources: dict[str, Path], recipes: dict[str, ImageRecipe]):
    """name -> PNG of `sources[name]` oriented, checked against and resized (premultiplied, cv2.INTER_AREA) to
    `recipes[name]` (its camera size and the loaded size), cached on disk under the source's whole name.
    An entry is rebuilt when its source's bytes (SHA-256) or its sizes differ from what sources.json records."""
    keys = {name: {"sha256": file_digest(src), "camera_size": list(recipes[name].camera_size),
                   "size": list(recipes[name].size)} for name, src in sources.items()}
    rel = {name: Path(cached_name(name)) for name in sources}

    def fresh(folder: Path, entries: dict, name: str) -> bool:
        return entries.get(name) == keys[name] and (folder / rel[name]).is_file()

    def complete(folder: Path) -> bool:
        entries = _read_manifest(folder)
        return all(fresh(folder, entries, name) for name in sources)

    out_dir = downsample_cache_dir(data_dir, factor, {}, complete=complete)
    entries = _read_manifest(out_dir)
    todo = [name for name in sources if not fresh(out_dir, entries, name)]
    for name in tqdm(todo, desc=f"downsampling x{factor} -> {out_dir}", unit="img", disable=True if not todo else None):  # None: shown on a terminal only
        recipe = recipes[name]
        raw = read_image(sources[name])
        rgba = _resample(premultiplied(_oriented(sources[name], raw, recipe)), ImageRecipe(recipe.size))
        write_png_atomic(out_dir / rel[name], _straight_alpha(rgba, np.uint16 if raw.dtype == np.uint16 else np.uint8))
        entries[name] = keys[name]
    if todo:
        _write_manifest(out_dir, entries)
    return {name: out_dir / rel[name] for name in sources}


def _write_manifest(folder: Path, entries: dict) -> None:
    tmp = folder / f".{CACHE_MANIFEST}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"version": CACHE_VERSION, "entries": entries}, indent=1))
    os.replace(tmp, folder / CACHE_MANIFEST)
