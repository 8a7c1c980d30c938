"""The compiled CPU rasterizer against this machine's limit: composited pairs per second, forward and backward.

    python scripts/benchmark.py roofline                         # the demo's trained model (results/demo)
    python scripts/benchmark.py roofline --run RUN_DIR --views 6 # another run's ckpt/last.pt on its own scene

Three figures per pass, each measured in this process on this machine:
  issue limit  the pairs per second the cores could composite if every vector instruction of the kernel's
               inner step did useful work: cores x clock x vector ops per cycle x lanes / ops per lane step.
               The clock is measured (a chain of dependent integer adds, one cycle each); the ops per step
               are counted from csrc/cpu_raster.cpp (OPS_FORWARD / OPS_BACKWARD below); a Xeon with AVX-512
               issues two 512-bit floating-point / compare / blend ops per cycle (ports 0 and 5).
  ceiling      the pairs per second the kernel reaches on a scene built so that every lane of every step
               composites: large faint Gaussians over the whole image, none saturating a pixel.
  trained      the pairs per second on a trained model's own views (composited pairs counted with
               `contribution_stats`), where boxes cover parts of tile rows and pixels saturate.
trained / issue limit is "the share of this machine's limit"; ceiling / issue limit is what the kernel loses
to what the count leaves out (loads, the division of the backward, reductions, scheduling), trained / ceiling
what a real scene's geometry costs (lanes outside a Gaussian's footprint, per-tile work). The inner step is
compute-bound: a tile's records and pixel state live in L1/L2 (a 64-byte record per tile entry, read once
per tile), so memory bandwidth, measured too (a 512 MB copy), is not its roof.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench import common

# Vector instructions per lane step (one Gaussian against one 16-pixel tile row), counted from cpu_raster.cpp
# (built with -ffp-contract=off: no fused multiply-adds). Forward (RowFwd::step + the colour sum):
#   pair_sigma 7 (dx, qa dx dx, qb dx dy, adds, 0.5x), exp_neg 31 (clamps, range reduction, Estrin
#   polynomial, exponent bits), pair_alpha's rest 9 (o e, the 0.999 clamp, three tests), the live select 1,
#   T (1 - a) 2, stop / hit masks 5, the a / w / T / end / live selects and w = a T 7, alive 1, C += w c 6.
OPS_FORWARD = 69
# Backward (raster_bwd's entries loop): sigma + alpha as above 47 plus the end test 2, the any-lane test 2,
# c . dL/dC 6, 1 / (1 - a) 2 (a division: ~16 cycles' throughput on port 0, counted as 8 ops), T and w 2,
# v_a 4, behind 2, u 3, u dx / u dy 2, the mean gradient 6, its moments 9 (adds and products), AbsGS 8,
# the colour gradient 6.
OPS_BACKWARD = 47 + 2 + 2 + 6 + 8 + 2 + 4 + 2 + 3 + 2 + 6 + 9 + 8 + 6
VECTOR_OPS_PER_CYCLE = 2  # 512-bit FP ALU ports on a Xeon with AVX-512 (0 and 5)

CLOCK_C = r"""
#include <stdio.h>
#include <stdint.h>
#include <time.h>
int main(void) {
    const uint64_t n = 2000000000ull;
    uint64_t x = 1, y = 3;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    /* eight dependent register adds per iteration, one cycle each (not `add $imm`: recent cores fold chains
       of immediate adds in the renamer and run them faster than one a cycle) */
    for (uint64_t i = 0; i < n; i += 8)
        __asm__ volatile("add %1, %0\n add %1, %0\n add %1, %0\n add %1, %0\n"
                         "add %1, %0\n add %1, %0\n add %1, %0\n add %1, %0" : "+r"(x) : "r"(y));
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.6f\n", (double)n / ((b.tv_sec - a.tv_sec) + 1e-9 * (b.tv_nsec - a.tv_nsec)) / 1e9);
    return x == 0;
}
"""


def clock_ghz() -> float | None:
    """The core clock under load, from a chain of dependent adds (None without a C compiler)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "clock.c", Path(tmp) / "clock"
        src.write_text(CLOCK_C)
        subprocess.run([cc, "-O1", str(src), "-o", str(exe)], check=True)
        return max(float(subprocess.run([str(exe)], capture_output=True, text=True).stdout) for _ in range(3))


