"""Scene exporters. Splats use gsplat's naming; see `gspruner.export.ply` for the dict convention."""

from gspruner.export.command import ExportConfig, run_export
from gspruner.export.compressed_ply import read_compressed_ply, write_compressed_ply
from gspruner.export.formats import FORMATS, detect_format, read_splats, write_splats
from gspruner.export.gltf import read_glb, write_glb
from gspruner.export.ply import read_ply, write_ply
from gspruner.export.sog import read_sog, write_sog
from gspruner.export.splat import read_splat, write_splat
from gspruner.export.spz import read_spz, write_spz

__all__ = [
    "write_ply",
    "read_ply",
    "write_compressed_ply",
    "read_compressed_ply",
    "write_spz",
    "read_spz",
    "write_sog",
    "read_sog",
    "write_glb",
    "read_glb",
    "write_splat",
    "read_splat",
    "FORMATS",
    "write_splats",
    "read_splats",
    "detect_format",
    "ExportConfig",
    "run_export",
]
