"""The dataset `train` reads: Mip-NeRF 360 / INRIA layout written from a reconstruction.

    OUT/images/        undistorted images (the photos' own names), PINHOLE / SIMPLE_PINHOLE
    OUT/images_2|4|8/  the same at 1/2, 1/4, 1/8 (JPEG), for the levels at least 256 px on the long side
    OUT/sparse/0/      cameras.bin, images.bin, points3D.bin (+ COLMAP 4's rigs.bin, frames.bin)
    OUT/process.json   what `process` found, registered and measured, and with which options

As INRIA's `convert.py`: COLMAP's image undistorter writes `images/` and `sparse/`, and the model moves to
`sparse/0`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

PYRAMID = (2, 4, 8)
PYRAMID_MIN_SIDE = 256


def undistort(reconstruction, image_dir: Path, out_dir: Path, work_dir: Path) -> None:
    """COLMAP's undistorter: `out_dir/images/` and `out_dir/sparse/0/` of the pinhole twin of `reconstruction`."""
    from .reconstruct import pycolmap_module, run_cancellable

    pycolmap = pycolmap_module()
    model_dir = work_dir / "model"
    model_dir.mkdir(parents=True, exist_ok=True)
    reconstruction.write(model_dir)
    staging = work_dir / "undistorted"
    run_cancellable(pycolmap.undistort_images, staging, model_dir, image_dir, output_type="COLMAP", jpeg_quality=95)
    (out_dir / "sparse" / "0").mkdir(parents=True, exist_ok=True)
    shutil.move(str(staging / "images"), str(out_dir / "images"))
    for model_file in (staging / "sparse").iterdir():
        if model_file.is_file():
            shutil.move(str(model_file), str(out_dir / "sparse" / "0" / model_file.name))


def write_pyramid(out_dir: Path, progress: bool = True) -> list[int]:
    """`images_N/` for N in 2, 4, 8 whose long side stays ≥ 256 px; sizes round(w/N) x round(h/N) as the loader's."""
    import cv2
    from tqdm import tqdm

    images = sorted(p for p in (out_dir / "images").iterdir() if p.is_file())
    longest = 0
    for path in images[:1]:
        first = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        longest = max(first.shape[:2])
    levels = [n for n in PYRAMID if longest / n >= PYRAMID_MIN_SIDE]
    for path in tqdm(images, desc=f"pyramid {'/'.join(map(str, levels)) or '-'}", unit="img",
                     disable=not progress or not levels):
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        h, w = image.shape[:2]
        for n in levels:
            level_dir = out_dir / f"images_{n}"
            level_dir.mkdir(exist_ok=True)
            small = cv2.resize(image, (max(1, round(w / n)), max(1, round(h / n))), interpolation=cv2.INTER_AREA)
            target = level_dir / (path.stem + ".jpg" if path.suffix.lower() not in (".jpg", ".jpeg") else path.name)
            cv2.imwrite(str(target), small, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return levels