def copy_bandwidth_gbs(megabytes: int = 512) -> float:
    """Bytes read + written per second by a large tensor copy (torch's threads)."""
    a = torch.ones(megabytes * 2**20 // 4)
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        b.copy_(a)
        best = min(best, time.perf_counter() - t)
    return 2 * a.numel() * 4 / best / 1e9


def _passes(ext, proj, feats, tiles, width, height, threads, repeats):
    """(forward seconds, backward seconds, composited pairs) of one camera's raster_fwd / raster_bwd, medians."""
    from gspruner.render import compiled

    args = [t.detach().contiguous() for t in (proj.means2d, proj.conics, proj.opacities, feats)] + [torch.empty(0)]
    fwd, bwd = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        colors, alphas, t_final, ends = ext.raster_fwd(*args, tiles.offsets, tiles.ids, width, height, 16, 1.0, threads)
        fwd.append(time.perf_counter() - t)
        g = torch.Generator().manual_seed(0)
        v_colors, v_alphas = torch.randn(colors.shape, generator=g), torch.randn(alphas.shape, generator=g)
        t = time.perf_counter()
        ext.raster_bwd(*args, tiles.offsets, tiles.ids, tiles.first, tiles.rank, t_final, ends, v_colors, v_alphas,
                       torch.empty(0), False, width, height, 16, 1.0, True, threads)
        bwd.append(time.perf_counter() - t)
    pairs = float(compiled.contribution_stats(proj, width, height, tiles=tiles)[2].sum())  # hit_count: pairs
    return statistics.median(fwd), statistics.median(bwd), pairs


def _rates(cases, ext, threads, repeats):
    """(forward pairs/s, backward pairs/s, pairs per view) over cases of (means, quats, scales, opacities,
    colours [N, 3], viewmat [4, 4], K [3, 3], width, height)."""
    from gspruner.render import compiled

    t_fwd = t_bwd = pairs = 0.0
    for means, quats, scales, opac, colors, viewmat, K, w, h in cases:
        proj = compiled.project(means, quats, scales, opac, viewmat[None], K[None], w, h)
        feats = colors[None].expand(1, -1, -1).contiguous()
        tiles = compiled.bin_tiles(proj, w, h, 16)
        f, b, p = _passes(ext, proj, feats, tiles, w, h, threads, repeats)
        t_fwd, t_bwd, pairs = t_fwd + f, t_bwd + b, pairs + p
    return pairs / t_fwd, pairs / t_bwd, pairs / len(cases)


def ceiling_case(width: int = 256, height: int = 256, n: int = 60):
    """Large faint Gaussians over the whole image: every lane of every step composites (alpha 0.02 everywhere,
    T stays above 0.3: no pixel saturates)."""
    g = torch.Generator().manual_seed(0)
    means = torch.cat([(torch.rand(n, 2, generator=g) - 0.5) * 0.05, 4 + torch.rand(n, 1, generator=g)], 1)
    quats = torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1)
    scales = torch.full((n, 3), 40.0)  # pixel sigma ~ f s / z >> the image: alpha ~ the opacity at every pixel
    opac = torch.full((n,), 0.02)
    colors = torch.rand(n, 3, generator=g)
    K = torch.tensor([[0.9 * width, 0, width / 2], [0, 0.9 * width, height / 2], [0, 0, 1]])
    return means, quats, scales, opac, colors, torch.eye(4), K, width, height


def trained_cases(run: Path, views: int):
    """(the cases of a trained run's first `views` test views, a description)."""
    from gspruner.checkpoint import load_checkpoint, splats_from_state
    from gspruner.data import load_scene

    ckpt = load_checkpoint(run / "ckpt" / "last.pt")
    cfg = ckpt["config"]
    scene = load_scene(ckpt["scene"]["data_dir"], data_factor=cfg["data_factor"], test_every=cfg["test_every"])
    splats = splats_from_state(ckpt["splats"], "cpu")
    means = splats["means"].detach()
    sh0 = splats["sh0"].detach()[:, 0]
    colors = (0.28209479177387814 * sh0 + 0.5).clamp_min(0).contiguous()  # degree 0 colour: the same pairs
    cams = (scene.test or scene.train)[:views]
    cases = [(means, splats["quats"].detach(), torch.exp(splats["scales"].detach()),
              torch.sigmoid(splats["opacities"].detach()), colors, cam.viewmat, cam.K, cam.width, cam.height)
             for cam in cams]
    return cases, f"{run} ({len(means):,} Gaussians, {len(cams)} views at {cams[0].width}x{cams[0].height})"


def main(argv: list[str] | None = None) -> int:
    ap = common.parser(__name__, __doc__)
    ap.add_argument("--run", type=Path, default=Path("results/demo"),
                    help="a trained run directory (ckpt/last.pt; its scene must be on this machine)")
    ap.add_argument("--views", type=int, default=6, help="test views of --run to render")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per view (medians)")
    common.add_out(ap, Path("results/bench_roofline"), "where results.json and table.md go")
    a = ap.parse_args(argv)
    from gspruner.render import compiled

    if compiled.backend() != "compiled":
        print("error: the compiled CPU rasterizer is not available here", file=sys.stderr)
        return 2
    ext, threads = compiled.extension(), compiled.threads()
    ghz = clock_ghz()
    bandwidth = copy_bandwidth_gbs()
    lanes = 16  # a tile row: one 16-lane vector (AVX-512) or two 8-lane ones
    cores = threads
    ceiling = _rates([ceiling_case()], ext, threads, a.repeats)
    cases, described = trained_cases(a.run, a.views)
    trained = _rates(cases, ext, threads, a.repeats)
    import docs_tables

    results = {"command": "python scripts/benchmark.py roofline " + " ".join(argv or []),
               "commit": docs_tables.commit(), "machine": docs_tables.machine(), "date": time.strftime("%Y-%m-%d"),
               "clock_ghz": ghz, "copy_gbs": bandwidth, "threads": threads, "trained_model": described,
               "ops_per_lane_step": {"forward": OPS_FORWARD, "backward": OPS_BACKWARD},
               "vector_ops_per_cycle": VECTOR_OPS_PER_CYCLE, "passes": {}}
    for k, (name, ops) in enumerate((("forward", OPS_FORWARD), ("backward", OPS_BACKWARD))):
        limit = cores * (ghz or float("nan")) * 1e9 * VECTOR_OPS_PER_CYCLE * lanes / ops
        results["passes"][name] = {"issue_limit_pairs_s": limit, "ceiling_pairs_s": ceiling[k],
                                   "trained_pairs_s": trained[k], "trained_pairs_per_view": trained[2]}
    lines = [f"clock {ghz:.2f} GHz (measured), {cores} threads, copy {bandwidth:.1f} GB/s; trained: {described}", "",
             docs_tables.roofline_table(results)]
    common.write_table(common.out_dir(a, "bench_roofline"), lines, results)
    return 0
