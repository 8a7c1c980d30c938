"""How well `gspruner process` recovered a capture's cameras, against reference poses of the same images.

    python scripts/check_process.py OUT_DIR REFERENCE [--json FILE]

OUT_DIR is a `gspruner process` output (sparse/0 + process.json). REFERENCE is an instant-ngp / nerfstudio
`transforms.json` (OpenGL camera-to-world) or a COLMAP model folder. Images are paired by file stem (video
frames by their order when the reference has as many frames). Prints registered / found, the median and max
rotation error (degrees) and camera-centre error (fraction of the reference cameras' spread) after a Sim(3)
fit of the centres, and the wall time process.json recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from gspruner.capture.align import error_summary, model_cameras, pose_errors
from gspruner.data.colmap import find_model_dir


def colmap_c2w(model_dir: Path) -> dict[str, np.ndarray]:
    return {Path(name).stem: c2w for name, c2w in model_cameras(model_dir).items()}


def reference_c2w(reference: Path) -> dict[str, np.ndarray]:
    if reference.is_dir():
        return colmap_c2w(find_model_dir(reference) or reference)
    frames = json.loads(reference.read_text())["frames"]
    poses = {}
    for frame in frames:
        c2w = np.asarray(frame["transform_matrix"], dtype=np.float64)
        c2w[:3, 1:3] *= -1.0  # OpenGL (x right, y up, -z forward) -> OpenCV (y down, z forward)
        poses[Path(frame["file_path"]).stem] = c2w
    return poses


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("reference", type=Path)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    recovered = colmap_c2w(args.out_dir / "sparse" / "0")
    reference = reference_c2w(args.reference)
    summary = json.loads((args.out_dir / "process.json").read_text())
    common = sorted(set(recovered) & set(reference))
    if not common and summary.get("kind") == "video":  # frame_00001 ... follow the reference's sorted order
        order = sorted(reference)
        if summary["video"]["frames_decoded"] == len(order):
            by_index = {f"frame_{k + 1:05d}": order[i] for k, i in enumerate(summary["video"]["chosen_frames"])}
            recovered = {by_index[name]: c2w for name, c2w in recovered.items() if name in by_index}
            common = sorted(set(recovered) & set(reference))
    if len(common) < 3:
        sys.exit(f"error: only {len(common)} images in common between {args.out_dir} and {args.reference}")
    errors = pose_errors(np.stack([recovered[n] for n in common]), np.stack([reference[n] for n in common]))
    result = {
        "registered": summary["images_registered"], "usable": summary["images_usable"],
        "compared": len(common), **error_summary(errors),
        "process_seconds": summary["seconds"]["total"], "matcher": summary["matcher"], "image_pairs": summary["image_pairs"],
        "points3D": summary["points3D"], "mean_reprojection_error_px": summary["mean_reprojection_error_px"],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
