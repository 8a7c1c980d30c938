"""Markdown reports with PNG plots: one training run, one benchmark scene, and the average over scenes.

Everything is rebuilt from the files on disk, so a report can be regenerated at any time:

- a training run `R/`: metrics.json + log.jsonl -> R/report.md, R/report/{loss,psnr,gaussians}.png;
- a benchmark scene `S/` (scripts/benchmark.py): S/benchmark.json, and per method S/<method>/ with the
  run's files and benchmark_run.json (command, error, peak memory, export sizes) -> S/report.md, S/plots/;
- a benchmark root `B/` holding scene folders -> B/report.md, averaged over scenes, with the published
  Mip-NeRF 360 numbers (gspruner/published.py) beside ours when the scenes are Mip-NeRF 360 scenes.

matplotlib is imported inside the plotting functions (Agg backend), so importing this module stays light.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from .errors import InputError

REPORT_NAME = "report.md"
BENCHMARK_FILE = "benchmark.json"
METHOD_RUN_FILE = "benchmark_run.json"
REFERENCE_METHOD = "default"
EXPORT_FORMATS = ("ply", "compressed-ply", "spz")
SIZE_FORMAT = "ply"  # the file the "size ×" column and the Pareto plot use (lossless; ∝ Gaussians × SH)
MISSING = "–"


# -- reading -------------------------------------------------------------------------------------
def read_json(path: Path) -> Optional[dict]:
    """The JSON object in `path`, or None when the file is absent or unreadable."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def read_log(path: Path) -> list[dict]:
    """log.jsonl rows sorted by step; for a step logged twice (a resumed run) the later line wins."""
    by_step: dict[int, dict] = {}
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut short by a crash
        if isinstance(row, dict) and "step" in row:
            by_step[int(row["step"])] = row
    return [by_step[s] for s in sorted(by_step)]


@dataclass
class MethodResult:
    """What one method left in a benchmark scene folder."""

    method: str
    """Method spec, strategy[+pruner]."""
    metrics: Optional[dict] = None
    """metrics.json (None when the run did not finish)."""
    run: dict = field(default_factory=dict)
    """benchmark_run.json: command, returncode, error, peak_rss_mb, wall_seconds, exports, export_errors."""
    log: list = field(default_factory=list)
    """log.jsonl rows."""
    scenes: Optional[tuple[int, int]] = None
    """Aggregates only: (scenes where the method finished, scenes in all)."""

    @property
    def ok(self) -> bool:
        return self.metrics is not None

    @property
    def error(self) -> Optional[str]:
        if self.ok:
            return None
        return self.run.get("error") or "not run (no metrics.json)"

    def get(self, key: str):
        return (self.metrics or {}).get(key)

    def file_mb(self, fmt: str) -> Optional[float]:
        """Size of the exported `fmt` file; the ply falls back to the run's point_cloud.ply."""
        exported = (self.run.get("exports") or {}).get(fmt)
        if exported and exported.get("mb") is not None:
            return exported["mb"]
        if fmt == "ply":
            return self.get("ply_mb")
        return None

    def prune_ratio(self) -> tuple[Optional[float], bool]:
        """(ratio, learned): learned_prune_ratio when the pruner reports one, else prune_ratio."""
        learned = self.get("learned_prune_ratio")
        if learned is not None:
            return learned, True
        return self.get("prune_ratio"), False

    def peak_rss_mb(self) -> Optional[float]:
        return self.run.get("peak_rss_mb")

    def peak_gpu_mb(self) -> Optional[float]:
        return self.get("peak_gpu_mb")


def load_method_result(method_dir: Path, method: str) -> MethodResult:
    method_dir = Path(method_dir)
    return MethodResult(
        method=method,
        metrics=read_json(method_dir / "metrics.json"),
        run=read_json(method_dir / METHOD_RUN_FILE) or {},
        log=read_log(method_dir / "log.jsonl"),
    )


