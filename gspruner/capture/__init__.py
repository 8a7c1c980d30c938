"""From your own photos or a video to a scene: `gspruner process` (a layer before `data/`).

frames.py (photos, EXIF, video -> sharp frames) -> reconstruct.py (pycolmap: features, pairs, matching,
mapping) -> layout.py (undistort, images/ + sparse/0 + images_N) ; command.py runs them; align.py measures
recovered poses against known ones. `data/` then reads the result like any other COLMAP scene.
"""
