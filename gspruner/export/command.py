"""The export command: a checkpoint (or a scene file) -> ply / sog / spz / glb / compressed-ply / splat, with a size table.
Its options, `ExportConfig`, live in gspruner/config.py with the other commands' (the command line reads them without
loading torch)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Optional

from gspruner.config import ExportConfig
from gspruner.errors import InputError
from gspruner.export.formats import FORMATS, drop_sh_bands, read_splats, sh_degree_of, write_splats
from gspruner.export.formats import writer_options

__all__ = ["ExportConfig", "run_export", "output_paths", "inria_ply_bytes"]

_SPLAT_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")
# suffixes a file of each format may have (the first is the one we write)
_ACCEPTED_SUFFIXES = {
    "ply": (".ply",),
    "sog": (".sog",),
    "spz": (".spz",),
    "glb": (".glb",),
    "compressed-ply": (".compressed.ply", ".ply"),
    "splat": (".splat",),
}
# every scene-file suffix, longest first (.compressed.ply is stripped before .ply)
_SUFFIXES = tuple(sorted({x for xs in _ACCEPTED_SUFFIXES.values() for x in xs}, key=lambda x: (-len(x), x)))


def _strip_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in (*_SUFFIXES, ".pt", ".pth"):
        if lower.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def output_paths(out: Optional[Path], input_path: Path, formats: list[str]) -> dict[str, Path]:
    """Where each format goes: see ExportConfig.out. Raises InputError for a suffix that does not fit."""
    stem = _strip_suffix(input_path.name)
    if out is None:
        base = input_path.parent / stem
    elif out.is_dir():
        base = out / stem
    elif len(formats) == 1 and any(out.name.lower().endswith(s) for s in _SUFFIXES):
        fmt = formats[0]
        if not any(out.name.lower().endswith(s) for s in _ACCEPTED_SUFFIXES[fmt]):
            raise InputError(f"{out}: a {fmt} file should be named *{FORMATS[fmt]}")
        return {fmt: out}
    else:
        base = out.with_name(_strip_suffix(out.name))
    return {fmt: base.with_name(base.name + FORMATS[fmt]) for fmt in formats}


def _load_input(cfg: ExportConfig) -> tuple[Path, dict, dict]:
    """(input path, splats, the checkpoint's training config and scene: {"config", "scene"} or {})."""
    if (cfg.ckpt is None) == (cfg.ply is None):
        raise InputError("give exactly one of --ckpt (a checkpoint) or --ply (a scene file)")
    if cfg.ckpt is not None:
        from gspruner.checkpoint import load_checkpoint

        ckpt = load_checkpoint(cfg.ckpt)
        state = ckpt["splats"]
        missing = [k for k in _SPLAT_KEYS if k not in state]
        if missing:
            raise InputError(f"{cfg.ckpt}: checkpoint splats lack {', '.join(missing)}")
        origin = {k: ckpt[k] for k in ("config", "scene") if k in ckpt}
        if "times" in state:  # a 4D model: a snapshot at --time
            return Path(cfg.ckpt), _snapshot_4d(cfg, ckpt), origin
        if cfg.time is not None:
            raise InputError(f"{cfg.ckpt}: --time is for 4D checkpoints; this one is a static 3D model")
        return Path(cfg.ckpt), {k: state[k].detach().float().cpu() for k in _SPLAT_KEYS}, origin
    if cfg.time is not None:
        raise InputError("--time needs a 4D checkpoint (--ckpt); a scene file is already static")
    return Path(cfg.ply), read_splats(cfg.ply), {}


def _snapshot_4d(cfg: ExportConfig, ckpt: dict) -> dict:
    """The 3D splats of a 4D checkpoint at cfg.time (gspruner/model/gaussians4d.py `snapshot`)."""
    from gspruner.checkpoint import splats_from_state, temporal_filter_of
    from gspruner.model.gaussians4d import snapshot

    if cfg.time is None:
        raise InputError(f"{cfg.ckpt}: a 4D checkpoint (dynamic scene): give --time t to export the scene at time t")
    splats = splats_from_state(ckpt["splats"], "cpu")
    temporal_filter = temporal_filter_of(ckpt, "cpu")
    snap = snapshot(splats, cfg.time, None if temporal_filter is None else temporal_filter.active(cfg.time))
    if len(snap["ids"]) == 0:
        raise InputError(f"{cfg.ckpt}: no Gaussian is alive at --time {cfg.time}")
    return {k: snap[k].detach().float().cpu() for k in _SPLAT_KEYS}


def training_camera_centres(cfg: ExportConfig, origin: dict):
    """[C,3] centres of the scene's training cameras (the world the splats were trained in), or None with
    the reason printed when the scene is not at hand (then SH is rounded to the nearest level)."""
    from gspruner.data import load_scene

    data_dir = cfg.data_dir if cfg.data_dir is not None else origin.get("scene", {}).get("data_dir")
    if data_dir is None:
        print("note: no scene for --sh-rounding views (give --data-dir): compressed-ply SH rounded to nearest", file=sys.stderr)
        return None
    if cfg.data_dir is None and not Path(data_dir).exists():
        print(f"note: the checkpoint's scene {data_dir} is missing: compressed-ply SH rounded to nearest", file=sys.stderr)
        return None
    trained = origin.get("config", {})
    scene = load_scene(Path(data_dir), data_factor=trained.get("data_factor", 1), test_every=trained.get("test_every", 8))
    return training_centres(scene)


def training_centres(scene):
    """[C,3] float64 numpy array of the scene's training camera centres."""
    import numpy as np

    return np.stack([cam.c2w[:3, 3].double().numpy() for cam in scene.train]) if scene.train else None


def run_export(cfg: ExportConfig) -> dict:
    """Export as configured; prints a size table and returns it:
    {"input", "num_splats", "sh_degree", "rows": [{"format", "path", "num_splats", "bytes", "bytes_per_splat", "mb"}]}.
    """
    if cfg.sh_degree is not None and cfg.sh_degree < 0:
        raise InputError(f"--sh-degree must be ≥ 0 (got {cfg.sh_degree})")
    if cfg.sog_palette is not None and not 1 <= cfg.sog_palette <= 65536:
        raise InputError(f"--sog-palette must be in 1..65536 (got {cfg.sog_palette})")
    input_path, splats, origin = _load_input(cfg)
    if cfg.sh_degree is not None:
        splats = drop_sh_bands(splats, cfg.sh_degree)
    formats = list(FORMATS) if cfg.format == "all" else [cfg.format]
    paths = output_paths(cfg.out, input_path, formats)
    for fmt, path in paths.items():
        if path.exists() and path.resolve() == input_path.resolve():
            raise InputError(f"{path}: the {fmt} output would overwrite the input; pass --out")

    view_points = None
    if "compressed-ply" in paths and cfg.sh_rounding == "views" and sh_degree_of(splats) > 0:
        view_points = training_camera_centres(cfg, origin)
    rows = []
    for fmt, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            options = writer_options(
                fmt, spz_version=cfg.spz_version, spz_sh_bits=cfg.spz_sh_bits, spz_axes=cfg.spz_axes,
                sog_palette=cfg.sog_palette, view_points=view_points,
            )
            n = write_splats(path, splats, fmt, **options)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        size = path.stat().st_size
        rows.append({
            "format": fmt, "path": str(path), "num_splats": n, "bytes": size,
            "bytes_per_splat": size / n, "mb": size / 1e6,
        })  # fmt: skip

    num_splats, sh_degree = int(splats["means"].shape[0]), sh_degree_of(splats)
    inria_bytes = inria_ply_bytes(num_splats, sh_degree)
    for row in rows:
        row["ratio_to_inria_ply"] = inria_bytes / row["bytes"]
    result = {
        "input": str(input_path),
        "num_splats": num_splats,
        "sh_degree": sh_degree,
        "inria_ply_bytes": inria_bytes,
        "rows": rows,
    }
    print(format_size_table(result))
    return result


def inria_ply_bytes(num_splats: int, sh_degree: int) -> int:
    """Bytes of the INRIA PLY of these splats (62 float32 per splat at SH3, normals included): the size table's reference."""
    from gspruner.export.ply import ply_property_names

    return num_splats * 4 * len(ply_property_names((sh_degree + 1) ** 2 - 1))


def format_size_table(result: dict) -> str:
    lines = [
        f"{result['input']}: {result['num_splats']} splats, SH degree {result['sh_degree']}",
        f"{'format':<15} {'splats':>9} {'bytes':>12} {'B/splat':>8} {'MB':>9} {'×smaller':>9}  file",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['format']:<15} {r['num_splats']:>9} {r['bytes']:>12} {r['bytes_per_splat']:>8.2f} {r['mb']:>9.3f}"
            f" {r['ratio_to_inria_ply']:>9.1f}  {r['path']}"
        )
    lines.append(f"×smaller: the INRIA PLY of the same splats ({result['inria_ply_bytes']} bytes, 62 floats/splat at SH3) / the file")
    return "\n".join(lines)