# -- numbers -------------------------------------------------------------------------------------
def ratios_to_reference(result: MethodResult, reference: Optional[MethodResult]) -> dict:
    """time ×, Gaussians ×, size × (SIZE_FORMAT file) and ΔPSNR of `result` against `reference`;
    None where either side lacks the number."""

    def ratio(a, b):
        if a is None or b is None or b == 0:
            return None
        return a / b

    if reference is None or not reference.ok or not result.ok:
        return {"time_x": None, "gaussians_x": None, "size_x": None, "delta_psnr": None}
    psnr, ref_psnr = result.get("psnr"), reference.get("psnr")
    return {
        "time_x": ratio(result.get("train_seconds"), reference.get("train_seconds")),
        "gaussians_x": ratio(result.get("num_gaussians"), reference.get("num_gaussians")),
        "size_x": ratio(result.file_mb(SIZE_FORMAT), reference.file_mb(SIZE_FORMAT)),
        "delta_psnr": None if psnr is None or ref_psnr is None else psnr - ref_psnr,
    }


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (size, quality) that no other point beats: smaller-or-equal size and
    higher-or-equal quality, better in at least one. Sorted by size. Equal points are both kept."""
    front = []
    for i, (size_i, q_i) in enumerate(points):
        dominated = any(
            size_j <= size_i and q_j >= q_i and (size_j < size_i or q_j > q_i)
            for j, (size_j, q_j) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def _mean(values: Iterable) -> Optional[float]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else None


# -- formatting ----------------------------------------------------------------------------------
def fmt_number(value, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return MISSING
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1000):
        return f"{int(value):,}{suffix}"
    return f"{value:.{digits}f}{suffix}"


def fmt_signed(value, digits: int = 2) -> str:
    return MISSING if value is None else f"{value:+.{digits}f}"


def fmt_times(value) -> str:
    return MISSING if value is None else f"{value:.2f}×"


def escape_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(escape_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _lpips_header(results: list[MethodResult]) -> tuple[str, bool]:
    """Column title naming the LPIPS network; (title, per_cell) where per_cell: nets differ across rows."""
    nets = {r.get("lpips_net") for r in results if r.ok and r.get("lpips") is not None}
    if len(nets) == 1:
        return f"LPIPS ({nets.pop()})", False
    return "LPIPS", len(nets) > 1


def benchmark_table(results: list[MethodResult], reference: Optional[MethodResult]) -> str:
    """The per-method table: metrics, sizes, memory, ratios to the reference row, status."""
    lpips_title, lpips_per_cell = _lpips_header(results)
    with_gpu = any(r.peak_gpu_mb() is not None for r in results)
    with_scenes = any(r.scenes is not None for r in results)
    header = ["method"] + (["scenes"] if with_scenes else []) + [
        "PSNR", "SSIM", lpips_title, "Gaussians", "prune ratio", "train s", "render FPS",
        "ply MB", "compressed-ply MB", "spz MB", "peak RSS MB"] + (["peak GPU MB"] if with_gpu else []) + [
        "time ×", "Gaussians ×", "size ×", "ΔPSNR", "status"]
    rows = []
    for r in results:
        is_reference = reference is not None and r.method == reference.method
        ratios = ratios_to_reference(r, reference)
        ratio, learned = r.prune_ratio()
        lpips = fmt_number(r.get("lpips"), 3)
        if lpips_per_cell and r.get("lpips") is not None:
            lpips += f" ({r.get('lpips_net')})"
        cells = [r.method + (" (reference)" if is_reference else "")]
        if with_scenes:
            cells.append(f"{r.scenes[0]}/{r.scenes[1]}" if r.scenes else MISSING)
        cells += [
            fmt_number(r.get("psnr"), 2), fmt_number(r.get("ssim"), 3), lpips,
            fmt_number(None if r.get("num_gaussians") is None else round(r.get("num_gaussians"))),
            MISSING if ratio is None else f"{ratio:.2f}" + (" (learned)" if learned else ""),
            fmt_number(r.get("train_seconds"), 1), fmt_number(r.get("render_fps"), 1),
            fmt_number(r.file_mb("ply"), 2), fmt_number(r.file_mb("compressed-ply"), 2),
            fmt_number(r.file_mb("spz"), 2), fmt_number(r.peak_rss_mb(), 0),
        ]
        if with_gpu:
            cells.append(fmt_number(r.peak_gpu_mb(), 0))
        if is_reference:
            cells += ["ref", "ref", "ref", "ref"]
        else:
            cells += [fmt_times(ratios["time_x"]), fmt_times(ratios["gaussians_x"]), fmt_times(ratios["size_x"]),
                      fmt_signed(ratios["delta_psnr"])]
        status = "ok" if r.ok else f"failed: {r.error}"
        export_errors = r.run.get("export_errors") or {}
        if r.ok and export_errors:
            status += "; export failed: " + "; ".join(f"{k}: {v}" for k, v in export_errors.items())
        if r.ok and r.run.get("scene_errors"):
            status += "; failed on " + "; ".join(f"{k}: {v}" for k, v in r.run["scene_errors"].items())
        cells.append(status)
        rows.append(cells)
    return markdown_table(header, rows)


# -- plots ---------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt



def _save_figure(plt, fig, path: Path) -> Path:
    """Write `fig` as PNG at `path` and free it."""
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

def plot_curve(log: list[dict], key: str, label: str, path: Path, log_y: bool = False) -> Optional[Path]:
    """`key` over steps from one run's log; None when the log has no such values."""
    pts = [(row["step"], row[key]) for row in log if row.get(key) is not None]
    if not pts:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="." if len(pts) < 50 else None)
    ax.set_xlabel("step")
    ax.set_ylabel(label)
    if log_y and all(p[1] > 0 for p in pts):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    return _save_figure(plt, fig, path)


