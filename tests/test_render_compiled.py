"""The compiled CPU rasterizer (gspruner/render/compiled.py, csrc/cpu_raster.cpp) against the PyTorch
rasterizer, its reference: the same renders, gradients, composited pairs and statistics on random scenes
with every option; which inputs take which path; the backend switch; the fallback without a compiler.
(tests/test_render.py runs both backends against the float64 brute-force reference.)"""

import os
import shutil
import subprocess
import sys

import pytest
import torch

from gspruner.errors import InputError
from gspruner.render import compiled, contributing_pairs, cpu_backend, project, rasterize, torch_raster
from gspruner.render.stats import stats_from_pairs
from test_render import H, W, make_scene

HAVE_COMPILER = bool(os.environ.get("CXX")) or shutil.which("c++") is not None


@pytest.fixture(autouse=True)
def built(monkeypatch):
    monkeypatch.delenv(compiled.BACKEND_ENV, raising=False)
    monkeypatch.delenv(compiled.THREADS_ENV, raising=False)
    if not HAVE_COMPILER:
        pytest.skip("no C++ compiler on this machine")
    assert compiled.extension() is not None, "a compiler is present but the extension did not build"


def _run(fn, scene, covars=None, bg=True, weights_seed=1, **kw):
    leaves = {k: v.detach().clone().requires_grad_(k not in ("viewmats", "Ks")) for k, v in scene.items()}
    if covars is not None:
        leaves["covars"] = covars.detach().clone().requires_grad_()
    img, alpha, info = fn(leaves["means"], None if covars is not None else leaves["quats"],
                          None if covars is not None else leaves["scales"], leaves["opacities"], leaves["colors"],
                          leaves["viewmats"], leaves["Ks"], kw.pop("width", W), kw.pop("height", H),
                          backgrounds=leaves["backgrounds"] if bg else None, covars=leaves.get("covars"), **kw)
    info["means2d"].retain_grad()
    g = torch.Generator().manual_seed(weights_seed)  # a loss that weights every output differently
    ((img * torch.randn(img.shape, generator=g)).sum() + (alpha * torch.randn(alpha.shape, generator=g)).sum()).backward()
    grads = {k: v.grad for k, v in leaves.items() if v.grad is not None}
    grads["means2d"] = info["means2d"].grad
    if kw.get("absgrad"):
        grads["absgrad"] = info["means2d"].absgrad
    return img.detach(), alpha.detach(), grads, info


def _cosine(a, b):
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    return float(a @ b / (a.norm() * b.norm() + 1e-30))


