"""The rasterizer, gspruner.render.rasterize: forward and forward+backward time per image.

Random Gaussians in front of one pinhole camera (fixed seed), scales chosen so each splat covers a few
to tens of pixels, SH degree 3 colours. Prints the median of a few repeats, in milliseconds.

    python scripts/benchmark.py render                 # CPU (the chosen backend), 10k and 100k Gaussians at 256x256
    python scripts/benchmark.py render --compare       # both CPU backends side by side, 10k/100k at 128^2 and 256^2
    python scripts/benchmark.py render --device cuda   # the same through gsplat's CUDA kernels
    python scripts/benchmark.py render --sizes 10000 --repeats 5 --profile
    python scripts/benchmark.py render --stats         # the pruners' per-Gaussian statistics of one view, three ways
    python scripts/benchmark.py render --removal       # the `removal` score of one view, three ways

--compare runs the PyTorch and the compiled rasterizer in one process, alternating their repeats so both
see the same machine, and prints torch / compiled time ratios. --stats times render/stats.py's statistics of
one view (what every hit-statistic score and FastGS's visibility rule compute per training view) from the
PyTorch rasterizer's pairs, from the compiled rasterizer's pairs, and fused in C++ without pairs
(`compiled.contribution_stats`). --removal does the same for the `removal` score's per-view loss changes
(pruning/removal.py: `removal_delta` over the pairs, or `compiled.removal_loss`). Timings need an otherwise
idle machine.
"""

from __future__ import annotations

import os
import statistics
import time

import torch

from bench import common
from gspruner.render import rasterize


def make_scene(n: int, width: int, height: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    depth = 2.0 + 4.0 * torch.rand(n, generator=g)  # z in [2, 6]
    f = 0.9 * width
    xy = (torch.rand(n, 2, generator=g) - 0.5) * torch.tensor([width, height]) / f * depth[:, None] * 1.1
    means = torch.cat([xy, depth[:, None]], 1)
    # pixel std = f * scale / z: log-uniform 0.44..3.3 px (each splat covers a few to ~100 pixels, ~50 on average)
    scales = torch.exp(torch.empty(n, 3).uniform_(-1, 1, generator=g) * 1.0) * 1.2 * depth[:, None] / f
    quats = torch.randn(n, 4, generator=g)
    opacities = torch.rand(n, generator=g) * 0.8 + 0.1
    sh = torch.randn(n, 16, 3, generator=g) * 0.2
    viewmats = torch.eye(4)[None]
    Ks = torch.tensor([[[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]]])
    t = dict(means=means, quats=quats, scales=scales, opacities=opacities, colors=sh, viewmats=viewmats, Ks=Ks)
    return {k: v.to(device) for k, v in t.items()}


def run_once(scene, width, height, backward: bool, device: str):
    leaves = {k: v.detach().requires_grad_(backward and k not in ("viewmats", "Ks")) for k, v in scene.items()}
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    img, alpha, info = rasterize(leaves["means"], leaves["quats"], leaves["scales"], leaves["opacities"],
                                 leaves["colors"], leaves["viewmats"], leaves["Ks"], width, height, sh_degree=3,
                                 packed=False)
    if backward:
        info["means2d"].retain_grad()
        (img.sum() + alpha.sum()).backward()
    sync()
    return time.perf_counter() - t0, info


def main(argv=None):
    ap = common.parser(__name__, __doc__)
    common.add_device(ap, "cpu", ("cpu", "cuda"), "cpu: our PyTorch rasterizer; cuda: gsplat")
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="numbers of Gaussians")
    ap.add_argument("--width", type=int, default=256, help="image width in pixels")
    ap.add_argument("--height", type=int, default=256, help="image height in pixels")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats (after one warm-up); the median is shown")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    ap.add_argument("--loop-threads", type=int, default=None,
                    help="threads inside the rasterizer's chunk loops (torch_raster.LOOP_THREADS; 0: same as torch; "
                         "default: the module's setting, 1)")
    ap.add_argument("--profile", action="store_true", help="print a torch.profiler table of one forward+backward")
    ap.add_argument("--compare", action="store_true",
                    help="CPU: time the PyTorch and the compiled rasterizer side by side (ratios torch / compiled); "
                         "default sizes 10k and 100k at 128x128 and 256x256")
    ap.add_argument("--stats", action="store_true",
                    help="CPU: time the contribution statistics of one view from the PyTorch pairs, the compiled "
                         "pairs and the fused compiled pass (ratios against the fused one)")
    ap.add_argument("--removal", action="store_true",
                    help="CPU: as --stats, for the removal score's per-Gaussian loss changes of one view")
    ap.add_argument("--resolutions", type=int, nargs="+", default=None,
                    help="square image sizes for --compare, --stats and --removal (default 128 256)")
    ap.add_argument("--no-keep-freed-memory", action="store_true",
                    help="leave glibc's allocator as it is (by default the benchmark runs with the setting that CPU "
                         "training uses, gspruner.device.keep_freed_memory, for both backends)")
    args = ap.parse_args(argv)
    if args.device == "cpu" and not args.no_keep_freed_memory:
        from gspruner.device import keep_freed_memory

        print(f"keep_freed_memory: {keep_freed_memory()}")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: no CUDA GPU available")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.loop_threads is not None:
        from gspruner.render import torch_raster

        torch_raster.LOOP_THREADS = args.loop_threads

    from gspruner.render import cpu_backend, torch_raster

    if args.compare:
        if args.device != "cpu":
            ap.error("--compare compares the two CPU rasterizers (--device cpu)")
        return compare(args)
    if args.stats or args.removal:
        if args.device != "cpu":
            ap.error("--stats and --removal time CPU paths (--device cpu)")
        if args.stats and args.removal:
            ap.error("--stats and --removal: one at a time")
        return compare_stats(args, removal=args.removal)
    loop = torch_raster.LOOP_THREADS or torch.get_num_threads()
    print(f"cpu backend: {cpu_backend()}" if args.device == "cpu" else "gsplat CUDA")
    print(f"device={args.device} threads={torch.get_num_threads()} loop_threads={loop} "
          f"image={args.width}x{args.height} repeats={args.repeats} (median, ms)")
    print(f"{'gaussians':>10} {'visible':>8} {'pairs':>10} {'forward':>10} {'fwd+bwd':>10}")
    for n in args.sizes:
        scene = make_scene(n, args.width, args.height, args.device)
        row = {}
        for backward in (False, True):
            run_once(scene, args.width, args.height, backward, args.device)  # warm-up
            times = []
            for _ in range(args.repeats):
                dt, info = run_once(scene, args.width, args.height, backward, args.device)
                times.append(dt)
            row[backward] = statistics.median(times) * 1e3
        visible = int((info["radii"] > 0).all(-1).sum())
        pairs = str(len(info["pairs"])) if "pairs" in info else "-"  # composited pairs (CPU only)
        print(f"{n:>10} {visible:>8} {pairs:>10} {row[False]:>10.1f} {row[True]:>10.1f}")
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
            with profile(activities=acts) as prof:
                run_once(scene, args.width, args.height, True, args.device)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def compare(args) -> None:
    """Both CPU backends, repeats alternating, medians in ms and torch / compiled ratios."""
    from gspruner.render import compiled

    if compiled.extension() is None:
        raise SystemExit("error: the compiled CPU rasterizer did not build; nothing to compare")
    backends = ("torch", "compiled")
    resolutions = args.resolutions or [128, 256]
    print(f"threads={torch.get_num_threads()} repeats={args.repeats} (median ms; ratio = torch / compiled)")
    head = f"{'gaussians':>10} {'image':>8} {'pairs':>9}"
    for what in ("forward", "fwd+bwd"):
        head += f" {'torch ' + what:>15} {'compiled':>9} {'ratio':>6}"
    print(head)
    for n in args.sizes:
        for res in resolutions:
            scene = make_scene(n, res, res, "cpu")
            row, pairs = {}, "-"
            for backward in (False, True):
                times = {b: [] for b in backends}
                for rep in range(args.repeats + 1):  # the first round warms up (and builds)
                    for b in backends:
                        os.environ["GSPRUNER_CPU_BACKEND"] = b
                        dt, info = run_once(scene, res, res, backward, "cpu")
                        if rep:
                            times[b].append(dt)
                        if b == "torch":
                            pairs = str(len(info["pairs"]))
                row[backward] = {b: statistics.median(t) * 1e3 for b, t in times.items()}
            line = f"{n:>10} {f'{res}x{res}':>8} {pairs:>9}"
            for backward in (False, True):
                t, c = row[backward]["torch"], row[backward]["compiled"]
                line += f" {t:>15.1f} {c:>9.1f} {t / c:>5.1f}x"
            print(line, flush=True)
    os.environ.pop("GSPRUNER_CPU_BACKEND", None)


