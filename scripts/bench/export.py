"""The scene exporters: file size and rendering quality of each format, read back.

Exports the checkpoint's splats to every format (ply, sog, spz, glb, compressed-ply, splat), with all SH
bands and with --sh-degree 0, reads each file back with our readers and evaluates it on the test views, next
to the checkpoint itself. Variants: compressed-ply with view-aware SH rounding (default; the training
cameras) and nearest rounding, SPZ with full 8-bit SH (default) and the reference encoder's 5/4-bit buckets.

The compact pipeline: --pipeline-ckpt takes more checkpoints of the same scene (pruned with `gspruner
prune`, SH-distilled with `gspruner distill-sh`, or both); each is evaluated, then written as sog (the
reference's SH palette size and each of --sog-palettes), spz and compressed-ply at its own SH degree, and
as sog and spz at SH degree 0 (bands dropped). Every row gives its size ratio against the INRIA PLY of
--ckpt (the default-trained model: 248 B/splat at SH3) and its PSNR change against --ckpt's own PSNR.
Prints one table, then the Pareto front (no other row both smaller and better), and optionally writes
the table as JSON.

    python scripts/benchmark.py export --ckpt results/garden/ckpt/last.pt
    python scripts/benchmark.py export --ckpt C --pipeline-ckpt P1 P2 --out /tmp/exports --json bench_export.json
    python scripts/benchmark.py export --ckpt C --formats ply --pipeline-ckpt P1 --sog-palettes 1024 4096
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from bench import common
from gspruner.checkpoint import load_checkpoint, splats_from_state, trained_scene
from gspruner.evaluation import evaluate
from gspruner.export.command import training_centres
from gspruner.export.formats import FORMATS, drop_sh_bands, read_splats, sh_degree_of, write_splats
from gspruner.device import resolve_device

SPLAT_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")
REFERENCE_SPZ_BITS = (5, 4)


def main(argv=None) -> int:
    ap = common.parser(__name__, __doc__)
    ap.add_argument("--ckpt", type=Path, required=True, help="the default-trained checkpoint (RESULT_DIR/ckpt/last.pt): the size and PSNR reference")
    ap.add_argument("--pipeline-ckpt", type=Path, nargs="*", default=[], help="pruned and/or SH-distilled checkpoints of the same scene, benched as compressed-ply and spz")
    ap.add_argument("--data-dir", type=Path, default=None, help="the scene (default: the one in the checkpoint)")
    ap.add_argument("--data-factor", type=int, default=None, help="image downsampling (default: the checkpoint's)")
    ap.add_argument("--test-every", type=int, default=None, help="test split (default: the checkpoint's)")
    common.add_runs(ap, None, "keep the exported files here", lpips=False, rerun=False, device_help="where to render")
    ap.add_argument("--formats", nargs="+", default=list(FORMATS), choices=list(FORMATS), help="formats to bench for --ckpt")
    ap.add_argument("--spz-version", type=int, default=4, choices=[2, 3, 4], help="SPZ version to write")
    ap.add_argument("--sog-palettes", type=int, nargs="*", default=[4096], help="SH palette sizes to try for the pipeline's sog files, besides the reference's rule")
    ap.add_argument("--json", type=Path, default=None, help="also write the table here as JSON")
    args = ap.parse_args(argv)

    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.ckpt)
    trained = ckpt["config"]
    scene = trained_scene(ckpt, args.data_dir, args.data_factor, args.test_every)
    split = "test" if scene.test else "train"
    centres = training_centres(scene)  # [C,3]: compressed-ply's view-aware SH rounding
    out_dir = common.out_dir(args, "bench_export_")
    rows = []

    def evaluate_splats(s: dict, sh_degree: int) -> dict:
        m = evaluate(splats_from_state(s, device), scene, device, sh_degree, split=split, with_lpips=args.lpips)
        return {"psnr": m["psnr"], "ssim": m["ssim"], "lpips": m["lpips"]}

    def bench_file(source: str, splats: dict, sh: int, fmt: str, variant: str = "", **options) -> None:
        s = drop_sh_bands(splats, sh)
        tag = "".join(c if c.isalnum() else "_" for c in variant)
        path = out_dir / f"{source}_sh{sh}{tag and '_' + tag}{FORMATS[fmt]}"
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # .splat's "SH dropped": the table's SH column says so
            written = write_splats(path, s, fmt, **options)
        write_s = time.perf_counter() - t0
        back = read_splats(path)
        file_degree = min(sh, sh_degree_of(back))
        size = path.stat().st_size
        rows.append({
            "source": source, "format": fmt + (f" [{variant}]" if variant else ""), "sh_degree": file_degree,
            "num_splats": written, "bytes": size, "bytes_per_splat": size / written, "mb": size / 1e6,
            "write_s": write_s, **evaluate_splats(back, file_degree),
        })  # fmt: skip
        if fmt == "splat" and sh > 0:
            rows[-1]["note"] = "no SH in .splat"

    def bench_checkpoint(source: str, state: dict, degree: int) -> None:
        rows.append({"source": source, "format": "checkpoint", "sh_degree": degree, "num_splats": len(state["means"]),
                     "bytes": None, "bytes_per_splat": None, "mb": None, **evaluate_splats(state, degree)})  # fmt: skip

    spz = {"version": args.spz_version}
    splats = {k: ckpt["splats"][k].detach().float().cpu() for k in SPLAT_KEYS}
    degree = min(trained["sh_degree"], sh_degree_of(splats))
    bench_checkpoint("base", splats, degree)
    for sh in sorted({degree, 0}, reverse=True):
        for fmt in args.formats:
            if fmt == "compressed-ply":
                bench_file("base", splats, sh, fmt, view_points=centres)
                if sh > 0:
                    bench_file("base", splats, sh, fmt, "nearest SH", view_points=None)
            elif fmt == "spz":
                bench_file("base", splats, sh, fmt, sh_bits=(8, 8), **spz)
                if sh > 0:
                    bench_file("base", splats, sh, fmt, "SH 5/4 bits", sh_bits=REFERENCE_SPZ_BITS, **spz)
            else:
                bench_file("base", splats, sh, fmt)

    for path in args.pipeline_ckpt:
        other = load_checkpoint(path)
        source = path.parent.parent.name if path.parent.name == "ckpt" else path.stem
        state = {k: other["splats"][k].detach().float().cpu() for k in SPLAT_KEYS}
        other_degree = min(other["config"]["sh_degree"], sh_degree_of(state))
        bench_checkpoint(source, state, other_degree)
        for sh in sorted({other_degree, 0}, reverse=True):
            bench_file(source, state, sh, "sog")
            if sh > 0:
                for palette in args.sog_palettes:
                    bench_file(source, state, sh, "sog", f"palette {palette}", palette_size=palette)
                bench_file(source, state, sh, "compressed-ply", view_points=centres)
            bench_file(source, state, sh, "spz", sh_bits=(8, 8), **spz)

    base_psnr = rows[0]["psnr"]
    inria = next((r["bytes"] for r in rows if r["source"] == "base" and r["format"] == "ply" and r["sh_degree"] == degree), None)
    if inria is None:  # ply not benched: write it for its size
        write_splats(out_dir / "base_inria.ply", splats, "ply")
        inria = (out_dir / "base_inria.ply").stat().st_size
    for r in rows:
        r["delta_psnr"] = r["psnr"] - base_psnr
        r["size_ratio"] = None if r["bytes"] is None else inria / r["bytes"]

    print(f"{args.ckpt}: {len(splats['means'])} splats, SH degree {degree}, {len(scene.test if split == 'test' else scene.train)} {split} views, device {device}")
    print(f"size ratio: the INRIA PLY of {args.ckpt} ({inria / 1e6:.3f} MB) / the file")
    header = f"{'source':<22} {'format':<28} {'SH':>2} {'splats':>7} {'B/splat':>8} {'MB':>8} {'ratio':>7} {'PSNR':>7} {'SSIM':>6} {'ΔPSNR':>7}"
    print(header + ("  LPIPS" if args.lpips else ""))
    for r in rows:
        bps = "-" if r["bytes_per_splat"] is None else f"{r['bytes_per_splat']:.2f}"
        mb = "-" if r["mb"] is None else f"{r['mb']:.3f}"
        ratio = "-" if r["size_ratio"] is None else f"{r['size_ratio']:.1f}x"
        line = (f"{r['source']:<22} {r['format']:<28} {r['sh_degree']:>2} {r['num_splats']:>7} {bps:>8} {mb:>8} {ratio:>7} "
                f"{r['psnr']:>7.3f} {r['ssim']:>6.4f} {r['delta_psnr']:>+7.3f}")
        if args.lpips:
            line += f"  {r['lpips']:.4f}" if r["lpips"] is not None else "  -"
        print(line)
    print("\nPareto front (size ratio vs ΔPSNR; files only):")
    files = [r for r in rows if r["bytes"] is not None]
    front = [r for r in files if not any(
        o is not r and o["bytes"] <= r["bytes"] and o["psnr"] >= r["psnr"] and (o["bytes"] < r["bytes"] or o["psnr"] > r["psnr"])
        for o in files)]  # fmt: skip
    for r in sorted(front, key=lambda r: -r["size_ratio"]):
        print(f"  {r['size_ratio']:>7.1f}x  {r['delta_psnr']:>+7.3f} dB  {r['source']} {r['format']} SH{r['sh_degree']} ({r['mb']:.3f} MB)")
    print(f"files in {out_dir}")
    if args.json:
        common.write_json(args.json, {"ckpt": str(args.ckpt), "split": split, "inria_ply_bytes": inria, "rows": rows})
    return 0
