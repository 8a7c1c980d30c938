"""Loading what the viewer shows: a checkpoint (3D or 4D, with its temporal filter) or a scene file. `gspruner view`'s
options, `ViewConfig`, live in gspruner/config.py with the other commands' (the command line reads them without
loading torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config import ViewConfig
from ..errors import InputError


OBJECT_KINDS = ("blender", "dnerf")  # checkpoints without a recorded background: these kinds were rendered over it
SPLAT_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")
SPLAT_KEYS_4D = ("times", "scales_t", "quats_r")  # a 4D model (dynamic scene) has these as well


# -- loading ---------------------------------------------------------------------------------------------


def read_splat_file(path: Path) -> dict:
    """Splat dict (gsplat naming, CPU tensors) from a splat file; the one place that picks the reader."""
    path = Path(path)
    try:  # another module adds .compressed.ply / .spz / .splat; use it when it is there
        from ..export.formats import read_splats  # type: ignore[import-not-found]
    except ImportError:
        read_splats = None
    if read_splats is not None:
        return read_splats(path)
    from ..export.ply import read_ply

    return read_ply(path)


def sh_degree_of(splats: dict) -> int:
    """SH degree implied by the shape of shN [N, (d+1)^2 - 1, 3]."""
    k = int(splats["shN"].shape[1]) + 1 if splats["shN"].dim() == 3 else 1
    return max(int(round(math.sqrt(k))) - 1, 0)


def check_splats(splats: dict, source: Path) -> dict:
    keys = SPLAT_KEYS + (SPLAT_KEYS_4D if "times" in splats else ())
    missing = [k for k in keys if k not in splats]
    if missing:
        raise InputError(f"{source}: splats lack {', '.join(missing)}")
    counts = {k: int(splats[k].shape[0]) for k in keys}
    if len(set(counts.values())) != 1:
        raise InputError(f"{source}: inconsistent Gaussian counts across parameters {counts}")
    if counts["means"] == 0:
        raise InputError(f"{source}: holds no Gaussians")
    return {k: splats[k].detach().float().contiguous() for k in keys}


@dataclass
class LoadedScene:
    splats: dict  # CPU float32 tensors
    sh_degree: int
    background: tuple[float, float, float]
    scene_scale: Optional[float]  # max camera distance from the camera centroid, when the checkpoint says
    source: Path
    time_range: Optional[tuple[float, float]] = None  # a 4D model: the frame times it was trained on
    temporal_filter: Optional[object] = None  # a 4D model pruned with prune:spatiotemporal: its key-frame filter


def load_view_input(cfg: ViewConfig) -> LoadedScene:
    """Read --ckpt or --ply (exactly one); every bad input is an InputError."""
    if (cfg.ckpt is None) == (cfg.ply is None):
        raise InputError("give exactly one of --ckpt and --ply")
    background = (0.0, 0.0, 0.0)
    scene_scale = None
    if cfg.ckpt is not None:
        from ..checkpoint import load_checkpoint

        ckpt = load_checkpoint(cfg.ckpt)
        if not isinstance(ckpt["splats"], dict):
            raise InputError(f"{cfg.ckpt}: 'splats' is not a dict of tensors")
        splats = check_splats(ckpt["splats"], cfg.ckpt)
        scene = ckpt.get("scene") or {}
        trained = ckpt.get("config") or {}
        if "background" in scene:  # the scene's evaluation background (None: opaque images)
            background = tuple(float(c) for c in scene["background"]) if scene["background"] is not None else background
        elif scene.get("kind") in OBJECT_KINDS and trained.get("background") is not None:  # older checkpoints
            background = tuple(float(c) for c in trained["background"])
        scene_scale = scene.get("scene_scale")
        source = Path(cfg.ckpt)
        if "times" in splats:  # 4D: the training frames' time span (checkpoints before it was stored: [0, 1])
            from ..checkpoint import temporal_filter_of

            time_range = tuple(float(t) for t in scene.get("time_range") or (0.0, 1.0))
            return LoadedScene(splats, sh_degree_of(splats), background, scene_scale, source, time_range,
                               temporal_filter_of(ckpt, "cpu"))
    else:
        splats = check_splats(read_splat_file(cfg.ply), cfg.ply)
        source = Path(cfg.ply)
    return LoadedScene(splats, sh_degree_of(splats), background, scene_scale, source)
