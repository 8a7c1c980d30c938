"""gspruner: 3D Gaussian Splatting on gsplat, for small scenes that still look right."""

__version__ = "0.1.0"