def plot_psnr_vs_size(results: list[MethodResult], path: Path) -> Optional[Path]:
    """Test PSNR against SIZE_FORMAT file MB, one point per method, the Pareto front drawn through."""
    done = [r for r in results if r.ok and r.get("psnr") is not None and r.file_mb(SIZE_FORMAT) is not None]
    if not done:
        return None
    plt = _pyplot()
    points = [(r.file_mb(SIZE_FORMAT), r.get("psnr")) for r in done]
    front = pareto_front(points)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for i, (r, (x, y)) in enumerate(zip(done, points)):
        ax.scatter([x], [y], s=40, zorder=3, color="tab:red" if i in front else "tab:blue")
        ax.annotate(r.method, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.plot([points[i][0] for i in front], [points[i][1] for i in front], color="tab:red", linestyle="--",
            label="Pareto front (smaller and better)", zorder=2)
    ax.set_xlabel(f"{SIZE_FORMAT} file MB")
    ax.set_ylabel("test PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save_figure(plt, fig, path)


def plot_psnr_vs_time(results: list[MethodResult], path: Path) -> Optional[Path]:
    done = [r for r in results if r.ok and r.get("psnr") is not None and r.get("train_seconds") is not None]
    if not done:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for r in done:
        ax.scatter([r.get("train_seconds")], [r.get("psnr")], s=40)
        ax.annotate(r.method, (r.get("train_seconds"), r.get("psnr")), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    ax.set_xlabel("train seconds")
    ax.set_ylabel("test PSNR (dB)")
    ax.grid(alpha=0.3)
    return _save_figure(plt, fig, path)


def plot_delta_psnr_vs_gaussians(per_scene: dict[str, list[MethodResult]], path: Path) -> Optional[Path]:
    """ΔPSNR against each scene's reference over Gaussians × (log), one colour per method, one marker per scene."""
    series = {}
    for scene, results in per_scene.items():
        reference = reference_of(results)
        for r in results:
            ratios = ratios_to_reference(r, reference)
            if r.ok and ratios["gaussians_x"] is not None and ratios["delta_psnr"] is not None:
                series.setdefault(r.method, []).append((scene, ratios["gaussians_x"], ratios["delta_psnr"]))
    if not series:
        return None
    plt = _pyplot()
    markers = dict(zip(per_scene, "osD^vP*Xh<>"))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for i, (method, pts) in enumerate(series.items()):
        for scene, gx, dp in pts:
            ax.scatter([gx], [dp], color=colours[i % len(colours)], marker=markers.get(scene, "o"), s=45, zorder=3)
        ax.plot([], [], color=colours[i % len(colours)], marker="o", linestyle="", label=method)
    for scene, marker in markers.items():
        ax.plot([], [], color="gray", marker=marker, linestyle="", label=scene)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel(f"Gaussians × (final count / the scene's {REFERENCE_METHOD})")
    ax.set_ylabel(f"ΔPSNR against {REFERENCE_METHOD} (dB)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    return _save_figure(plt, fig, path)


def plot_gaussians_over_steps(results: list[MethodResult], path: Path) -> Optional[Path]:
    """One line per method from its log.jsonl."""
    logged = [r for r in results if any(row.get("num_gaussians") is not None for row in r.log)]
    if not logged:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    styles = ("-", "--", "-.", ":")  # methods that share a schedule overlap: keep each one visible
    for i, r in enumerate(logged):
        pts = [(row["step"], row["num_gaussians"]) for row in r.log if row.get("num_gaussians") is not None]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=r.method, linestyle=styles[i % len(styles)])
    ax.set_xlabel("step")
    ax.set_ylabel("Gaussians")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save_figure(plt, fig, path)


def _image_links(paths: list[Optional[Path]], base: Path, titles: list[str]) -> list[str]:
    lines = []
    for p, title in zip(paths, titles):
        if p is not None:
            lines += [f"### {title}", "", f"![{title}]({p.relative_to(base).as_posix()})", ""]
    return lines


# -- one training run ----------------------------------------------------------------------------
RUN_METRIC_KEYS = (
    "psnr", "ssim", "lpips", "lpips_net", "num_gaussians", "num_gaussians_before_prune", "prune_ratio",
    "learned_prune_ratio", "train_seconds", "steps", "strategy", "prune", "render_fps", "ply_mb", "peak_gpu_mb",
    "device", "data_dir", "data_factor", "split", "num_views",
)


def write_run_report(result_dir: Path) -> Path:
    """R/report.md: the run's metrics and its loss / train-PSNR / Gaussian-count curves (R/report/*.png)."""
    r = Path(result_dir)
    metrics = read_json(r / "metrics.json")
    log = read_log(r / "log.jsonl")
    if metrics is None and not log:
        raise InputError(f"{r}: no metrics.json or log.jsonl (not a training result dir)")
    lines = [f"# Run report: {r.name}", "", f"Result dir: `{r}`", ""]
    if metrics is None:
        lines += ["No metrics.json: the run did not finish; curves from log.jsonl only.", ""]
    else:
        keys = [k for k in RUN_METRIC_KEYS if k in metrics] + sorted(k for k in metrics if k not in RUN_METRIC_KEYS)
        rows = [[k, fmt_number(v, 4) if isinstance(v, float) else (MISSING if v is None else str(v))]
                for k, v in ((k, metrics[k]) for k in keys)]
        lines += ["## Metrics", "", markdown_table(["metric", "value"], rows), ""]
    if log:
        last = log[-1]
        lines += [f"log.jsonl: {len(log)} rows, steps {log[0]['step']}–{last['step']}"
                  + (f", {last['seconds']:.1f} s at the last row" if last.get("seconds") is not None else ""), ""]
        plots = r / "report"
        pngs = [plot_curve(log, "loss", "training loss", plots / "loss.png", log_y=True),
                plot_curve(log, "psnr", "train-view PSNR (dB)", plots / "psnr.png"),
                plot_curve(log, "num_gaussians", "Gaussians", plots / "gaussians.png")]
        lines += ["## Curves", ""] + _image_links(pngs, r, ["Loss", "PSNR on the training view", "Gaussian count"])
    out = r / REPORT_NAME
    out.write_text("\n".join(lines).rstrip() + "\n")
    return out


# -- one benchmark scene -------------------------------------------------------------------------
def load_scene_results(scene_dir: Path) -> tuple[dict, list[MethodResult]]:
    """benchmark.json and a MethodResult per listed method, in the listed order."""
    scene_dir = Path(scene_dir)
    info = read_json(scene_dir / BENCHMARK_FILE)
    if info is None:
        raise InputError(f"{scene_dir / BENCHMARK_FILE}: missing or unreadable (not a benchmark scene folder)")
    results = [load_method_result(scene_dir / m, m) for m in info.get("methods", [])]
    return info, results


def reference_of(results: list[MethodResult], name: str = REFERENCE_METHOD) -> Optional[MethodResult]:
    return next((r for r in results if r.method == name), None)


def _notes(results: list[MethodResult], reference: Optional[MethodResult]) -> list[str]:
    notes = [
        f"- Reference row: `{REFERENCE_METHOD}`. time × = train seconds / reference, Gaussians × = final count / "
        f"reference, size × = {SIZE_FORMAT} MB / reference, ΔPSNR = PSNR − reference PSNR (dB).",
        "- PSNR / SSIM / LPIPS on the test split; render FPS = test views rendered per second at the test "
        "resolution (from the run's evaluation); prune ratio = learned_prune_ratio when the pruner learns it.",
        "- peak RSS = the training process' maximum resident memory (os.wait4); peak GPU = "
        "torch.cuda.max_memory_allocated (CUDA runs).",
    ]
    if reference is None or not reference.ok:
        notes.append(f"- The reference `{REFERENCE_METHOD}` did not finish, so the ratio columns are empty.")
    return notes


def _commands_section(results: list[MethodResult]) -> list[str]:
    lines = []
    for r in results:
        cmd = r.run.get("command")
        if cmd:
            lines.append(f"- `{r.method}`: `{' '.join(str(c) for c in cmd)}`")
        for note in r.run.get("notes", []):
            lines.append(f"  - {note}")
    return (["## Commands", ""] + lines + [""]) if lines else []


def write_scene_report(scene_dir: Path) -> Path:
    """S/report.md with the table and S/plots/{psnr_vs_size,psnr_vs_time,gaussians_vs_step}.png."""
    scene_dir = Path(scene_dir)
    info, results = load_scene_results(scene_dir)
    reference = reference_of(results)
    plots = scene_dir / "plots"
    pngs = [plot_psnr_vs_size(results, plots / "psnr_vs_size.png"),
            plot_psnr_vs_time(results, plots / "psnr_vs_time.png"),
            plot_gaussians_over_steps(results, plots / "gaussians_vs_step.png")]
    front = _front_methods(results)
    lines = [
        f"# Benchmark: {info.get('scene', scene_dir.name)}", "",
        f"data: `{info.get('data_dir') or 'demo scene'}`, data factor {info.get('data_factor')}, "
        f"test every {info.get('test_every')}th image, {info.get('max_steps') or 'default'} steps, "
        f"device {_devices(results) or info.get('device')}", "",
        benchmark_table(results, reference), "",
    ] + _notes(results, reference) + [""]
    if front:
        lines += [f"Pareto front (PSNR vs {SIZE_FORMAT} size): " + ", ".join(f"`{m}`" for m in front), ""]
    lines += ["## Plots", ""] + _image_links(
        pngs, scene_dir, [f"PSNR vs {SIZE_FORMAT} file size", "PSNR vs train time", "Gaussians over training steps"])
    lines += _commands_section(results)
    out = scene_dir / REPORT_NAME
    out.write_text("\n".join(lines).rstrip() + "\n")
    return out


def _front_methods(results: list[MethodResult]) -> list[str]:
    done = [r for r in results if r.ok and r.get("psnr") is not None and r.file_mb(SIZE_FORMAT) is not None]
    return [done[i].method for i in pareto_front([(r.file_mb(SIZE_FORMAT), r.get("psnr")) for r in done])]


def _devices(results: list[MethodResult]) -> str:
    return ", ".join(sorted({str(r.get("device")) for r in results if r.ok and r.get("device")}))


# -- across scenes -------------------------------------------------------------------------------
AVERAGED_METRICS = ("psnr", "ssim", "lpips", "num_gaussians", "prune_ratio", "learned_prune_ratio", "train_seconds",
                    "render_fps", "ply_mb", "peak_gpu_mb")


def average_results(method: str, per_scene: dict[str, MethodResult]) -> MethodResult:
    """Means over the scenes where `method` finished (`scenes` says how many of how many; the others'
    errors are kept, by scene, in run["scene_errors"])."""
    done = [r for r in per_scene.values() if r.ok]
    scenes = (len(done), len(per_scene))
    scene_errors = {name: r.error for name, r in per_scene.items() if not r.ok}
    if not done:
        errors = "; ".join(sorted(set(scene_errors.values())))
        return MethodResult(method, None, {"error": errors or "no scene finished"}, [], scenes)
    metrics = {k: _mean(r.get(k) for r in done) for k in AVERAGED_METRICS}
    nets = {r.get("lpips_net") for r in done if r.get("lpips") is not None}
    metrics["lpips_net"] = nets.pop() if len(nets) == 1 else None
    metrics["device"] = ", ".join(sorted({str(r.get("device")) for r in done}))
    run = {
        "scene_errors": scene_errors,
        "peak_rss_mb": _mean(r.peak_rss_mb() for r in done),
        "exports": {fmt: {"mb": _mean(r.file_mb(fmt) for r in done)} for fmt in EXPORT_FORMATS},
    }
    return MethodResult(method, metrics, run, [], scenes)


def scene_dirs(root: Path) -> list[Path]:
    """Scene folders (holding benchmark.json) directly under a benchmark root, sorted by name."""
    return sorted(p for p in Path(root).iterdir() if p.is_dir() and (p / BENCHMARK_FILE).is_file())


def _published_table(published, ours: dict[str, MethodResult]) -> str:
    header = ["method", "source", "hardware", "scenes", "PSNR", "SSIM", "LPIPS", "Gaussians", "prune ratio",
              "train min", "FPS", "storage MB", "peak mem GB", "note"]
    rows = []
    order = list(ours) + sorted({p.ours for p in published} - set(ours))
    def as_published(value) -> str:  # as precise as the source printed it
        return MISSING if value is None else f"{value:g}"

    for method in order:
        r = ours.get(method)
        scenes = f"{r.scenes[0]} of {r.scenes[1]} ours" if r is not None and r.scenes else MISSING
        if r is not None and r.ok:
            ratio, _ = r.prune_ratio()
            n = r.get("num_gaussians")
            gpu, rss = r.peak_gpu_mb(), r.peak_rss_mb()
            memory = (fmt_number(gpu / 1e3, 2) + " (GPU)" if gpu is not None
                      else fmt_number(None if rss is None else rss / 1e3, 2) + (" (RSS)" if rss is not None else ""))
            rows.append([f"**{method} (ours)**", "this benchmark", f"this machine ({_devices([r]) or '?'})", scenes,
                         fmt_number(r.get("psnr"), 2), fmt_number(r.get("ssim"), 3),
                         fmt_number(r.get("lpips"), 3) + (f" ({r.get('lpips_net')})" if r.get("lpips_net") else ""),
                         fmt_number(None if n is None else round(n)), fmt_number(ratio, 2),
                         fmt_number(None if r.get("train_seconds") is None else r.get("train_seconds") / 60, 2),
                         fmt_number(r.get("render_fps"), 1), fmt_number(r.file_mb("ply"), 1), memory,
                         "storage: our ply file"])
        elif r is not None:
            rows.append([f"**{method} (ours)**", "this benchmark", "this machine", scenes] + [MISSING] * 9
                        + [f"failed: {r.error}"])
        for p in published:
            if p.ours != method:
                continue
            rows.append([p.method, p.source, p.hardware, p.scenes, as_published(p.psnr), as_published(p.ssim),
                         as_published(p.lpips), fmt_number(None if p.num_gaussians is None else round(p.num_gaussians)),
                         as_published(p.prune_ratio), fmt_number(p.train_minutes, 2), as_published(p.fps),
                         as_published(p.storage_mb), as_published(p.peak_memory_gb), p.note])
    return markdown_table(header, rows)


def _relative_table(methods: list[str], per_scene: dict[str, list[MethodResult]]) -> str:
    """method × scene cells "ΔPSNR / Gaussians× / time×" and their mean (ΔPSNR) / geometric mean (ratios)."""
    rows = []
    for method in methods:
        cells, deltas, gxs, txs = [method], [], [], []
        for results in per_scene.values():
            r = next((x for x in results if x.method == method), None)
            reference = reference_of(results)
            if r is None or not r.ok or reference is None or not reference.ok:
                cells.append(MISSING if r is None or r.ok else "failed")
                continue
            q = ratios_to_reference(r, reference)
            ratio, learned = r.prune_ratio()
            cells.append(f"{fmt_signed(q['delta_psnr'])} / {fmt_times(q['gaussians_x'])} / {fmt_times(q['time_x'])}"
                         + (f" (ratio {ratio:.2f}{' learned' if learned else ''})" if ratio is not None else ""))
            deltas.append(q["delta_psnr"])
            gxs.append(q["gaussians_x"])
            txs.append(q["time_x"])
        geo = lambda xs: None if not xs or any(x is None or x <= 0 for x in xs) else math.exp(sum(map(math.log, xs)) / len(xs))  # noqa: E731
        cells.append(f"{fmt_signed(_mean(deltas))} / {fmt_times(geo(gxs))} / {fmt_times(geo(txs))}" if deltas else MISSING)
        rows.append(cells)
    return markdown_table(["method"] + list(per_scene) + ["mean"], rows)


def write_aggregate_report(root: Path, published: Optional[str] = "auto") -> Path:
    """B/report.md: each method averaged over the scene folders under B; with `published` "mipnerf360"
    (or "auto" and every scene a Mip-NeRF 360 scene) the published numbers are printed beside ours."""
    from .published import MIPNERF360_PUBLISHED, MIPNERF360_SCENES

    root = Path(root)
    scenes = scene_dirs(root)
    if not scenes:
        raise InputError(f"{root}: no scene folders with {BENCHMARK_FILE}")
    per_scene = {s.name: load_scene_results(s) for s in scenes}
    methods: list[str] = []
    for info, _ in per_scene.values():
        methods += [m for m in info.get("methods", []) if m not in methods]
    averaged = []
    for method in methods:
        results = {name: next(r for r in rs if r.method == method) for name, (info, rs) in per_scene.items()
                   if method in info.get("methods", [])}
        averaged.append(average_results(method, results))
    reference = reference_of(averaged)
    lines = [f"# Benchmark over {len(scenes)} scene{'s' if len(scenes) != 1 else ''}", "",
             "Scenes: " + ", ".join(f"[{s.name}]({s.name}/{REPORT_NAME})" for s in scenes), "",
             "Each number is the mean over the scenes where the method finished (`scenes` column); the ratio "
             "columns compare those means with the reference's means.", "",
             benchmark_table(averaged, reference), ""] + _notes(averaged, reference) + [""]
    lines += ["## Against the reference, per scene", "",
              f"ΔPSNR (dB) / Gaussians × / time × of each method against the same scene's `{REFERENCE_METHOD}` run; "
              "the last column averages ΔPSNR and takes the geometric mean of the ratios.", "",
              _relative_table(methods, {name: rs for name, (_, rs) in per_scene.items()}), ""]
    png = plot_delta_psnr_vs_gaussians({name: rs for name, (_, rs) in per_scene.items()}, root / "plots" / "delta_psnr_vs_gaussians.png")
    lines += _image_links([png], root, ["ΔPSNR vs Gaussians ×, every scene"])
    lines += ["## Per scene", ""]
    for name, (info, results) in per_scene.items():
        rows = [[r.method, fmt_number(r.get("psnr"), 2), fmt_number(r.get("ssim"), 3), fmt_number(r.get("lpips"), 3),
                 fmt_number(r.get("num_gaussians")), fmt_number(r.get("train_seconds"), 1),
                 fmt_number(r.file_mb(SIZE_FORMAT), 2), "ok" if r.ok else f"failed: {r.error}"] for r in results]
        lines += [f"### {name} (data factor {info.get('data_factor')})", "",
                  markdown_table(["method", "PSNR", "SSIM", "LPIPS", "Gaussians", "train s", f"{SIZE_FORMAT} MB",
                                  "status"], rows), ""]
    show_published = published == "mipnerf360" or (
        published == "auto" and all(s.name in MIPNERF360_SCENES for s in scenes))
    if show_published:
        lines += ["## Published Mip-NeRF 360 numbers beside ours", "",
                  "Published rows are copied from ../shared/docs/methods.md (source table named per row); times, FPS "
                  "and memory are for the hardware named, and the papers' LPIPS conventions differ, so compare "
                  "quality columns only, and only on the same scene set.", "",
                  _published_table(MIPNERF360_PUBLISHED, {r.method: r for r in averaged}), ""]
    out = root / REPORT_NAME
    out.write_text("\n".join(lines).rstrip() + "\n")
    return out


def write_report(path: Path) -> Path:
    """`gspruner report R`: a run dir, a benchmark scene folder or a benchmark root, whichever R is."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a directory")
    if (path / BENCHMARK_FILE).is_file():
        return write_scene_report(path)
    if (path / "metrics.json").is_file() or (path / "log.jsonl").is_file():
        return write_run_report(path)
    if scene_dirs(path):
        return write_aggregate_report(path)
    raise InputError(f"{path}: holds no metrics.json / log.jsonl (a run), {BENCHMARK_FILE} (a benchmark scene) "
                     "or benchmark scene folders")