OPTIONS = [
    {}, {"render_mode": "RGB+D"}, {"render_mode": "D"}, {"render_mode": "ED"}, {"render_mode": "RGB+ED"},
    {"absgrad": True}, {"rasterize_mode": "antialiased"}, {"sh_degree": 0}, {"sh_degree": 1}, {"sh_degree": 2},
    {"sh_degree": 3}, {"compact_box": 0.5}, {"bg": False}, {"covars": True}, {"radius_clip": 1.5},
    {"eps2d": 0.1}, {"tile_size": 8}, {"near_plane": 2.6},
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_matches_torch_rasterizer(option, seed):
    kw = dict(option)
    scene = make_scene(n=60, seed=seed, sh_degree=kw.get("sh_degree"), dtype=torch.float32)
    if kw.pop("covars", False):  # the [N, 6] upper triangle path, gradients to it
        cov = torch_raster.covariance_from_quat_scale(scene["quats"], scene["scales"])
        kw["covars"] = cov.reshape(-1, 9)[:, [0, 1, 2, 4, 5, 8]]
    ref_img, ref_alpha, ref_grads, ref_info = _run(torch_raster.rasterize, scene, **dict(kw))
    img, alpha, grads, info = _run(compiled.rasterize, scene, **dict(kw))
    assert isinstance(info, compiled.RenderInfo) and not isinstance(ref_info, compiled.RenderInfo)
    if "ED" in kw.get("render_mode", ""):  # depth / alpha: compare relative to the depth
        assert float(((img - ref_img).abs() / (ref_img.abs() + 1e-3)).max()) <= 2e-5
    else:
        assert float((img - ref_img).abs().max()) <= 1e-5
    assert float((alpha - ref_alpha).abs().max()) <= 1e-5
    assert set(grads) == set(ref_grads)
    for k in ref_grads:
        ref, ours = ref_grads[k], grads[k]
        assert _cosine(ours, ref) >= 0.9999, k
        assert float((ours - ref).norm() / (ref.norm() + 1e-30)) <= 1e-4, k
    for k in ("radii", "tiles_per_gauss"):
        assert torch.equal(info[k], ref_info[k]), k
    for k in ("means2d", "depths", "conics", "opacities"):
        assert torch.allclose(info[k], ref_info[k], rtol=1e-5, atol=1e-5), k
    # the lazily built pairs are the reference's pairs
    p, q = info["pairs"], ref_info["pairs"]
    assert torch.equal(p.gaussian_ids, q.gaussian_ids) and torch.equal(p.pixel_ids, q.pixel_ids)
    assert torch.equal(p.camera_ids, q.camera_ids) and torch.equal(p.pixel_starts, q.pixel_starts)
    assert torch.allclose(p.alphas, q.alphas, atol=1e-6) and torch.allclose(p.transmittances, q.transmittances, atol=1e-5)


def test_many_gaussians_many_tiles_and_early_stop():
    """A denser scene (2000 Gaussians, opaque enough that most pixels stop early, 4 x 3 tiles, 3 cameras)."""
    g = torch.Generator().manual_seed(5)
    scene = make_scene(n=2000, seed=3, sh_degree=3, dtype=torch.float32, width=64, height=48)
    scene["opacities"] = torch.rand(2000, generator=g) * 0.6 + 0.4
    scene["viewmats"] = torch.cat([scene["viewmats"], scene["viewmats"][:1] @ torch.diag(torch.tensor([1.0, 1, 1, 1]))])
    scene["viewmats"][2, :3, 3] += torch.tensor([0.1, -0.05, 0.3])
    scene["Ks"] = torch.cat([scene["Ks"], scene["Ks"][:1]])
    scene["backgrounds"] = torch.cat([scene["backgrounds"], scene["backgrounds"][:1]])
    ref = _run(torch_raster.rasterize, scene, sh_degree=3, width=64, height=48, absgrad=True)
    ours = _run(compiled.rasterize, scene, sh_degree=3, width=64, height=48, absgrad=True)
    assert float((ours[0] - ref[0]).abs().max()) <= 1e-5
    stopped = (ref[3]["pairs"].final_transmittances < 1e-3).float().mean()
    assert stopped > 0.3  # the early stop is exercised
    for k in ref[2]:
        assert _cosine(ours[2][k], ref[2][k]) >= 0.9999, k
        assert float((ours[2][k] - ref[2][k]).norm() / ref[2][k].norm()) <= 1e-4, k


def test_pairs_and_statistics_match_torch():
    s = make_scene(n=300, seed=4, dtype=torch.float32, width=40, height=32)
    proj = torch_raster.project(s["means"], s["quats"], s["scales"], s["opacities"], s["viewmats"], s["Ks"], 40, 32)
    args = (proj.means2d, proj.conics, proj.opacities, proj.depths, proj.radii, 40, 32)
    ref, ours = torch_raster.contributing_pairs(*args), compiled.contributing_pairs(*args)
    assert len(ours) == len(ref) > 1000
    assert torch.equal(ours.gaussian_ids, ref.gaussian_ids) and torch.equal(ours.pixel_ids, ref.pixel_ids)
    assert torch.allclose(ours.final_transmittances, ref.final_transmittances, atol=1e-5)
    mask = (torch.arange(2 * 32 * 40) % 3 == 0).float().reshape(2, 32, 40)
    a, b = stats_from_pairs(ours, 300, mask), stats_from_pairs(ref, 300, mask)
    for k in ("weight_sum", "weight_max", "hit_count", "trans_sum", "max_count"):
        assert torch.allclose(getattr(a, k), getattr(b, k), atol=1e-5), k
    # the package-level entry points take the compiled path for float32
    p = project(s["means"], s["quats"], s["scales"], s["opacities"], s["viewmats"], s["Ks"], 40, 32)
    assert torch.equal(contributing_pairs(p.means2d, p.conics, p.opacities, p.depths, p.radii, 40, 32).gaussian_ids,
                       ref.gaussian_ids)


@pytest.mark.parametrize("compact_box", [1.0, 0.5])
def test_weighted_hits_equal_the_pairs_weight_sums(compact_box):
    """info.weighted_hits(w) [C, N] = per Gaussian, the sum of w over the pixels of its composited pairs (the
    reference: the PyTorch rasterizer's own pairs), rows of zero weight skipped without changing a count."""
    s = make_scene(n=300, seed=5, dtype=torch.float32, width=40, height=32)
    args = (s["means"], s["quats"], s["scales"], s["opacities"], s["colors"], s["viewmats"], s["Ks"], 40, 32)
    _, _, info = compiled.rasterize(*args, compact_box=compact_box)
    _, _, ref_info = torch_raster.rasterize(*args, compact_box=compact_box)
    pairs = ref_info["pairs"]
    g = torch.Generator().manual_seed(0)
    weights = torch.rand(2, 32, 40, generator=g) * (torch.rand(2, 32, 40, generator=g) > 0.5)
    weights[:, 8:20] = 0  # whole rows without weight
    hits = info.weighted_hits(weights)
    expected = torch.zeros(2, 300, dtype=torch.float64)
    w = weights.reshape(2, -1).double()[pairs.camera_ids, pairs.pixel_ids]
    expected.index_put_((pairs.camera_ids, pairs.gaussian_ids), w, accumulate=True)
    assert expected.count_nonzero() > 100
    torch.testing.assert_close(hits.double(), expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("compact_box", [1.0, 0.5])
def test_backward_stats_equal_the_counting_pass(compact_box):
    """info.backward_stats, asked for before backward: hits [C, N] = the counting pass's masked counts (the same
    numbers) and weight_max [C, N] = contribution_stats' weight_max (to rounding: the backward rebuilds T by
    division), the gradients unchanged by the request; a render without gradients has no request."""
    s = make_scene(n=300, seed=5, dtype=torch.float32, width=40, height=32)
    g = torch.Generator().manual_seed(0)
    weights = (torch.rand(2, 32, 40, generator=g) > 0.5).float()  # a 0/1 mask, as FastGS's: counts are exact
    grads = {}
    for ask in (False, True):
        leaves = {k: s[k].detach().clone().requires_grad_() for k in ("means", "quats", "scales", "opacities", "colors")}
        img, _, info = compiled.rasterize(leaves["means"], leaves["quats"], leaves["scales"], leaves["opacities"],
                                          leaves["colors"], s["viewmats"], s["Ks"], 40, 32, compact_box=compact_box)
        if ask:
            info.backward_stats.hit_weights, info.backward_stats.want_weight_max = weights, True
        (img * torch.randn(img.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
        grads[ask] = {k: v.grad for k, v in leaves.items()}
    stats = info.backward_stats
    assert torch.equal(stats.hits, info.weighted_hits(weights)) and stats.hits.count_nonzero() > 100
    proj = project(s["means"], s["quats"], s["scales"], s["opacities"], s["viewmats"], s["Ks"], 40, 32)
    expected_max = compiled.contribution_stats(proj, 40, 32, compact_box=compact_box)[1]
    assert expected_max.count_nonzero() > 100
    torch.testing.assert_close(stats.weight_max, expected_max, atol=1e-5, rtol=1e-4)
    for k in grads[False]:
        assert torch.equal(grads[False][k], grads[True][k]), k
    with torch.no_grad():
        assert compiled.rasterize(s["means"], s["quats"], s["scales"], s["opacities"], s["colors"], s["viewmats"],
                                  s["Ks"], 40, 32)[2].backward_stats is None


@pytest.mark.parametrize("compact_box, weighted", [(1.0, False), (1.0, True), (0.5, True)])
def test_contribution_stats_equal_those_of_the_pairs(compact_box, weighted, monkeypatch):
    """compiled.contribution_stats [5, C, N] (no pairs built), summed (max for weight_max) over its two cameras,
    = stats_from_pairs over the compiled rasterizer's pairs (the same floats: the max and unweighted counts
    equal, sums to rounding) and over the PyTorch rasterizer's, with pixel weights that leave whole rows at
    zero; the same on 1 and 3 threads."""
    s = make_scene(n=300, seed=7, dtype=torch.float32, width=40, height=32)
    proj = project(s["means"], s["quats"], s["scales"], s["opacities"], s["viewmats"], s["Ks"], 40, 32)
    args = (proj.means2d, proj.conics, proj.opacities, proj.depths, proj.radii, 40, 32)
    weights = None
    if weighted:
        g = torch.Generator().manual_seed(0)
        weights = torch.rand(2, 32, 40, generator=g) * (torch.rand(2, 32, 40, generator=g) > 0.3)
        weights[:, 8:20] = 0  # whole rows without weight
    out = {}
    for n in ("1", "3"):
        monkeypatch.setenv(compiled.THREADS_ENV, n)
        out[n] = compiled.contribution_stats(proj, 40, 32, weights, compact_box=compact_box)
    assert torch.equal(out["1"], out["3"]) and out["1"].shape == (5, 2, 300)
    for pairs_of in (compiled.contributing_pairs, torch_raster.contributing_pairs):
        ref = stats_from_pairs(pairs_of(*args, compact_box=compact_box), 300, weights)
        for k, name in enumerate(("weight_sum", "weight_max", "hit_count", "trans_sum", "max_count")):
            expected = getattr(ref, name)
            ours = out["1"][k].amax(0) if name == "weight_max" else out["1"][k].sum(0)
            assert expected.count_nonzero() > 30, name  # max_count: the pixels' winners are fewer
            exact = name == "weight_max" or (name in ("hit_count", "max_count") and weights is None)  # counts
            if pairs_of is compiled.contributing_pairs and exact:
                assert torch.equal(ours, expected), name
            else:
                torch.testing.assert_close(ours, expected, atol=1e-4, rtol=1e-5, msg=name)


@pytest.mark.parametrize("compact_box, with_background", [(1.0, True), (0.5, False)])
def test_removal_loss_equals_that_of_the_pairs(compact_box, with_background, monkeypatch):
    """compiled.removal_loss [C, N] (no pairs built) = pruning/removal.py's `removal_delta` over the compiled
    rasterizer's pairs of each camera, summed per Gaussian (the same float32 alphas and transmittances, float64
    sums: equal to rounding), with and without a background (alpha clamp and early stop included); the same
    on 1 and 3 threads."""
    from gspruner.pruning.removal import removal_delta

    s = make_scene(n=300, seed=9, dtype=torch.float32, width=40, height=32)
    proj = project(s["means"], s["quats"], s["scales"], s["opacities"], s["viewmats"], s["Ks"], 40, 32)
    g = torch.Generator().manual_seed(2)
    colors = torch.rand(2, 300, 3, generator=g)  # [C, N, 3]: each view its own colours
    images = torch.rand(2, 32, 40, 4, generator=g)  # a 4th channel the loss ignores
    backgrounds = s["backgrounds"] if with_background else None
    out = {}
    for n in ("1", "3"):
        monkeypatch.setenv(compiled.THREADS_ENV, n)
        out[n] = compiled.removal_loss(proj, colors, images, 40, 32, backgrounds, compact_box=compact_box)
    assert torch.equal(out["1"], out["3"]) and out["1"].shape == (2, 300) and out["1"].dtype == torch.float64
    for c in range(2):
        one = [t[c:c + 1] for t in (proj.means2d, proj.conics, proj.opacities, proj.depths, proj.radii)]
        pairs = compiled.contributing_pairs(*one, 40, 32, compact_box=compact_box)
        ids, delta = removal_delta(pairs, colors[c], images[c], None if backgrounds is None else backgrounds[c])
        expected = torch.zeros(300, dtype=torch.float64).index_add_(0, ids, delta)
        assert (expected > 1e-3).sum() > 30 and (expected < -1e-3).sum() > 30  # Gaussians the view needs, and not
        torch.testing.assert_close(out["1"][c], expected, rtol=1e-9, atol=1e-9 * float(expected.abs().max()))


@pytest.mark.parametrize("with_background", [True, False])
def test_fisher_patches_equal_those_of_the_pairs(with_background, monkeypatch):
    """compiled.fisher_patches [C, N, 6, 6] (no pairs built) = pruning/sensitivity.py's pairs path for each camera
    (`patch_gradients` over the compiled pairs, then G J + Σ a T J_colour and the sum of g6ᵀ g6 per Gaussian),
    alpha clamp included; symmetric; the same on 1 and 3 threads."""
    from gspruner.pruning.sensitivity import patch_gradients

    s = make_scene(n=300, seed=9, dtype=torch.float32, width=40, height=32)
    proj = project(s["means"], s["quats"], s["scales"], s["opacities"], s["viewmats"], s["Ks"], 40, 32)
    g = torch.Generator().manual_seed(4)
    colors = torch.rand(2, 300, 3, generator=g)
    J, Jc = torch.randn(2, 300, 5, 6, generator=g), torch.randn(2, 300, 3, 3, generator=g)
    backgrounds = s["backgrounds"] if with_background else None
    out = {}
    for n in ("1", "3"):
        monkeypatch.setenv(compiled.THREADS_ENV, n)
        out[n] = compiled.fisher_patches(proj, colors, J, Jc, 40, 32, backgrounds)
    assert torch.equal(out["1"], out["3"]) and out["1"].shape == (2, 300, 6, 6)
    assert torch.equal(out["1"], out["1"].transpose(-1, -2))
    for c in range(2):
        one = [t[c:c + 1] for t in (proj.means2d, proj.conics, proj.opacities, proj.depths, proj.radii)]
        pairs = compiled.contributing_pairs(*one, 40, 32)
        assert (pairs.alphas >= 0.999).sum() > 10  # clamped pairs: no alpha gradient there
        ids, G, weight = patch_gradients(pairs, proj.means2d[c], proj.conics[c], colors[c],
                                         None if backgrounds is None else backgrounds[c])
        g6 = torch.einsum("ukm,umj->ukj", G, J[c].double()[ids])
        g6[:, :, :3] += weight[:, None, None] * Jc[c].double()[ids]
        expected = torch.zeros(300, 6, 6, dtype=torch.float64).index_add_(0, ids, torch.einsum("uki,ukj->uij", g6, g6))
        assert (expected.diagonal(dim1=1, dim2=2) > 0).all(dim=1).sum() > 100
        torch.testing.assert_close(out["1"][c], expected, rtol=1e-9, atol=1e-9 * float(expected.abs().max()))


def test_contribution_stats_give_a_tie_to_the_front_gaussian():
    """Mini-Splatting's max_count: where two Gaussians blend with the same weight the front one wins. Both are
    centred on pixel (8, 8) (alpha = opacity there): front o = 1/4 gives w = 1/4, back o = 1/3 gives
    w = 1/3 * 3/4 = 1/4 in float32 too; at every other pixel the back one weighs more."""
    proj = torch_raster.Projection(
        radii=torch.full((1, 2, 2), 6, dtype=torch.int32), means2d=torch.full((1, 2, 2), 8.5),
        depths=torch.tensor([[1.0, 2.0]]), conics=torch.tensor([[[0.5, 0.0, 0.5]] * 2]),
        opacities=torch.tensor([[0.25, 1.0 / 3.0]]), compensations=None)
    stats = compiled.contribution_stats(proj, 16, 16)
    pairs = torch_raster.contributing_pairs(proj.means2d, proj.conics, proj.opacities, proj.depths, proj.radii, 16, 16)
    on_centre = pairs.weights[pairs.pixel_ids == 8 * 16 + 8]
    assert on_centre.tolist() == [0.25, 0.25]  # the tie is exact
    assert stats[4, 0].tolist() == [1.0, torch.unique(pairs.pixel_ids).numel() - 1.0]  # every other pixel: the back one
    assert torch.equal(stats[4, 0], stats_from_pairs(pairs, 2).max_count)


def test_which_inputs_take_which_path():
    s32, s64 = make_scene(seed=2, dtype=torch.float32), make_scene(seed=2)
    args = lambda s: (s["means"], s["quats"], s["scales"], s["opacities"], s["colors"], s["viewmats"], s["Ks"], W, H)  # noqa: E731
    assert isinstance(rasterize(*args(s32))[2], compiled.RenderInfo)
    assert not isinstance(rasterize(*args(s64))[2], compiled.RenderInfo)  # float64: the PyTorch rasterizer
    assert not isinstance(rasterize(*args(s32), tile_size=32)[2], compiled.RenderInfo)  # tiles wider than 16 lanes
    view = s32["viewmats"].clone().requires_grad_()  # gradients to the cameras: the PyTorch rasterizer
    assert not isinstance(rasterize(*args({**s32, "viewmats": view}))[2], compiled.RenderInfo)
    sh4 = make_scene(seed=2, sh_degree=4, dtype=torch.float32)  # SH degree 4: PyTorch SH, compiled rest
    img, _, info = rasterize(*args(sh4), sh_degree=4)
    ref, _, _ = torch_raster.rasterize(*args(sh4), sh_degree=4)
    assert isinstance(info, compiled.RenderInfo) and float((img - ref).abs().max()) <= 1e-5


def test_backend_switch(monkeypatch):
    s = make_scene(seed=1, dtype=torch.float32)
    args = (s["means"], s["quats"], s["scales"], s["opacities"], s["colors"], s["viewmats"], s["Ks"], W, H)
    assert cpu_backend() == "compiled"
    monkeypatch.setenv(compiled.BACKEND_ENV, "torch")
    assert cpu_backend() == "torch" and not isinstance(rasterize(*args)[2], compiled.RenderInfo)
    monkeypatch.setenv(compiled.BACKEND_ENV, "cuda")
    with pytest.raises(InputError, match="GSPRUNER_CPU_BACKEND must be one of compiled, torch"):
        rasterize(*args)
    monkeypatch.setenv(compiled.BACKEND_ENV, "compiled")
    monkeypatch.setenv(compiled.THREADS_ENV, "0")
    with pytest.raises(InputError, match="GSPRUNER_CPU_THREADS must be a positive integer"):
        rasterize(*args)


def test_thread_count_does_not_change_results(monkeypatch):
    scene = make_scene(n=400, seed=6, sh_degree=2, dtype=torch.float32, width=48, height=40)
    out = {}
    for n in ("1", "2", "3"):
        monkeypatch.setenv(compiled.THREADS_ENV, n)
        out[n] = _run(compiled.rasterize, scene, sh_degree=2, width=48, height=40, bg=False)
    for n in ("2", "3"):
        assert torch.equal(out[n][0], out["1"][0]) and torch.equal(out[n][1], out["1"][1])
        for k in out["1"][2]:
            assert torch.equal(out[n][2][k], out["1"][2][k]), k  # per-Gaussian sums in a fixed order


def test_no_compiler_falls_back_with_one_warning(tmp_path):
    """CXX=/bin/false and an empty extension cache: the build fails, renders use the PyTorch path, one warning."""
    code = (
        "import warnings, torch\n"
        "from gspruner.render import rasterize, cpu_backend\n"
        "import sys; sys.path.insert(0, 'tests')\n"
        "from test_render import make_scene, W, H\n"
        "s = make_scene(dtype=torch.float32)\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    for _ in range(3):\n"
        "        img, _, info = rasterize(s['means'], s['quats'], s['scales'], s['opacities'], s['colors'],\n"
        "                                 s['viewmats'], s['Ks'], W, H)\n"
        "ours = [w for w in caught if 'compiled CPU rasterizer not built' in str(w.message)]\n"
        "print(cpu_backend(), len(ours), type(info).__name__, float(img.sum()) > 0)\n"
    )
    env = {**os.environ, "CXX": "/bin/false", "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    env.pop(compiled.BACKEND_ENV, None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["torch", "1", "dict", "True"]


def _cpu_flags() -> list:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return []


@pytest.mark.skipif("avx512f" not in _cpu_flags() or "avx2" not in _cpu_flags(),
                    reason="without AVX-512 the default build already is the 8-lane one")
def test_eight_lane_build_passes_the_same_comparisons(tmp_path):
    """With AVX-512 the default build runs a tile row as one 16-lane vector; CPUs without it run two 8-lane ones
    (NH = 2 in cpu_raster.cpp). GSPRUNER_CPU_SIMD=avx2 builds that code here, and it must pass the comparisons
    with the PyTorch rasterizer that the default build passes."""
    env = {**os.environ, compiled.SIMD_ENV: "avx2", "TORCH_EXTENSIONS_DIR": str(tmp_path)}
    env.pop(compiled.BACKEND_ENV, None)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    tests = ("matches_torch or many_gaussians or pairs_and_statistics or weighted_hits or backward_stats or "
             "contribution_stats or "
             "removal_loss or fisher_patches or thread_count or two_parameters")
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          "tests/test_render_compiled.py", "-k", tests], env=env, cwd=root, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " passed" in out.stdout and "failed" not in out.stdout
    built = {p.name for p in tmp_path.rglob("*.so")}
    assert built == {compiled.extension_name(["-mavx2"]) + ".so"}, built  # the 8-lane build, and only it


def test_simd_level_is_checked(monkeypatch):
    monkeypatch.setenv(compiled.SIMD_ENV, "avx1024")
    with pytest.raises(InputError, match="GSPRUNER_CPU_SIMD must be one of native, avx2, baseline"):
        compiled._simd_flags()
    monkeypatch.setenv(compiled.SIMD_ENV, "baseline")
    assert compiled._simd_flags() == []
    monkeypatch.setenv(compiled.SIMD_ENV, "avx2")
    assert "-mavx512f" not in compiled._simd_flags()


@pytest.mark.parametrize("degree,bands", [(0, 1), (1, 16), (3, 16)])
def test_sh_as_the_two_parameters_equals_the_concatenation(degree, bands):
    """colors = (sh0, shN), read in place by the compiled path, renders and differentiates bit for bit like
    the [N, K, 3] concatenation truncated to the degree (the path every other backend takes)."""
    from gspruner.render import rasterize

    g = torch.Generator().manual_seed(degree)
    n = 2000
    means = torch.randn(n, 3, generator=g) * 0.5 + torch.tensor([0.0, 0.0, 3.0])
    quats, scales = torch.randn(n, 4, generator=g), torch.rand(n, 3, generator=g) * 0.05 + 0.01
    opacities = torch.rand(n, generator=g)
    sh0, shN = torch.randn(n, 1, 3, generator=g), torch.randn(n, bands - 1, 3, generator=g) * 0.3
    viewmats, Ks = torch.eye(4)[None], torch.tensor([[[60.0, 0, 32], [0, 60, 24], [0, 0, 1]]])
    weights = torch.rand(1, 48, 64, 3, generator=g)
    results = []
    for split in (False, True):
        leaves = [t.clone().requires_grad_() for t in (means, sh0, shN)]
        colors = (leaves[1], leaves[2]) if split else torch.cat(leaves[1:], dim=1)[:, : (degree + 1) ** 2]
        img, _, _ = rasterize(leaves[0], quats, scales, opacities, colors, viewmats, Ks, 64, 48, sh_degree=degree)
        (img * weights).sum().backward()
        results.append([img.detach()] + [t.grad for t in leaves])
    assert results[0][0].abs().sum() > 0 and results[0][3].shape == (n, bands - 1, 3)
    for a, b in zip(*results):
        assert torch.equal(a, b)
