"""The README's picture: a held-out view of the demo, its ground truth beside the trained and the pruned scene.

    python scripts/docs_figure.py [--out-dir results/docs_figure] [--rerun]

Trains the built-in demo twice with the defaults (`gspruner train`), once plain and once with `prune:rounds`
(reusing a run whose metrics.json exists unless --rerun), takes the test view farthest from the capture path
(the first of `off_path_views`), and writes docs/img/demo_pruned.png (ground truth | trained | pruned, 2×
nearest-neighbour) and docs/results/figure.json (both runs' metrics, for the table in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
RUNS = {"trained": [], "pruned": ["prune:rounds"]}
COMMAND = "python scripts/docs_figure.py: gspruner train [prune:rounds] (the demo, defaults)"


def train(result_dir: Path, extra: list[str], rerun: bool) -> dict:
    metrics = result_dir / "metrics.json"
    if rerun or not metrics.is_file():
        subprocess.run([sys.executable, "-m", "gspruner.cli", "train", "--result-dir", str(result_dir),
                        "--overwrite", "--no-progress", *extra], check=True)
    return json.loads(metrics.read_text())


def halves(png: Path) -> tuple[np.ndarray, np.ndarray]:
    """(render, ground truth) of an evaluation PNG (render left, ground truth right)."""
    both = np.asarray(Image.open(png).convert("RGB"))
    width = both.shape[1] // 2
    return both[:, :width], both[:, width:]


def labelled(image: np.ndarray, text: str, scale: int = 2) -> Image.Image:
    tile = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale), Image.NEAREST)
    canvas = Image.new("RGB", (tile.width, tile.height + 16), "white")
    canvas.paste(tile, (0, 16))
    ImageDraw.Draw(canvas).text((2, 2), text, fill="black")
    return canvas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=ROOT / "results" / "docs_figure")
    parser.add_argument("--rerun", action="store_true", help="train again even where metrics.json exists")
    args = parser.parse_args(argv)

    metrics = {name: train(args.out_dir / name, extra, args.rerun) for name, extra in RUNS.items()}
    view = Path(metrics["trained"]["off_path_views"][0]).stem
    renders = {name: next((args.out_dir / name / "renders").glob(f"test_*_{view}.png")) for name in RUNS}
    trained, truth = halves(renders["trained"])
    pruned, _ = halves(renders["pruned"])
    tiles = [labelled(truth, "ground truth"),
             labelled(trained, f"trained: {metrics['trained']['num_gaussians']:,} Gaussians"),
             labelled(pruned, f"pruned: {metrics['pruned']['num_gaussians']:,} Gaussians")]
    figure = Image.new("RGB", (sum(t.width for t in tiles) + 4 * (len(tiles) - 1), tiles[0].height), "white")
    x = 0
    for tile in tiles:
        figure.paste(tile, (x, 0))
        x += tile.width + 4
    out = ROOT / "docs" / "img" / "demo_pruned.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.save(out, optimize=True)

    spec = importlib.util.spec_from_file_location("docs_tables", ROOT / "scripts" / "docs_tables.py")
    docs_tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(docs_tables)
    results = docs_tables.collect("figure", [f"{args.out_dir / name}=demo, view {view}:{name} "
                                             f"({metrics[name]['strategy']}, prune {metrics[name]['prune']})"
                                             for name in RUNS], COMMAND)
    print(f"wrote {out} and {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
