"""The Python half of scripts/bench_opensplat.sh (gspruner against OpenSplat on one scene; not a benchmark.py
sub-benchmark). Three steps, each with gspruner's own readers and writers:

    python scripts/bench/opensplat.py split SCENE DEST [--test-every 8]
        DEST: the training views of SCENE alone, for OpenSplat (it trains on every image it is given):
        images/ (links to SCENE's files) and sparse/0/ (the COLMAP model without the test images; every
        SfM point kept, the same initial points gspruner starts from), and split.json (the names).
    python scripts/bench/opensplat.py to-scene-frame SCENE PLY_IN PLY_OUT [--data-factor 8]
        OpenSplat writes its PLY in the COLMAP world (it centres and scales the cameras for training and
        undoes that on saving unless --center); gspruner trains, exports and evaluates in its normalized
        world (gspruner/data/normalize.py). This moves the PLY by the scene's similarity transform
        (means, scales, rotations and the SH coefficients) so that `gspruner eval --ply` sees it in place.
    python scripts/bench/opensplat.py report OUT STEPS...
        OUT/results.json and a table from what the runs left in OUT (see the shell script), the last line
        `gspruner S1 s/step P1 dB; opensplat S2 s/step P2 dB` for the largest step count.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np


def split(scene: Path, dest: Path, test_every: int) -> None:
    from gspruner.data import colmap
    from gspruner.data.scene import split_every

    model = colmap.read_model(colmap.find_model_dir(scene))
    # load_colmap's rule: sort by name, every test_every-th (from the first) is a test view
    train, test = split_every(sorted(model.images, key=lambda im: im.name), test_every)
    (dest / "images").mkdir(parents=True, exist_ok=True)
    for im in train:
        link = dest / "images" / im.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to((scene / "images" / im.name).resolve())
    used = {im.camera_id for im in train}
    cameras = {cid: cam for cid, cam in model.cameras.items() if cid in used}
    colmap.write_colmap_binary(dest / "sparse" / "0", colmap.ColmapModel(cameras, train, model.points))
    (dest / "split.json").write_text(json.dumps(
        {"scene": str(scene.resolve()), "test_every": test_every,
         "train": [im.name for im in train], "test": [im.name for im in test]}, indent=2))
    print(f"{dest}: {len(train)} training views (held out: {', '.join(im.name for im in test)})")


def to_scene_frame(scene: Path, ply_in: Path, ply_out: Path, data_factor: int) -> None:
    from gspruner.data import load_scene
    from gspruner.export import read_splats
    from gspruner.export.formats import to_splat_dict
    from gspruner.export.gltf import _transform_splats  # similarity transform of splats, SH rotated
    from gspruner.export.ply import write_ply

    loaded = load_scene(scene, data_factor=data_factor)
    transform = loaded.transform  # COLMAP world -> gspruner's world
    arrays = {k: v.numpy().astype(np.float64) for k, v in read_splats(ply_in).items()}
    moved = _transform_splats(arrays, transform)
    write_ply(ply_out, to_splat_dict(moved["means"], moved["scales"], moved["quats"], moved["opacities"],
                                     moved["sh0"], moved["shN"]))
    scale = float(np.cbrt(np.linalg.det(transform[:3, :3])))
    print(f"{ply_out}: {len(arrays['means'])} splats moved into gspruner's world (scale {scale:.4g})")
    # the check: splats lie on the scene's SfM points (gspruner's world) after the move, not before
    near = {name: _median_nearest(m, loaded.points) for name, m in (("moved", moved["means"]),
                                                                    ("as written", arrays["means"]))}
    print(f"median distance of a splat to the nearest SfM point, in gspruner's world: {near['moved']:.4f} moved, "
          f"{near['as written']:.4f} as written")
    if not near["moved"] < near["as written"]:
        print("warning: the moved splats are no nearer the scene's points: is the PLY in the COLMAP world?",
              file=sys.stderr)


def _median_nearest(means: np.ndarray, points: np.ndarray, sample: int = 2000) -> float:
    import torch

    pick = np.random.default_rng(0).choice(len(means), min(sample, len(means)), replace=False)
    d = torch.cdist(torch.from_numpy(means[pick]).float(), torch.from_numpy(np.asarray(points)).float())
    return float(d.min(dim=1).values.median())


def _time_v(path: Path) -> dict:
    """Peak RSS (MiB) and wall seconds from a /usr/bin/time -v file."""
    text = path.read_text()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)", text).group(1)
    seconds = sum(float(part) * 60 ** i for i, part in enumerate(reversed(wall.split(":"))))
    return {"peak_rss_mb": rss / 1024, "wall_s": seconds}


def _opensplat_train_s(log: Path, steps: int) -> float:
    """Seconds of OpenSplat's training loop: the span of its per-step lines (each stamped with the time it
    was printed, after the step's backward pass) from `Step 1` to `Step N`, times N / (N - 1)."""
    stamps = [float(line.split(" ", 1)[0]) for line in log.read_text().splitlines() if " Step " in line]
    if len(stamps) < 2:
        raise SystemExit(f"{log}: fewer than two 'Step' lines; did OpenSplat train?")
    return (stamps[-1] - stamps[0]) * steps / max(1, len(stamps) - 1)


