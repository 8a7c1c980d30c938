"""The pictures a capture starts from: a folder of photos or the sharpest frames of a video.

Both write upright 8-bit images into one folder (the SfM input), keeping the photos' file names so the
every-8th test split of `train` picks the same views; pixels COLMAP reads are then the pixels we train on.
- Photos: EXIF orientation applied (a portrait phone photo stays portrait) by rotating the pixels and
  resetting the tag; files that are not images are listed and skipped.
- Video: OpenCV decodes every frame once to score its sharpness (variance of the Laplacian on a small grey
  copy), the clip is split into N windows of equal length, and the sharpest frame of each window is kept
  (as nerfstudio's `ns-process-data video` spreads frames, with COLMAP's `--SiftExtraction` input in mind).
  The container's rotation is honoured (OpenCV's CAP_PROP_ORIENTATION_AUTO).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError

# what COLMAP reads as it is; anything else PIL opens is converted to PNG (the name's stem is kept)
COLMAP_SUFFIXES = {".jpg", ".jpeg", ".png"}
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".3gp"}
EXIF_ORIENTATION = 0x0112
MIN_IMAGES = 3


@dataclass
class Pictures:
    """What `collect_photos` / `extract_video_frames` wrote into the SfM input folder."""

    names: list[str]  # file names in the folder, sorted
    sizes: dict[str, tuple[int, int]]  # name -> (width, height), upright
    skipped: list[str] = field(default_factory=list)  # "name: why"
    rotated: list[str] = field(default_factory=list)  # names whose EXIF orientation was applied
    video: dict | None = None  # the video's frame count, fps, chosen frame indices, sharpness


def is_video(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES


def collect_photos(src: Path, dst: Path, progress: bool = True) -> Pictures:
    """Every image directly in `src` (sorted by name), upright, into `dst`; other files listed as skipped."""
    from PIL import Image, ImageOps  # PIL before pycolmap: the pycolmap wheel's zlib clashes with Pillow's otherwise
    from tqdm import tqdm

    files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
    pictures = Pictures(names=[], sizes={})
    stems: dict[str, str] = {}
    for path in tqdm(files, desc="reading photos", unit="img", disable=not progress):
        try:
            with Image.open(path) as image:
                image.load()  # a truncated or corrupt file fails here, not in COLMAP
                orientation = image.getexif().get(EXIF_ORIENTATION, 1)
                upright = ImageOps.exif_transpose(image) if orientation not in (0, 1) else image
                suffix = path.suffix.lower() if path.suffix.lower() in COLMAP_SUFFIXES else ".png"
                name = path.stem + suffix if suffix != path.suffix.lower() else path.name
                if name.lower() in stems:  # a.jpg and a.JPG, or a.webp next to a.png
                    pictures.skipped.append(f"{path.name}: same name as {stems[name.lower()]} once converted")
                    continue
                if upright is image and suffix == path.suffix.lower() and image.mode in ("RGB", "L"):
                    shutil.copyfile(path, dst / name)  # byte for byte: COLMAP reads the EXIF focal length too
                else:
                    _save_upright(upright, dst / name)
                    if upright is not image:
                        pictures.rotated.append(name)
                stems[name.lower()] = path.name
                pictures.names.append(name)
                pictures.sizes[name] = upright.size
        except (OSError, ValueError, SyntaxError) as exc:  # PIL: UnidentifiedImageError is an OSError
            pictures.skipped.append(f"{path.name}: {_reason(exc)}")
    pictures.names.sort()
    return pictures


def _save_upright(image, path: Path) -> None:
    """`image` (already rotated upright) as 8-bit RGB; JPEG keeps the EXIF block with orientation 1."""
    exif = image.getexif()
    exif[EXIF_ORIENTATION] = 1
    if image.mode not in ("RGB", "L"):
        if "A" in image.getbands() or image.mode in ("P", "PA", "LA"):  # transparent: flatten on white
            from PIL import Image

            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        elif image.mode in ("I;16", "I;16B", "I", "F"):  # 16-bit or float grey: scale to 8 bits
            from PIL import Image

            values = np.asarray(image, dtype=np.float64)
            top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
            image = Image.fromarray(np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8))
        else:
            image = image.convert("RGB")
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, quality=95, exif=exif.tobytes())
    else:
        image.save(path)


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return "not an image" if "cannot identify image file" in text else text


def extract_video_frames(video: Path, dst: Path, num_frames: int, progress: bool = True) -> Pictures:
    """The sharpest frame of each of `num_frames` equal windows of `video`, as frame_00001.jpg ... in `dst`."""
    import cv2
    from tqdm import tqdm

    if num_frames < MIN_IMAGES:
        raise InputError(f"--num-frames must be ≥ {MIN_IMAGES} (got {num_frames})")
    capture = _open(video)
    declared = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    sharpness: list[float] = []
    with tqdm(total=declared or None, desc="scoring video frames", unit="frame", disable=not progress) as bar:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            sharpness.append(laplacian_variance(frame))
            bar.update()
    capture.release()
    if not sharpness:
        raise InputError(f"{video}: no decodable video frames")
    chosen = sharpest_per_window(np.asarray(sharpness), num_frames)
    if len(chosen) < MIN_IMAGES:
        raise InputError(f"{video}: only {len(chosen)} decodable frame(s); structure from motion needs ≥ {MIN_IMAGES}")

    pictures = Pictures(names=[], sizes={})
    wanted = {int(i): k for k, i in enumerate(chosen)}
    capture = _open(video)
    index = 0
    with tqdm(total=len(chosen), desc="writing video frames", unit="frame", disable=not progress) as bar:
        while len(pictures.names) < len(chosen):
            ok, frame = capture.read()
            if not ok:
                break
            if index in wanted:
                name = f"frame_{wanted[index] + 1:05d}.jpg"
                if not cv2.imwrite(str(dst / name), frame, [cv2.IMWRITE_JPEG_QUALITY, 95]):
                    raise OSError(f"{dst / name}: could not be written")
                pictures.names.append(name)
                pictures.sizes[name] = (frame.shape[1], frame.shape[0])
                bar.update()
            index += 1
    capture.release()
    pictures.video = {"frames_decoded": len(sharpness), "fps": fps, "chosen_frames": [int(i) for i in chosen],
                      "sharpness_chosen_median": float(np.median(np.asarray(sharpness)[chosen])),
                      "sharpness_all_median": float(np.median(sharpness))}
    return pictures


def _open(video: Path):
    import cv2

    capture = cv2.VideoCapture(str(video))
    if not capture.isOpened():
        raise InputError(f"{video}: not a video OpenCV can open")
    capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # the container's rotation (a phone held upright) applied
    return capture


def laplacian_variance(frame: np.ndarray) -> float:
    """Sharpness: variance of the Laplacian of a grey copy about 480 px wide (Pech-Pacheco et al. 2000)."""
    import cv2

    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    scale = 480.0 / max(grey.shape[1], 1)
    if scale < 1.0:
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def sharpest_per_window(sharpness: np.ndarray, num_frames: int) -> np.ndarray:
    """Indices of the sharpest frame in each of `num_frames` equal windows over the clip (all frames if fewer)."""
    n = len(sharpness)
    if n <= num_frames:
        return np.arange(n)
    edges = np.linspace(0, n, num_frames + 1).round().astype(int)
    return np.array([lo + int(np.argmax(sharpness[lo:hi])) for lo, hi in zip(edges[:-1], edges[1:])])
