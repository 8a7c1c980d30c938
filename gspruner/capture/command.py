"""`gspruner process INPUT --out DIR`: photos or a video -> a COLMAP-layout scene that `train` reads.

The work happens in a hidden staging folder beside DIR (`.DIR.process-PID`); DIR appears only when every
phase has succeeded (one rename), so bad input, a failure or Ctrl-C leave no DIR, or an existing DIR byte for
byte as it was.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from ..errors import InputError

__all__ = ["ProcessConfig", "run_process"]


@dataclass
class ProcessConfig:
    """Turn your own photos or a video into a scene `train` reads (COLMAP / Mip-NeRF 360 layout): frames, SIFT features, matching and mapping with pycolmap on the CPU, undistortion, images_2/4/8, process.json."""

    input: Annotated[Path, tyro.conf.Positional]
    """A folder of photos (JPEG, PNG, WebP, TIFF, ...; EXIF orientation applied; other files listed and skipped) or a video file (.mp4, .mov, ...)."""
    out: Path
    """The scene folder to write (images/, images_2|4|8/, sparse/0/, process.json). Must not exist, be empty, or hold an earlier `process` output with --overwrite."""
    num_frames: int = 150
    """Video: how many frames to keep, the sharpest of each of N equal windows of the clip (all frames if it has fewer)."""
    camera_model: Literal["OPENCV", "SIMPLE_RADIAL", "RADIAL", "PINHOLE", "SIMPLE_PINHOLE", "OPENCV_FISHEYE"] = "OPENCV"
    """COLMAP camera model estimated by SfM (as ns-process-data's default: OPENCV, k1 k2 p1 p2). The images are undistorted to PINHOLE afterwards either way. Use PINHOLE for already-undistorted images, OPENCV_FISHEYE for fisheye lenses."""
    camera_mode: Literal["shared", "per-image", "single"] = "shared"
    """shared: one camera (intrinsics) per image size, right for one phone or camera without zoom; per-image: intrinsics per photo (zoom, mixed cameras of the same size); single: one for all (all images one size)."""
    matcher: Literal["auto", "exhaustive", "sequential", "retrieval"] = "auto"
    """Which image pairs to match. auto: exhaustive up to 80 images (photos or video frames), retrieval above (its sequential pairs follow the capture order of video frames and named photos; the retrieved ones close loops). exhaustive: every pair (n²: ~76 s for 50 phone photos, ~10 min for 150 on 2 cores). sequential: each image with its --overlap successors and those 2^k ahead (capture order = name order). retrieval: sequential plus each image's --retrieval-neighbors most similar images (VLAD of its SIFT descriptors), for large or unordered photo sets."""
    mapper: Literal["incremental", "global"] = "incremental"
    """incremental: COLMAP's incremental mapper (robust, the default of COLMAP and nerfstudio). global: COLMAP's global mapper (GLOMAP; faster on large sets)."""
    check_mapping: bool = True
    """Ask second opinions from the same matches (the other mapper, then the incremental mapper from stricter starts, the global mapper with another seed) until two mappings place the cameras alike, and keep that model. The incremental mapper can join part of a capture wrongly from a bad start while every image registers; this catches it (about 20–40 % more time; up to 4 more mappings when they disagree)."""
    refine_principal_point: bool = False
    """A last bundle adjustment that also refines each shared camera's principal point, as instant-ngp's colmap2nerf does (COLMAP's mapper keeps it at the image centre, and COLMAP advises so: few captures pin it down). Off by default: on the fox it moves 16 px to instant-ngp's value and trains no better; on a short generated video it drifts 2.6 px from the truth. Never with --camera-mode per-image."""
    max_image_size: int = 1600
    """SIFT runs on images downscaled to at most this many pixels on the long side (the dataset keeps full resolution)."""
    max_features: int = 8192
    """SIFT features per image, at most."""
    overlap: int = 10
    """sequential / retrieval: successors each image is matched with."""
    retrieval_neighbors: int = 12
    """retrieval: most similar images each image is matched with."""
    pyramid: bool = True
    """Write images_2/, images_4/, images_8/ (JPEG) for the levels at least 256 px on the long side, as Mip-NeRF 360 scenes have them."""
    overwrite: bool = False
    """Replace an earlier `process` output in --out."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        for name in ("num_frames", "max_image_size", "max_features", "overlap", "retrieval_neighbors"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be ≥ 1 (got {getattr(self, name)})")


def run_process(cfg: ProcessConfig) -> dict:
    from .frames import MIN_IMAGES, collect_photos, extract_video_frames, is_video

    source, out = Path(cfg.input), Path(cfg.out)
    if not source.exists():
        raise InputError(f"{source}: no such folder or video file")
    video = is_video(source)
    if not video and not source.is_dir():
        raise InputError(f"{source}: neither a folder of photos nor a video file ({', '.join(sorted(_video_suffixes()))})")
    _check_out(source, out, cfg.overwrite)

    created = _missing_parents(out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.process-{os.getpid()}"
    try:
        shutil.rmtree(staging, ignore_errors=True)
        input_dir, dataset, work = staging / "input", staging / "dataset", staging / "work"
        for folder in (input_dir, dataset, work):
            folder.mkdir(parents=True)
        seconds: dict[str, float] = {}
        tic = time.perf_counter()
        if video:
            pictures = extract_video_frames(source, input_dir, cfg.num_frames, cfg.progress)
        else:
            pictures = collect_photos(source, input_dir, cfg.progress)
        seconds["frames"] = time.perf_counter() - tic
        if len(pictures.names) < MIN_IMAGES:
            skipped = f" (skipped: {'; '.join(pictures.skipped[:3])}{' ...' if len(pictures.skipped) > 3 else ''})" if pictures.skipped else ""
            raise InputError(f"{source}: {len(pictures.names)} usable image(s); structure from motion needs ≥ {MIN_IMAGES}{skipped}")
        summary = _reconstruct(cfg, pictures, input_dir, dataset, work, seconds, video)
        summary["input"] = str(source.resolve())
        (dataset / "process.json").write_text(json.dumps(summary, indent=2) + "\n")
        _publish(dataset, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for folder in created:  # parents this run made, deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    shutil.rmtree(staging, ignore_errors=True)
    print(_summary_text(summary, out))
    return summary


def _video_suffixes():
    from .frames import VIDEO_SUFFIXES

    return VIDEO_SUFFIXES


def _check_out(source: Path, out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    resolved_out, resolved_in = out.resolve(), source.resolve()
    if resolved_out == resolved_in or resolved_in in resolved_out.parents or (source.is_dir() and resolved_out in resolved_in.parents):
        raise InputError(f"{out}: --out must not contain or be inside the input {source}")
    if out.is_dir() and any(out.iterdir()):
        if not (out / "process.json").is_file():
            raise InputError(f"{out}: holds something else (not an earlier `gspruner process` output); choose an empty or new folder")
        if not overwrite:
            raise InputError(f"{out}: holds an earlier `gspruner process` output; --overwrite replaces it")


def _missing_parents(folder: Path) -> list[Path]:
    missing = []
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    return missing  # deepest first


def _publish(dataset: Path, out: Path) -> None:
    """Move the finished dataset to `out` in one rename (an earlier output is replaced only after that)."""
    if out.exists():
        old = out.parent / f".{out.name}.replaced-{os.getpid()}"
        out.rename(old)
        try:
            dataset.rename(out)
        except BaseException:
            old.rename(out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        dataset.rename(out)


def _reconstruct(cfg: ProcessConfig, pictures, input_dir: Path, dataset: Path, work: Path,
                 seconds: dict, video: bool) -> dict:
    from . import layout, reconstruct
    from .frames import MIN_IMAGES

    pycolmap = reconstruct.pycolmap_module()
    matcher = cfg.matcher
    if matcher == "auto":
        # COLMAP's automatic reconstructor: exhaustive for small sets; above, sequential pairs (name order is capture
        # order, for video frames too) with loop closure by retrieval, as COLMAP's sequential matcher's loop detection
        matcher = "exhaustive" if len(pictures.names) <= reconstruct.EXHAUSTIVE_MAX_IMAGES else "retrieval"
    options = reconstruct.SfmOptions(camera_model=cfg.camera_model, camera_mode=cfg.camera_mode, matcher=matcher,
                                     mapper=cfg.mapper, max_image_size=cfg.max_image_size, max_features=cfg.max_features,
                                     overlap=cfg.overlap, retrieval_neighbors=cfg.retrieval_neighbors)
    database = work / "database.db"

    tic = time.perf_counter()
    reconstruct.extract(database, input_dir, pictures.names, pictures.sizes, options, cfg.progress)
    seconds["features"] = time.perf_counter() - tic

    tic = time.perf_counter()
    pairs = reconstruct.image_pairs(database, pictures.names, matcher, options)
    reconstruct.match(database, pairs, work, cfg.progress)
    seconds["matching"] = time.perf_counter() - tic

    tic = time.perf_counter()
    model, mapping_check = reconstruct.map_checked(database, input_dir, work, pictures.names, cfg.mapper, cfg.progress,
                                                   check=cfg.check_mapping)
    if model is None or model.num_reg_images() < MIN_IMAGES:
        count = 0 if model is None else model.num_reg_images()
        raise InputError(f"{cfg.input}: structure from motion registered {count} of {len(pictures.names)} images; "
                         "too few views overlap (see docs/capture.md: when images do not register)")
    principal_point = cfg.refine_principal_point and cfg.camera_mode != "per-image"
    if principal_point:
        reconstruct.refine_intrinsics(model, refine_principal_point=True)
    seconds["mapping"] = time.perf_counter() - tic

    registered = sorted(image.name for image in model.images.values() if image.has_pose)
    tic = time.perf_counter()
    layout.undistort(model, input_dir, dataset, work)
    levels = layout.write_pyramid(dataset, cfg.progress) if cfg.pyramid else []
    seconds["undistort"] = time.perf_counter() - tic

    cameras = [{"camera_id": int(cid), "model": cam.model.name, "width": int(cam.width), "height": int(cam.height),
                "params": [float(p) for p in cam.params]} for cid, cam in model.cameras.items()]
    return {
        "kind": "video" if video else "photos",
        "images_found": len(pictures.names) + len(pictures.skipped),
        "images_usable": len(pictures.names),
        "images_registered": len(registered),
        "unregistered": sorted(set(pictures.names) - set(registered)),
        "skipped": pictures.skipped,
        "exif_rotated": pictures.rotated,
        "video": pictures.video,
        "points3D": int(model.num_points3D()),
        "observations": int(model.compute_num_observations()),
        "mean_reprojection_error_px": float(model.compute_mean_reprojection_error()),
        "cameras_estimated": cameras,
        "matcher": matcher,
        "image_pairs": len(pairs),
        "mapping_check": mapping_check,
        "principal_point_refined": principal_point,
        "pyramid": levels,
        "seconds": {k: round(v, 2) for k, v in seconds.items()} | {"total": round(sum(seconds.values()), 2)},
        "pycolmap": pycolmap.__version__,
        "colmap": getattr(pycolmap, "COLMAP_version", ""),
        "options": asdict(options) | {"num_frames": cfg.num_frames, "pyramid": cfg.pyramid, "check_mapping": cfg.check_mapping,
                                      "refine_principal_point": cfg.refine_principal_point},
    }


def _summary_text(summary: dict, out: Path) -> str:
    from ..data.colmap import read_model

    model = read_model(out / "sparse" / "0")
    width, height = next(iter(model.cameras.values())).width, next(iter(model.cameras.values())).height
    factor = next((f for f in (1, 2, 4, 8) if max(width, height) / f <= 1000), 8)
    s = summary["seconds"]
    lines = [
        f"processed {summary['kind']}: {summary['images_registered']} of {summary['images_usable']} images registered",
        f"  {summary['points3D']:,} 3D points, mean reprojection error {summary['mean_reprojection_error_px']:.2f} px, "
        f"{summary['matcher']} matching of {summary['image_pairs']:,} pairs",
        f"  time: frames {s['frames']:.0f} s, features {s['features']:.0f} s, matching {s['matching']:.0f} s, "
        f"mapping {s['mapping']:.0f} s, undistort {s['undistort']:.0f} s, total {s['total']:.0f} s",
        f"  dataset: {out} ({width}x{height} PINHOLE; images/, sparse/0/, process.json)",
    ]
    check = summary.get("mapping_check", {})
    if check.get("checked"):
        lines.append(f"  mapping check: kept the {check['kept']} mapper's model" + (f" (warning: {check['warning']})" if "warning" in check else
                     f" ({len(check['comparisons'])} comparison{'s' if len(check['comparisons']) > 1 else ''})"))
    if summary["skipped"]:
        shown = "; ".join(summary["skipped"][:8]) + (" ..." if len(summary["skipped"]) > 8 else "")
        lines.append(f"  skipped ({len(summary['skipped'])}): {shown}")
    if summary["unregistered"]:
        shown = ", ".join(summary["unregistered"][:8]) + (" ..." if len(summary["unregistered"]) > 8 else "")
        lines.append(f"  not registered ({len(summary['unregistered'])}): {shown}")
    lines.append(f"next: gspruner train --data-dir {out} --data-factor {factor} --result-dir results/{out.name}")
    return "\n".join(lines)
