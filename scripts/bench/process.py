"""`gspruner process` on a generated capture with known cameras: registered fraction, pose errors, wall time.

    python scripts/benchmark.py process OUT_DIR [--views 150] [--width 800] [--height 600] [--matcher auto]
                                                [--shuffle] [--render-only]

Renders the textured test capture (gspruner/capture/synthetic.py) once into OUT_DIR/photos_<n>_<w>x<h>
(reused on a second run), runs `gspruner process` on it into OUT_DIR/scene, and writes OUT_DIR/result.json:
registered / views, median and max rotation error (degrees), median and max centre error (% of the cameras'
spread) after a Sim(3) fit, the process phases' seconds and the matcher. --shuffle renames the photos in a
random order, so sequential pairs carry no information and the retrieval pairs must find the overlaps.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

from bench import common


def main(argv: list[str] | None = None) -> int:
    from gspruner.capture import synthetic
    from gspruner.capture.align import error_summary, model_cameras, pose_errors

    parser = common.parser(__name__, __doc__)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--views", type=int, default=150)
    parser.add_argument("--width", type=int, default=800)
    parser.add_argument("--height", type=int, default=600)
    parser.add_argument("--matcher", default="auto")
    parser.add_argument("--shuffle", action="store_true")
    parser.add_argument("--render-only", action="store_true", help="render the capture and stop (time `process` later, on an idle machine)")
    args = parser.parse_args(argv)

    photos = args.out_dir / f"photos_{args.views}_{args.width}x{args.height}{'_shuffled' if args.shuffle else ''}"
    poses = synthetic.arc_cameras(args.views, seed=0)
    order = np.random.default_rng(1).permutation(args.views) if args.shuffle else np.arange(args.views)
    names = {f"img_{int(rank):04d}.jpg": k for k, rank in enumerate(order)}  # name -> generator view
    marker = args.out_dir / f"{photos.name}.done"
    if not marker.exists():
        shutil.rmtree(photos, ignore_errors=True)
        tic = time.perf_counter()
        synthetic.write_capture(photos, args.views, args.width, args.height, seed=0, supersample=1)
        for k in range(args.views):
            (photos / f"view_{k:03d}.jpg").rename(photos / f"tmp_{k:03d}.jpg")
        for name, k in names.items():
            (photos / f"tmp_{k:03d}.jpg").rename(photos / name)
        print(f"rendered {args.views} views at {args.width}x{args.height} in {time.perf_counter() - tic:.0f} s", flush=True)
        marker.write_text("")  # beside the photos: `process` would list a non-image inside as skipped
    if args.render_only:
        return 0
    scene = args.out_dir / "scene"
    shutil.rmtree(scene, ignore_errors=True)
    tic = time.perf_counter()
    subprocess.run(common.gspruner_command("process", str(photos), "--out", str(scene), "--matcher", args.matcher),
                   check=True)
    wall = time.perf_counter() - tic
    summary = json.loads((scene / "process.json").read_text())
    recovered = model_cameras(scene / "sparse" / "0")
    found = sorted(recovered)
    errors = pose_errors(np.stack([recovered[n] for n in found]), poses[[names[n] for n in found]])
    result = {
        "views": args.views, "size": [args.width, args.height], "shuffled": args.shuffle,
        "registered": len(recovered), "usable": summary["images_usable"],
        "registered_fraction": len(recovered) / args.views, "process_seconds": summary["seconds"]["total"],
        **error_summary(errors),
        "wall_seconds": wall, "seconds": summary["seconds"], "matcher": summary["matcher"],
        "image_pairs": summary["image_pairs"], "points3D": summary["points3D"],
    }
    print(json.dumps(result, indent=2))
    common.write_json(args.out_dir / "result.json", result)
    return 0
