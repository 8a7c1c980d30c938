"""Scene exporters. Splats use gsplat's naming; see `gspruner.export.ply` for the dict convention."""

from gspruner.export.ply import read_ply, write_ply

__all__ = ["write_ply", "read_ply"]
