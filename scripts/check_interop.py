#!/usr/bin/env python
"""Check what other tools see in our scene files, by rendering it: the export acceptance check.

For a checkpoint and its scene (the test views):
  ours -> splat-transform -> PLY -> render   each of our files (ply, sog, spz, compressed-ply) converted by
                                             PlayCanvas' splat-transform and rendered from the PLY it writes,
                                             against the checkpoint (Δ ≤ 0.1 dB expected)
  ours -> our reader -> render                the same files through our own readers (and glb, which
                                             splat-transform 3.7.0 does not read)
  theirs -> our reader -> render              splat-transform's own .sog / .spz of our PLY read by our readers,
                                             against splat-transform's own round trip (theirs -> splat-transform
                                             -> PLY), Δ ≤ 0.1 dB expected
  glb -> Khronos glTF-Validator               errors / warnings of our .glb (npm `gltf-validator`)

splat-transform (`.node/node_modules/.bin/splat-transform`, `make setup` installs it) is the independent
reader; rows it is needed for are skipped without it. Its SOG writer runs k-means on the CPU here (`-g cpu`):
about 20 s for the 35k-splat demo.

    python scripts/check_interop.py --ckpt results/demo/ckpt/last.pt
    python scripts/check_interop.py --ckpt results/demo/ckpt/last.pt --json interop.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path

from gspruner.checkpoint import load_checkpoint, splats_from_state, trained_scene
from gspruner.device import resolve_device
from gspruner.evaluation import evaluate
from gspruner.export.command import training_centres
from gspruner.export.formats import FORMATS, read_splats, sh_degree_of, write_splats, writer_options

REPO = Path(__file__).resolve().parents[1]
SPLAT_TRANSFORM = REPO / ".node" / "node_modules" / ".bin" / "splat-transform"
GLTF_VALIDATOR = REPO / ".node" / "node_modules" / "gltf-validator"
SPLAT_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")
TOLERANCE_DB = 0.1


def splat_transform(*args: Path | str) -> None:
    proc = subprocess.run([str(SPLAT_TRANSFORM), "--no-tty", "-w", "-g", "cpu", *map(str, args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"splat-transform {' '.join(map(str, args))} failed:\n{proc.stdout}{proc.stderr}")


def validate_gltf(path: Path) -> dict:
    """The Khronos glTF-Validator's issue counts for a .glb: {"errors", "warnings", "infos", "messages"}."""
    script = (
        "const v = require(process.argv[1]); const fs = require('fs');"
        "v.validateBytes(new Uint8Array(fs.readFileSync(process.argv[2])))"
        ".then(r => console.log(JSON.stringify(r.issues)))"
        ".catch(e => { console.error(String(e)); process.exit(1); });"
    )
    proc = subprocess.run(["node", "-e", script, str(GLTF_VALIDATOR), str(path)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"gltf-validator failed on {path}: {proc.stderr.strip()}")
    issues = json.loads(proc.stdout)
    return {
        "errors": issues["numErrors"], "warnings": issues["numWarnings"], "infos": issues["numInfos"],
        "messages": sorted({f"{m['code']} ({m['severity']})" for m in issues["messages"]}),
    }  # fmt: skip


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", type=Path, required=True, help="a trained 3D checkpoint (RESULT_DIR/ckpt/last.pt)")
    ap.add_argument("--data-dir", type=Path, default=None, help="the scene (default: the one in the checkpoint)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where to render")
    ap.add_argument("--out-dir", type=Path, default=None, help="keep the files here (default: a temp folder)")
    ap.add_argument("--json", type=Path, default=None, help="also write the table here as JSON")
    args = ap.parse_args()

    device = resolve_device(args.device)
    ckpt = load_checkpoint(args.ckpt)
    trained = ckpt["config"]
    scene = trained_scene(ckpt, args.data_dir)
    split = "test" if scene.test else "train"
    splats = {k: ckpt["splats"][k].detach().float().cpu() for k in SPLAT_KEYS}
    degree = min(trained["sh_degree"], sh_degree_of(splats))
    out_dir = args.out_dir or Path(tempfile.mkdtemp(prefix="interop_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    have_st = SPLAT_TRANSFORM.exists() and shutil.which("node") is not None
    have_validator = GLTF_VALIDATOR.exists() and shutil.which("node") is not None

    def psnr(s: dict) -> float:
        return evaluate(splats_from_state(s, device), scene, device, degree, split=split, with_lpips=False)["psnr"]

    reference = psnr(splats)
    rows = [{"path": "checkpoint", "file": str(args.ckpt), "psnr": reference, "delta": 0.0, "against": "-", "checked": False}]

    def row(path: str, file: Path, value: float, against: float, against_name: str, checked=True, **extra) -> None:
        rows.append({"path": path, "file": str(file), "psnr": value, "delta": value - against, "against": against_name,
                     "checked": checked, **extra})  # fmt: skip

    for fmt in ("ply", "sog", "spz", "compressed-ply", "glb"):
        ours = out_dir / f"ours{FORMATS[fmt]}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the export command's defaults (compressed-ply: SH rounded for the training cameras)
            write_splats(ours, splats, fmt, **writer_options(fmt, view_points=training_centres(scene)))
        row(f"ours {fmt} -> our reader", ours, psnr(read_splats(ours)), reference, "checkpoint", bytes=ours.stat().st_size)
        if fmt == "glb" and have_validator:
            rows[-1]["validator"] = validate_gltf(ours)
        if have_st and fmt != "glb":
            converted = out_dir / f"ours_{fmt.replace('-', '_')}_st.ply"
            splat_transform(ours, converted)
            row(f"ours {fmt} -> splat-transform -> ply", converted, psnr(read_splats(converted, "ply")), reference, "checkpoint")

    if have_st:
        ply = out_dir / "ours.ply"
        for fmt in ("sog", "spz"):
            theirs = out_dir / f"theirs{FORMATS[fmt]}"
            splat_transform(ply, theirs)
            round_trip = out_dir / f"theirs_{fmt}_st.ply"
            splat_transform(theirs, round_trip)
            their_psnr = psnr(read_splats(round_trip, "ply"))
            # splat-transform's own loss (its SPZ keeps 5/4-bit SH): the reference for the next row, not checked
            row(f"theirs {fmt} -> splat-transform -> ply", round_trip, their_psnr, reference, "checkpoint",
                bytes=theirs.stat().st_size, checked=False)
            row(f"theirs {fmt} -> our reader", theirs, psnr(read_splats(theirs)), their_psnr, "their round trip")

    print(f"{args.ckpt}: {len(splats['means'])} splats, SH degree {degree}, {split} views, device {device}")
    print(f"{'path':<44} {'PSNR':>8} {'Δ dB':>8}  {'against':<17} {'bytes':>10}  ok (|Δ| ≤ {TOLERANCE_DB})")
    for r in rows:
        ok = "" if not r["checked"] else ("yes" if abs(r["delta"]) <= TOLERANCE_DB else "NO")
        size = str(r["bytes"]) if "bytes" in r else ""
        print(f"{r['path']:<44} {r['psnr']:>8.3f} {r['delta']:>+8.3f}  {r['against']:<17} {size:>10}  {ok}")
        if "validator" in r:
            v = r["validator"]
            print(f"{'':<44} gltf-validator: {v['errors']} errors, {v['warnings']} warnings, {v['infos']} infos {v['messages']}")
    if not have_st:
        print("splat-transform not found (.node/node_modules/.bin/splat-transform): the rows through it are missing")
    print(f"files in {out_dir}")
    if args.json:
        args.json.write_text(json.dumps({"ckpt": str(args.ckpt), "rows": rows}, indent=2))
    failed = [r for r in rows if r["checked"] and abs(r["delta"]) > TOLERANCE_DB]
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