def machine() -> dict:
    """Where and when: the CPU, its cores, the OS, the date and gspruner's commit."""
    import datetime
    import os
    import platform
    import subprocess

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent).stdout.strip()
    return {"machine": f"{cpu}, {os.cpu_count()} cores, {platform.system()}", "commit": commit,
            "date": datetime.date.today().isoformat()}


def report(out: Path, steps: list[int], meta: dict) -> None:
    rows = []
    for n in steps:
        g, o = out / f"gspruner_{n}", out / f"opensplat_{n}"
        train = json.loads((g / "run" / "metrics.json").read_text())
        sides = {
            "gspruner": {**_time_v(g / "time.txt"), "train_s": train["train_seconds"],
                         "eval": json.loads((g / "eval.json").read_text())},
            "opensplat": {**_time_v(o / "time.txt"), "train_s": _opensplat_train_s(o / "log.txt", n),
                          "eval": json.loads((o / "eval.json").read_text())},
        }
        row = {"steps": n}
        for name, s in sides.items():
            e = s["eval"]
            row[name] = {"wall_s": s["wall_s"], "train_s": s["train_s"], "s_per_step": s["train_s"] / n,
                         "peak_rss_mb": s["peak_rss_mb"], "num_gaussians": e["num_gaussians"],
                         "psnr": e["psnr"], "ssim": e["ssim"], "lpips": e.get("lpips")}
        a, b = row["gspruner"], row["opensplat"]
        row["ratio_opensplat_over_gspruner"] = {
            k: (b[k] / a[k] if a[k] and b[k] is not None else None)
            for k in ("s_per_step", "wall_s", "peak_rss_mb", "num_gaussians")}
        row["ratio_opensplat_over_gspruner"]["psnr_db_difference"] = b["psnr"] - a["psnr"]
        rows.append(row)
    (out / "results.json").write_text(json.dumps({**meta, "rows": rows}, indent=2))

    def fmt(v, spec):
        return "-" if v is None else format(v, spec)

    print(f"\n{'steps':>6} {'trainer':<10} {'s/step':>8} {'train s':>8} {'wall s':>8} {'peak MiB':>9} "
          f"{'Gaussians':>10} {'PSNR':>7} {'SSIM':>6} {'LPIPS':>6}")
    for row in rows:
        for name in ("gspruner", "opensplat"):
            r = row[name]
            print(f"{row['steps']:>6} {name:<10} {r['s_per_step']:>8.3f} {r['train_s']:>8.1f} {r['wall_s']:>8.1f} "
                  f"{r['peak_rss_mb']:>9.0f} {r['num_gaussians']:>10,} {r['psnr']:>7.2f} {r['ssim']:>6.3f} "
                  f"{fmt(r['lpips'], '6.3f')}")
        q = row["ratio_opensplat_over_gspruner"]
        print(f"{row['steps']:>6} {'os/gs':<10} {fmt(q['s_per_step'], '8.2f')} {'':>8} {fmt(q['wall_s'], '8.2f')} "
              f"{fmt(q['peak_rss_mb'], '9.2f')} {fmt(q['num_gaussians'], '10.2f')} {q['psnr_db_difference']:>+7.2f}")
    print(f"(s/step: training loop only; wall: the whole process; os/gs: OpenSplat / gspruner, PSNR: difference)"
          f"\nresults: {out / 'results.json'}")
    last = rows[-1]
    print(f"gspruner {last['gspruner']['s_per_step']:.3f} s/step {last['gspruner']['psnr']:.2f} dB; "
          f"opensplat {last['opensplat']['s_per_step']:.3f} s/step {last['opensplat']['psnr']:.2f} dB")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("split")
    p.add_argument("scene", type=Path), p.add_argument("dest", type=Path)
    p.add_argument("--test-every", type=int, default=8)
    p = sub.add_parser("to-scene-frame")
    p.add_argument("scene", type=Path), p.add_argument("ply_in", type=Path), p.add_argument("ply_out", type=Path)
    p.add_argument("--data-factor", type=int, default=8)
    p = sub.add_parser("report")
    p.add_argument("out", type=Path), p.add_argument("steps", type=int, nargs="+")
    p.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE", help="recorded in results.json")
    a = ap.parse_args(argv)
    if a.cmd == "split":
        split(a.scene, a.dest, a.test_every)
    elif a.cmd == "to-scene-frame":
        to_scene_frame(a.scene, a.ply_in, a.ply_out, a.data_factor)
    else:
        report(a.out, sorted(a.steps), {**machine(), **dict(kv.split("=", 1) for kv in a.meta)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
