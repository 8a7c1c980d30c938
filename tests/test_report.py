"""Reports on fabricated result dirs: ratio columns, Pareto front, failed rows, run reports, aggregates."""

import json
from pathlib import Path

import pytest

from gspruner.cli import main
from gspruner.errors import InputError
from gspruner.report import (
    MethodResult, benchmark_table, pareto_front, ratios_to_reference, read_log, write_aggregate_report,
    write_report, write_run_report, write_scene_report,
)


def write_run(method_dir: Path, psnr=None, seconds=None, gaussians=None, ply_mb=None, steps=100, error=None,
              learned_ratio=None, peak_rss_mb=500.0):
    """A method folder as scripts/benchmark.py leaves it; psnr None -> a failed run (no metrics.json)."""
    method_dir.mkdir(parents=True)
    if psnr is not None:
        metrics = {"psnr": psnr, "ssim": 0.9, "lpips": 0.1, "lpips_net": "alex", "num_gaussians": gaussians,
                   "prune_ratio": None, "train_seconds": seconds, "steps": steps, "render_fps": 10.0,
                   "ply_mb": ply_mb, "device": "cpu"}
        if learned_ratio is not None:
            metrics["learned_prune_ratio"] = learned_ratio
        (method_dir / "metrics.json").write_text(json.dumps(metrics))
        rows = [{"step": s, "loss": 0.5 / (1 + s), "psnr": 10 + s / 10, "num_gaussians": gaussians // 2 + s,
                 "seconds": s / 10} for s in range(0, steps, 25)]
        (method_dir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = {"method": method_dir.name, "command": ["-m", "gspruner.cli", "train"], "returncode": 0 if error is None else 2,
           "error": error, "peak_rss_mb": peak_rss_mb,
           "exports": {} if psnr is None else {"ply": {"mb": ply_mb}, "compressed-ply": {"mb": ply_mb / 4},
                                               "spz": {"mb": ply_mb / 10}}}
    (method_dir / "benchmark_run.json").write_text(json.dumps(run))


def fabricate_scene(root: Path, name="fox") -> Path:
    scene = root / name
    write_run(scene / "default", psnr=25.0, seconds=100.0, gaussians=10_000, ply_mb=2.0)
    write_run(scene / "default+lightgaussian", psnr=24.5, seconds=80.0, gaussians=3_400, ply_mb=0.68)
    write_run(scene / "default+lp3dgs", psnr=24.8, seconds=120.0, gaussians=4_000, ply_mb=0.8, learned_ratio=0.6)
    write_run(scene / "fastgs", error="invalid choice 'fastgs' for argument '--strategy'")
    (scene / "benchmark.json").write_text(json.dumps({
        "scene": name, "data_dir": f"/data/{name}", "data_factor": 8, "test_every": 8, "max_steps": 100,
        "device": "auto", "methods": ["default", "fastgs", "default+lightgaussian", "default+lp3dgs"]}))
    return scene


def table_rows(markdown: str) -> dict[str, dict[str, str]]:
    """The first markdown table as {method: {column: cell}}."""
    lines = [line for line in markdown.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) != len(header):
            break  # the next table
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def test_ratio_columns_against_default(tmp_path):
    scene = fabricate_scene(tmp_path)
    rows = table_rows(write_scene_report(scene).read_text())
    ref = rows["default (reference)"]
    assert ref["time ×"] == ref["ΔPSNR"] == "ref"
    lg = rows["default+lightgaussian"]
    assert lg["time ×"] == "0.80×" and lg["Gaussians ×"] == "0.34×" and lg["size ×"] == "0.34×"
    assert lg["ΔPSNR"] == "-0.50" and lg["prune ratio"] == "–"
    lp = rows["default+lp3dgs"]
    assert lp["time ×"] == "1.20×" and lp["Gaussians ×"] == "0.40×" and lp["ΔPSNR"] == "-0.20"
    assert lp["prune ratio"] == "0.60 (learned)"
    assert lg["ply MB"] == "0.68" and lg["compressed-ply MB"] == "0.17" and lg["spz MB"] == "0.07"
    assert "LPIPS (alex)" in lg and lg["peak RSS MB"] == "500"


def test_ratios_to_reference_numbers():
    ref = MethodResult("default", {"psnr": 30.0, "train_seconds": 200.0, "num_gaussians": 1000, "ply_mb": 4.0})
    other = MethodResult("x", {"psnr": 29.5, "train_seconds": 50.0, "num_gaussians": 250, "ply_mb": 1.0})
    r = ratios_to_reference(other, ref)
    assert r == {"time_x": 0.25, "gaussians_x": 0.25, "size_x": 0.25, "delta_psnr": -0.5}
    assert ratios_to_reference(MethodResult("failed", None, {"error": "boom"}), ref)["time_x"] is None
    assert ratios_to_reference(other, None)["delta_psnr"] is None


def test_failed_method_is_a_row_with_its_error(tmp_path):
    scene = fabricate_scene(tmp_path)
    text = write_scene_report(scene).read_text()
    rows = table_rows(text)
    assert list(rows) == ["default (reference)", "fastgs", "default+lightgaussian", "default+lp3dgs"]
    failed = rows["fastgs"]
    assert failed["status"] == "failed: invalid choice 'fastgs' for argument '--strategy'"
    assert failed["PSNR"] == failed["time ×"] == "–"
    assert rows["default+lp3dgs"]["status"] == "ok"


def test_pareto_front_on_hand_made_points():
    # (size MB, PSNR): 0 and 2 and 4 are optimal; 1 is beaten by 2 (smaller, better); 3 by 0; 5 ties 4 in
    # size with lower PSNR; 6 equals 2 exactly (kept: nothing is strictly better)
    points = [(1.0, 20.0), (3.0, 21.0), (2.0, 22.0), (1.5, 19.0), (4.0, 25.0), (4.0, 24.0), (2.0, 22.0)]
    assert pareto_front(points) == [0, 2, 6, 4]
    assert pareto_front([]) == []
    assert pareto_front([(5.0, 1.0)]) == [0]


def test_scene_report_plots_and_front(tmp_path):
    scene = fabricate_scene(tmp_path)
    text = write_scene_report(scene).read_text()
    for png in ("psnr_vs_size.png", "psnr_vs_time.png", "gaussians_vs_step.png"):
        assert (scene / "plots" / png).stat().st_size > 1000
        assert f"(plots/{png})" in text
    # default (2.0 MB, 25.0), lightgaussian (0.68, 24.5), lp3dgs (0.8, 24.8): all on the front
    assert "Pareto front (PSNR vs ply size): `default+lightgaussian`, `default+lp3dgs`, `default`" in text


def test_read_log_later_line_wins_and_skips_torn_lines(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"step": 0, "loss": 1.0}\n{"step": 50, "loss": 0.5}\n{"step": 50, "loss": 0.4}\n{"step": 7')
    assert read_log(p) == [{"step": 0, "loss": 1.0}, {"step": 50, "loss": 0.4}]
    assert read_log(tmp_path / "missing.jsonl") == []


def test_gspruner_report_on_a_run_dir(tmp_path):
    run = tmp_path / "run"
    write_run(run, psnr=27.0, seconds=12.0, gaussians=5000, ply_mb=1.2)
    assert main(["report", str(run)]) == 0
    text = (run / "report.md").read_text()
    assert "| psnr | 27.0000 |" in text and "| num_gaussians | 5000 |" in text
    for png in ("loss.png", "psnr.png", "gaussians.png"):
        assert (run / "report" / png).stat().st_size > 1000 and f"(report/{png})" in text


def test_gspruner_report_on_an_unfinished_run_uses_the_log(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "log.jsonl").write_text('{"step": 0, "loss": 0.3, "psnr": 12.0, "num_gaussians": 100, "seconds": 0.1}\n')
    out = write_run_report(run)
    assert "did not finish" in out.read_text()


def test_gspruner_report_rejects_a_folder_without_results(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "error:" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing")]) == 2
    with pytest.raises(InputError):
        write_report(tmp_path / "missing")


def test_gspruner_report_on_a_benchmark_scene(tmp_path):
    scene = fabricate_scene(tmp_path)
    assert main(["report", str(scene)]) == 0
    assert "# Benchmark: fox" in (scene / "report.md").read_text()


def test_aggregate_averages_scenes_and_prints_published_numbers(tmp_path):
    garden = fabricate_scene(tmp_path, "garden")
    room = fabricate_scene(tmp_path, "room")
    # room: default twice as slow, lightgaussian failed there
    for name, value in (("train_seconds", 300.0), ("psnr", 27.0)):
        m = json.loads((room / "default" / "metrics.json").read_text())
        m[name] = value
        (room / "default" / "metrics.json").write_text(json.dumps(m))
    (room / "default+lightgaussian" / "metrics.json").unlink()
    text = write_aggregate_report(tmp_path).read_text()
    rows = table_rows(text)
    ref = rows["default (reference)"]
    assert ref["scenes"] == "2/2" and ref["PSNR"] == "26.00" and ref["train s"] == "200.0"
    lg = rows["default+lightgaussian"]
    assert lg["scenes"] == "1/2" and lg["PSNR"] == "24.50" and lg["time ×"] == "0.40×" and lg["ΔPSNR"] == "-1.50"
    assert lg["status"] == "ok; failed on room: not run (no metrics.json)"
    assert rows["fastgs"]["status"].startswith("failed: invalid choice")
    assert "[garden](garden/report.md)" in text and "### room (data factor 8)" in text
    # against each scene's own default: garden 24.8 vs 25 dB, 0.40x Gaussians, 1.2x time; room 24.8 vs 27, 0.40x, 0.4x
    relative = text[text.index("## Against the reference, per scene"):]
    lp = table_rows(relative)["default+lp3dgs"]
    assert lp["garden"] == "-0.20 / 0.40× / 1.20× (ratio 0.60 learned)"
    assert lp["room"] == "-2.20 / 0.40× / 0.40× (ratio 0.60 learned)"
    assert lp["mean"] == "-1.20 / 0.40× / 0.69×"  # geometric mean of 1.2 and 0.4
    assert table_rows(relative)["default+lightgaussian"]["room"] == "failed"
    assert (tmp_path / "plots" / "delta_psnr_vs_gaussians.png").stat().st_size > 1000
    # published Mip-NeRF 360 rows, labelled with hardware, beside ours
    assert "## Published Mip-NeRF 360 numbers beside ours" in text
    for label in ("3DGS paper, Table 1 | A6000", "| TITAN RTX |", "| 2× A6000 |", "| RTX 4090 |", "| A100 |"):
        assert label in text
    assert "| 27.56 |" in text  # FastGS, Table 1
    assert "**default (ours)**" in text
    # scenes that are not Mip-NeRF 360 scenes: no published table unless asked
    other = tmp_path / "elsewhere"
    fabricate_scene(other, "fox")
    assert "Published" not in write_aggregate_report(other).read_text()
    assert "Published" in write_aggregate_report(other, published="mipnerf360").read_text()


def test_benchmark_table_names_lpips_net_per_cell_when_nets_differ():
    a = MethodResult("default", {"psnr": 25.0, "lpips": 0.2, "lpips_net": "alex"})
    b = MethodResult("x", {"psnr": 25.0, "lpips": 0.3, "lpips_net": "vgg"})
    table = benchmark_table([a, b], a)
    assert "| 0.300 (vgg) |" in table and "| 0.200 (alex) |" in table
