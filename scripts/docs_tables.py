"""Tables in docs/ written from results files, never by hand.

    python scripts/docs_tables.py collect NAME RUN_DIR[=LABEL] ... --command "..."   # runs -> docs/results/NAME.json
    python scripts/docs_tables.py write     # every table in docs/*.md rewritten from its results file
    python scripts/docs_tables.py check     # exit 1 when a table differs from its results file (tests run this)

A table in a docs page sits between two markers naming its results file and its kind:

    <!-- table: results/strategies.json kind=runs -->
    | ... |
    <!-- end table -->

Results files live in docs/results/ and carry the command that made them, the commit and the machine.
Kinds: `runs` (training runs: PSNR / SSIM / LPIPS on the usual and the off-path test views, the few-view
floater share, Gaussians, train time), `dynamic` (4D runs: PSNR over all test frames and inside / outside
the training time span), `process` (`gspruner process` pose checks), `compact` (`gspruner compact`'s stages), `pruning` (runs with render FPS).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"
MARKER = re.compile(r"<!-- table: (?P<file>\S+) kind=(?P<kind>\w+) -->\n(?P<body>.*?)<!-- end table -->", re.S)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
    import os

    return f"{cpu}, {os.cpu_count()} cores, {platform.system()}"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=DOCS.parent, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _num(value, digits: int, suffix: str = "") -> str:
    return "–" if value is None else f"{value:,.{digits}f}{suffix}"


def metrics_table(columns: list[tuple[str, str, int]], results: dict, label: str = "strategy") -> str:
    """Rows of training runs: scene, label, then one right-aligned column per (header, metrics key, digits)."""
    rows = ["| scene | " + label + " | " + " | ".join(header for header, _, _ in columns) + " |",
            "|---|---|" + "---:|" * len(columns)]
    for r in results["rows"]:
        m = r["metrics"]
        rows.append(f"| {r['scene']} | {r['label']} | " + " | ".join(_num(m.get(key), digits) for _, key, digits in columns)
                    + " |")
    return "\n".join(rows)


RUNS = [("PSNR", "psnr", 2), ("off-path PSNR", "psnr_off_path", 2), ("SSIM", "ssim", 3), ("LPIPS", "lpips", 3),
        ("few-view share", "few_view_fraction", 3), ("Gaussians", "num_gaussians", 0), ("train s", "train_seconds", 0)]
DYNAMIC = [("PSNR", "psnr", 2), ("in span", "psnr_in_span", 2), ("out of span", "psnr_out_of_span", 2),
           ("SSIM", "ssim", 3), ("LPIPS", "lpips", 3), ("Gaussians", "num_gaussians", 0),
           ("rasterized / frame", "mean_rasterized", 0), ("train s", "train_seconds", 0)]


PRUNING = [("PSNR", "psnr", 2), ("SSIM", "ssim", 4), ("LPIPS", "lpips", 4), ("Gaussians", "num_gaussians", 0),
           ("render FPS", "render_fps", 0), ("train s", "train_seconds", 0)]


def runs_table(results: dict) -> str:
    return metrics_table(RUNS, results)


def pruning_table(results: dict) -> str:
    """Pruned runs next to their reference: PSNR, SSIM and LPIPS to 4 digits, Gaussians, render FPS at test size."""
    return metrics_table(PRUNING, results, label="method")


def dynamic_table(results: dict) -> str:
    return metrics_table(DYNAMIC, results, label="run")


def process_table(results: dict) -> str:
    rows = ["| capture | registered | median rotation error | median centre error | matcher (pairs) | wall time |",
            "|---|---:|---:|---:|---|---:|"]
    for r in results["rows"]:
        rows.append(f"| {r['capture']} | {r['registered']} / {r['usable']} | {r['median_rotation_deg']:.2f}° "
                    f"| {r['median_centre_percent']:.2f} % | {r['matcher']} ({r.get('image_pairs', '–')}) "
                    f"| {r['process_seconds']:.0f} s |")
    return "\n".join(rows)


def opensplat_table(results: dict) -> str:
    """scripts/bench_opensplat.sh's results.json: both trainers per step count, and OpenSplat / gspruner."""
    rows = ["| steps | trainer | s/step | train s | peak RSS MiB | Gaussians | PSNR | SSIM | LPIPS |",
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        for side in ("gspruner", "opensplat"):
            m = r[side]
            rows.append(f"| {r['steps']:,} | {side} | {_num(m['s_per_step'], 3)} | {_num(m['train_s'], 0)} "
                        f"| {_num(m['peak_rss_mb'], 0)} | {_num(m['num_gaussians'], 0)} | {_num(m['psnr'], 2)} "
                        f"| {_num(m['ssim'], 3)} | {_num(m['lpips'], 3)} |")
        q = r["ratio_opensplat_over_gspruner"]
        rows.append(f"| {r['steps']:,} | OpenSplat / gspruner | {_num(q['s_per_step'], 2, '×')} | | "
                    f"{_num(q['peak_rss_mb'], 2, '×')} | {_num(q['num_gaussians'], 2, '×')} "
                    f"| {q['psnr_db_difference']:+.2f} dB | | |")
    return "\n".join(rows)


def roofline_table(results: dict) -> str:
    """`benchmark.py roofline`'s results.json: composited pairs per second against the counted issue limit."""
    rows = ["| pass | issue limit, G pairs/s | ceiling scene, G pairs/s | trained model, G pairs/s | trained / ceiling |",
            "|---|---:|---:|---:|---:|"]
    for name, p in results["passes"].items():
        limit = p["issue_limit_pairs_s"]
        rows.append(f"| {name} | {limit / 1e9:.2f} | {p['ceiling_pairs_s'] / 1e9:.3f} ({p['ceiling_pairs_s'] / limit:.0%}) "
                    f"| {p['trained_pairs_s'] / 1e9:.3f} ({p['trained_pairs_s'] / limit:.0%}) "
                    f"| {p['trained_pairs_s'] / p['ceiling_pairs_s']:.0%} |")
    return "\n".join(rows)


def compact_table(results: dict) -> str:
    """`gspruner compact`'s compact.json files: each recipe's stages, their ratio to the input's INRIA PLY and
    PSNR change, and (rows with an ADC run) the ratio to ADC's PLY and the PSNR change against ADC."""
    rows = ["| scene | recipe | stage | Gaussians | MB | ratio to the input's PLY | ΔPSNR | ratio to ADC's PLY "
            "| Δ vs ADC | PSNR | SSIM | LPIPS | render FPS |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results["rows"]:
        adc, adc_psnr = r.get("adc_inria_ply_bytes"), r.get("adc_psnr")

        def versus_adc(size: float, psnr: float) -> str:
            return "| – | – " if adc is None else f"| {adc / size:.1f}× | {psnr - adc_psnr:+.2f} "

        rows.append(f"| {r['scene']} | {r['recipe']} | input checkpoint | {r['input_gaussians']:,} "
                    f"| {r['input_inria_ply_bytes'] / 1e6:.3f} (PLY) | 1.0× | – "
                    + versus_adc(r["input_inria_ply_bytes"], r["input_psnr"])
                    + f"| {r['input_psnr']:.2f} | {r['input_ssim']:.3f} | {_num(r.get('input_lpips'), 3)} "
                    f"| {_num(r.get('input_render_fps'), 0)} |")
        for st in r["stages"]:
            rows.append(f"| {r['scene']} | {r['recipe']} | {st['stage']} (.sog) | {st['gaussians']:,} | {st['bytes'] / 1e6:.3f} "
                        f"| {st['ratio_to_inria_ply']:.1f}× | {st['delta_psnr']:+.2f} " + versus_adc(st["bytes"], st["psnr"])
                        + f"| {st['psnr']:.2f} | {st['ssim']:.3f} | {_num(st.get('lpips'), 3)} | {_num(st.get('render_fps'), 0)} |")
    return "\n".join(rows)


KINDS = {"runs": runs_table, "dynamic": dynamic_table, "process": process_table, "opensplat": opensplat_table,
         "roofline": roofline_table, "compact": compact_table,
         "pruning": pruning_table}


def render(kind: str, results_file: Path) -> str:
    results = json.loads(results_file.read_text())
    table = KINDS[kind](results)
    return (f"{table}\n\n<sub>From `docs/{results_file.relative_to(DOCS)}`: `{results['command']}` at commit "
            f"{results['commit']} on {results['machine']} ({results.get('date', '')}).</sub>\n")


def tables(page: Path):
    """(match, expected body) of each table in a docs page."""
    text = page.read_text()
    for match in MARKER.finditer(text):
        yield match, render(match["kind"], DOCS / match["file"])


def write() -> list[Path]:
    changed = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        new = MARKER.sub(lambda m: f"<!-- table: {m['file']} kind={m['kind']} -->\n{render(m['kind'], DOCS / m['file'])}"
                               "<!-- end table -->", text)
        if new != text:
            page.write_text(new)
            changed.append(page)
    return changed


def check() -> list[str]:
    """The docs tables that differ from their results files ('page: results file')."""
    return [f"{page.relative_to(DOCS.parent)}: {m['file']}" for page in sorted(DOCS.rglob("*.md"))
            for m, body in tables(page) if m["body"] != body]


def collect(name: str, runs: list[str], command: str) -> Path:
    rows = []
    for spec in runs:
        run, _, label = spec.partition("=")
        metrics = json.loads((Path(run) / "metrics.json").read_text())
        metrics.pop("per_view", None)
        scene, _, strategy = (label or Path(run).name).partition(":")
        rows.append({"scene": scene, "label": strategy or metrics.get("strategy", ""), "run": Path(run).name,
                     "metrics": metrics})
    return _write_results(name, command, rows)


def _write_results(name: str, command: str, rows: list[dict]) -> Path:
    from datetime import date

    out = DOCS / "results" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": command, "commit": commit(), "machine": machine(),
                               "date": date.today().isoformat(), "rows": rows}, indent=1) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    c = sub.add_parser("collect")
    c.add_argument("name")
    c.add_argument("runs", nargs="+", help="RUN_DIR or RUN_DIR=scene:label")
    c.add_argument("--command", required=True)
    k = sub.add_parser("collect-compact", help="`gspruner compact`'s compact.json files -> one results file")
    k.add_argument("name")
    k.add_argument("files", nargs="+", help="SCENE:RECIPE=WORK_DIR/compact.json")
    k.add_argument("--command", required=True)
    k.add_argument("--adc-run", action="append", default=[], metavar="SCENE=RUN_DIR",
                   help="the scene's ADC (strategy:default) run: its INRIA PLY size is a second reference column")
    p = sub.add_parser("collect-process", help="check_process.py / `benchmark.py process` JSON files -> one results file")
    p.add_argument("name")
    p.add_argument("files", nargs="+", help="CAPTURE_LABEL=FILE.json")
    p.add_argument("--command", required=True)
    sub.add_parser("write")
    sub.add_parser("check")
    args = parser.parse_args(argv)
    if args.action == "collect":
        print(collect(args.name, args.runs, args.command))
    elif args.action == "collect-compact":
        rows = []
        for spec in args.files:
            label, _, file = spec.partition("=")
            scene, _, recipe = label.partition(":")
            row = {"scene": scene, "recipe": recipe, **json.loads(Path(file).read_text())}
            for adc_spec in args.adc_run:
                adc_scene, _, run = adc_spec.partition("=")
                if adc_scene == scene:
                    adc = json.loads((Path(run) / "metrics.json").read_text())
                    row["adc_inria_ply_bytes"] = adc["num_gaussians"] * 248  # SH degree 3: 62 float32
                    row["adc_psnr"] = adc["psnr"]
            rows.append(row)
        print(_write_results(args.name, args.command, rows))
    elif args.action == "collect-process":
        rows = [{"capture": label, **json.loads(Path(file).read_text())}
                for label, _, file in (spec.partition("=") for spec in args.files)]
        print(_write_results(args.name, args.command, rows))
    elif args.action == "write":
        for page in write():
            print(f"rewrote {page}")
    else:
        stale = check()
        for line in stale:
            print(f"stale table: {line}", file=sys.stderr)
        return 1 if stale else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
