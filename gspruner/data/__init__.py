"""Data layer: COLMAP / NeRF-synthetic / D-NeRF / instant-ngp / N3V video scenes, and the procedural demo scenes."""

from gspruner.data.demo import ensure_demo_scene
from gspruner.data.dynamic_demo import ensure_dynamic_demo_scene
from gspruner.data.object_demo import ensure_object_demo_scene
from gspruner.data.load import load_scene
from gspruner.data.scene import Camera, Scene

__all__ = ["Camera", "Scene", "load_scene", "ensure_demo_scene", "ensure_dynamic_demo_scene",
           "ensure_object_demo_scene"]
