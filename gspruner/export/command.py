"""The export command: a checkpoint (or a scene file) -> ply / compressed-ply / spz / splat, with a size table."""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from gspruner.errors import InputError
from gspruner.export.formats import FORMATS, drop_sh_bands, read_splats, sh_degree_of, write_splats

__all__ = ["ExportConfig", "run_export", "output_paths"]

_SPLAT_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")
# suffixes a file of each format may have (the first is the one we write)
_ACCEPTED_SUFFIXES = {
    "ply": (".ply",),
    "compressed-ply": (".compressed.ply", ".ply"),
    "spz": (".spz",),
    "splat": (".splat",),
}


@dataclass
class ExportConfig:
    """Export a checkpoint (or convert a scene file) to PLY, compressed PLY (SuperSplat), SPZ or .splat, and print a size table."""

    ckpt: Optional[Path] = None
    """A gspruner checkpoint (RESULT_DIR/ckpt/last.pt) to export. Give this or --ply."""
    ply: Optional[Path] = None
    """Or a scene file to convert: .ply, .compressed.ply, .spz or .splat (format detected from the name and content)."""
    format: Literal["ply", "compressed-ply", "spz", "splat", "all"] = "all"
    """ply: INRIA PLY, lossless (~248 B/splat at SH degree 3). compressed-ply: PlayCanvas/SuperSplat chunked PLY (~16 B/splat + 45 B for SH3). spz: Niantic SPZ, gzip, RUB axes (~20 B/splat + SH before gzip). splat: antimatter15, 32 B/splat, drops SH. all: the four."""
    out: Optional[Path] = None
    """Output file; for --format all an existing folder or a stem (exports/scene -> exports/scene.ply, scene.compressed.ply, scene.spz, scene.splat). Default: beside the input, named after it."""
    sh_degree: Optional[int] = None
    """Keep SH bands up to this degree only (0: view-independent colour, the smallest files). Default: all the input has."""
    spz_version: Literal[2, 3] = 3
    """SPZ version: 3 stores rotations as smallest-three in 4 bytes; 2 as xyz in 3 bytes (coarser, for old readers)."""


def _strip_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in (".compressed.ply", ".ply", ".spz", ".splat", ".pt", ".pth"):
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
    elif len(formats) == 1 and any(out.name.lower().endswith(s) for s in (".ply", ".spz", ".splat")):
        fmt = formats[0]
        if not any(out.name.lower().endswith(s) for s in _ACCEPTED_SUFFIXES[fmt]):
            raise InputError(f"{out}: a {fmt} file should be named *{FORMATS[fmt]}")
        return {fmt: out}
    else:
        base = out.with_name(_strip_suffix(out.name))
    return {fmt: base.with_name(base.name + FORMATS[fmt]) for fmt in formats}


def _load_input(cfg: ExportConfig) -> tuple[Path, dict]:
    if (cfg.ckpt is None) == (cfg.ply is None):
        raise InputError("give exactly one of --ckpt (a checkpoint) or --ply (a scene file)")
    if cfg.ckpt is not None:
        from gspruner.checkpoint import load_checkpoint

        state = load_checkpoint(cfg.ckpt)["splats"]
        missing = [k for k in _SPLAT_KEYS if k not in state]
        if missing:
            raise InputError(f"{cfg.ckpt}: checkpoint splats lack {', '.join(missing)}")
        return Path(cfg.ckpt), {k: state[k].detach().float().cpu() for k in _SPLAT_KEYS}
    return Path(cfg.ply), read_splats(cfg.ply)


def run_export(cfg: ExportConfig) -> dict:
    """Export as configured; prints a size table and returns it:
    {"input", "num_splats", "sh_degree", "rows": [{"format", "path", "num_splats", "bytes", "bytes_per_splat", "mb"}]}.
    """
    if cfg.sh_degree is not None and cfg.sh_degree < 0:
        raise InputError(f"--sh-degree must be ≥ 0 (got {cfg.sh_degree})")
    input_path, splats = _load_input(cfg)
    if cfg.sh_degree is not None:
        splats = drop_sh_bands(splats, cfg.sh_degree)
    formats = list(FORMATS) if cfg.format == "all" else [cfg.format]
    paths = output_paths(cfg.out, input_path, formats)
    for fmt, path in paths.items():
        if path.exists() and path.resolve() == input_path.resolve():
            raise InputError(f"{path}: the {fmt} output would overwrite the input; pass --out")

    rows = []
    for fmt, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            kwargs = {"version": cfg.spz_version} if fmt == "spz" else {}
            n = write_splats(path, splats, fmt, **kwargs)
        for w in caught:
            print(f"warning: {w.message}", file=sys.stderr)
        size = path.stat().st_size
        rows.append({
            "format": fmt, "path": str(path), "num_splats": n, "bytes": size,
            "bytes_per_splat": size / n, "mb": size / 1e6,
        })  # fmt: skip

    result = {
        "input": str(input_path),
        "num_splats": int(splats["means"].shape[0]),
        "sh_degree": sh_degree_of(splats),
        "rows": rows,
    }
    print(format_size_table(result))
    return result


def format_size_table(result: dict) -> str:
    lines = [
        f"{result['input']}: {result['num_splats']} splats, SH degree {result['sh_degree']}",
        f"{'format':<15} {'splats':>9} {'bytes':>12} {'B/splat':>8} {'MB':>9}  file",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['format']:<15} {r['num_splats']:>9} {r['bytes']:>12} {r['bytes_per_splat']:>8.2f} {r['mb']:>9.3f}  {r['path']}"
        )
    return "\n".join(lines)
