#!/usr/bin/env python
"""Benchmark the scene exporters: file size and rendering quality of each format, read back.

Exports the checkpoint's splats to every format (ply, compressed-ply, spz, splat), with all SH bands and
with --sh-degree 0, reads each file back with our readers and evaluates it on the test views, next to the
checkpoint itself. Prints one table (format, SH degree, bytes/splat, file MB, PSNR, SSIM, ΔPSNR) and
optionally writes it as JSON.

    python scripts/bench_export.py --ckpt results/garden/ckpt/last.pt
    python scripts/bench_export.py --ckpt C --data-dir D --out-dir /tmp/exports --json bench_export.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

from gspruner.checkpoint import load_checkpoint, splats_from_state
from gspruner.data import load_scene
from gspruner.evaluation import evaluate
from gspruner.export.formats import FORMATS, drop_sh_bands, read_splats, sh_degree_of, write_splats
from gspruner.trainer import OBJECT_KINDS, resolve_device

SPLAT_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", type=Path, required=True, help="a gspruner checkpoint (RESULT_DIR/ckpt/last.pt)")
    ap.add_argument("--data-dir", type=Path, default=None, help="the scene (default: the one in the checkpoint)")
    ap.add_argument("--data-factor", type=int, default=None, help="image downsampling (default: the checkpoint's)")
    ap.add_argument("--test-every", type=int, default=None, help="test split (default: the checkpoint's)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to render")
    ap.add_argument("--out-dir", type=Path, default=None, help="keep the exported files here (default: a temp folder)")
    ap.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS), help="formats to bench")
    ap.add_argument("--spz-version", type=int, default=3, choices=[2, 3], help="SPZ version to write")
    ap.add_argument("--lpips", action="store_true", help="also compute LPIPS (slower)")
    ap.add_argument("--json", type=Path, default=None, help="also write the table here as JSON")
    args = ap.parse_args()

    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.ckpt)
    trained = ckpt["config"]
    scene = load_scene(
        args.data_dir if args.data_dir is not None else ckpt["scene"]["data_dir"],
        data_factor=args.data_factor if args.data_factor is not None else trained["data_factor"],
        test_every=args.test_every if args.test_every is not None else trained["test_every"],
        background=tuple(trained["background"]),
    )
    if scene.kind not in OBJECT_KINDS:
        scene.background = None
    split = "test" if scene.test else "train"
    splats = {k: ckpt["splats"][k].detach().float().cpu() for k in SPLAT_KEYS}
    n = len(splats["means"])
    degree = min(trained["sh_degree"], sh_degree_of(splats))

    def evaluate_splats(s: dict, sh_degree: int) -> dict:
        m = evaluate(splats_from_state(s, device), scene, device, sh_degree, split=split, with_lpips=args.lpips)
        return {"psnr": m["psnr"], "ssim": m["ssim"], "lpips": m["lpips"]}

    rows = [{"format": "checkpoint", "sh_degree": degree, "num_splats": n, "bytes": None,
             "bytes_per_splat": None, "mb": None, **evaluate_splats(splats, degree)}]  # fmt: skip
    base_psnr = rows[0]["psnr"]
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="bench_export_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    for sh in sorted({degree, 0}, reverse=True):
        source = drop_sh_bands(splats, sh)
        for fmt in args.formats:
            path = out_dir / f"scene_sh{sh}{FORMATS[fmt]}"
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # .splat's "SH dropped": the table's SH column says so
                written = write_splats(path, source, fmt, **({"version": args.spz_version} if fmt == "spz" else {}))
            write_s = time.perf_counter() - t0
            back = read_splats(path)
            file_degree = min(sh, sh_degree_of(back))
            size = path.stat().st_size
            rows.append({
                "format": fmt, "sh_degree": file_degree, "num_splats": written, "bytes": size,
                "bytes_per_splat": size / written, "mb": size / 1e6, "write_s": write_s,
                **evaluate_splats(back, file_degree),
            })  # fmt: skip
            if fmt == "splat" and sh > 0:
                rows[-1]["note"] = "no SH in .splat"

    print(f"{args.ckpt}: {n} splats, SH degree {degree}, {len(scene.test if split == 'test' else scene.train)} {split} views, device {device}")
    print(f"{'format':<15} {'SH':>2} {'B/splat':>8} {'MB':>9} {'PSNR':>7} {'SSIM':>6} {'ΔPSNR':>7}" + ("  LPIPS" if args.lpips else ""))
    for r in rows:
        bps = "-" if r["bytes_per_splat"] is None else f"{r['bytes_per_splat']:.2f}"
        mb = "-" if r["mb"] is None else f"{r['mb']:.3f}"
        line = f"{r['format']:<15} {r['sh_degree']:>2} {bps:>8} {mb:>9} {r['psnr']:>7.3f} {r['ssim']:>6.4f} {r['psnr'] - base_psnr:>+7.3f}"
        if args.lpips:
            line += f"  {r['lpips']:.4f}" if r["lpips"] is not None else "  -"
        print(line)
    print(f"files in {out_dir}")
    if args.json:
        args.json.write_text(json.dumps({"ckpt": str(args.ckpt), "split": split, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