def compare_stats(args, removal: bool = False) -> None:
    """Per-Gaussian contribution statistics (or, with `removal`, the removal score's loss changes) of one view,
    three ways, repeats alternating; median ms."""
    from gspruner.pruning.removal import removal_delta
    from gspruner.render import compiled, project, torch_raster
    from gspruner.render.stats import stats_from_pairs

    if compiled.extension() is None:
        raise SystemExit("error: the compiled CPU rasterizer did not build; nothing to compare")
    resolutions = args.resolutions or [128, 256]

    def from_pairs(pairs_of):
        def run(p, r, n, colors, image):
            pairs = pairs_of(p.means2d, p.conics, p.opacities, p.depths, p.radii, r, r)
            if not removal:
                return stats_from_pairs(pairs, n)
            ids, delta = removal_delta(pairs, colors, image, None)
            return torch.zeros(n, dtype=torch.float64).index_add_(0, ids, delta)
        return run

    ways = {
        "torch pairs": from_pairs(torch_raster.contributing_pairs),
        "compiled pairs": from_pairs(compiled.contributing_pairs),
        "fused": (lambda p, r, n, colors, image: compiled.removal_loss(p, colors[None], image[None], r, r)) if removal
        else (lambda p, r, n, colors, image: compiled.contribution_stats(p, r, r)),
    }
    what = "removal loss changes" if removal else "statistics"
    print(f"threads={torch.get_num_threads()} repeats={args.repeats} (median ms of the {what} after one "
          f"projection; ratio = time / fused)")
    print(f"{'gaussians':>10} {'image':>8}" + "".join(f" {w:>15} {'ratio':>6}" for w in ways))
    g = torch.Generator().manual_seed(0)
    for n in args.sizes:
        for res in resolutions:
            s = make_scene(n, res, res, "cpu")
            colors, image = torch.rand(n, 3, generator=g), torch.rand(res, res, 3, generator=g)
            with torch.no_grad():
                p = project(s["means"], s["quats"], s["scales"], s["opacities"], s["viewmats"], s["Ks"], res, res)
            times = {w: [] for w in ways}
            for rep in range(args.repeats + 1):  # the first round warms up
                for w, fn in ways.items():
                    t0 = time.perf_counter()
                    fn(p, res, n, colors, image)
                    if rep:
                        times[w].append(time.perf_counter() - t0)
            med = {w: statistics.median(t) * 1e3 for w, t in times.items()}
            print(f"{n:>10} {f'{res}x{res}':>8}" + "".join(f" {med[w]:>15.1f} {med[w] / med['fused']:>5.1f}x"
                                                         for w in ways), flush=True)
