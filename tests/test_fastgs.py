"""FastGS strategy: masked hit count, VCD, VCP (during densification and final), optimizer schedule, CLI."""

import json
import math
from dataclasses import dataclass

import pytest
import torch

from gspruner.cli import main
from gspruner.config import TrainConfig
from gspruner.evaluation import render_view
from gspruner.metrics import ssim
from gspruner.model import create_optimizers
from gspruner.render.stats import contribution_stats
from gspruner.render.torch_raster import ALPHA_THRESHOLD, MAX_ALPHA, T_MIN, project
from gspruner.strategies import FastGSConfig, make_strategy
from gspruner.strategies.fastgs import (FastGSStrategy, error_mask, masked_hit_count, max_visibility, multiview_scores,
                                        photometric_loss)
from gspruner.strategies.views import ViewSampler
from gspruner.trainer import Trainer

W = H = 32
FOCAL, DEPTH = 32.0, 5.0  # pixel x = 16 + FOCAL * x / DEPTH


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: on a busy 2-core machine every 2-thread OpenMP region can stall (measured
    ~10x on the end-to-end run); these tests check results, not speed."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass(eq=False)  # identity, as the trainer's cameras
class Cam:
    viewmat: torch.Tensor
    K: torch.Tensor
    width: int = W
    height: int = H


def _cams(n=3):
    K = torch.tensor([[FOCAL, 0, W / 2], [0, FOCAL, H / 2], [0, 0, 1]])
    return [Cam(torch.eye(4), K.clone()) for _ in range(n)]


def _world(px: float) -> float:
    return (px - W / 2) * DEPTH / FOCAL


def _splats(pixels, scales, opacities):
    """Gaussians on the plane z = DEPTH facing the camera, at the given pixel centres (SH degree 0)."""
    n = len(pixels)
    means = torch.tensor([[_world(x), _world(y), DEPTH] for x, y in pixels])
    g = torch.Generator().manual_seed(0)
    return torch.nn.ParameterDict({
        "means": torch.nn.Parameter(means),
        "scales": torch.nn.Parameter(torch.log(torch.tensor(scales))[:, None].repeat(1, 3)),
        "quats": torch.nn.Parameter(torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1)),
        "opacities": torch.nn.Parameter(torch.logit(torch.tensor(opacities))),
        "sh0": torch.nn.Parameter(torch.rand(n, 1, 3, generator=g) - 0.5),
        "shN": torch.nn.Parameter(torch.zeros(n, 0, 3)),
    })


def _setup(splats, right_error=True, **strategy_kw):
    """Strategy + state + views whose ground truth differs from the render only on the right half (x >= 16)."""
    cams = _cams()
    render = lambda cam: render_view(splats, cam, "cpu", 0)[0::2]  # noqa: E731  (rgb, info)
    with torch.no_grad():
        gt = render(cams[0])[0].clone()
    if right_error:
        gt[:, W // 2:] = (gt[:, W // 2:] + 0.5) % 1.0
    views = ViewSampler(cams, lambda cam: gt, render)
    strategy = FastGSStrategy(views=views, verbose=False, **strategy_kw)
    optimizers = create_optimizers(splats, 1.0)
    state = strategy.initialize_state(scene_scale=1.0)
    n = len(splats["means"])
    state.update(grad2d=torch.zeros(n), absgrad2d=torch.zeros(n), count=torch.ones(n), radii=torch.zeros(n))
    return strategy, optimizers, state, views, gt


def _brute_force_pairs(means2d, conics, opac, depths, radii):
    """Per-pixel front-to-back compositing with gsplat's rules: yields (Gaussian i, py, px, alpha, T before i)."""
    order = sorted((i for i in range(means2d.shape[0]) if (radii[i] > 0).all()), key=lambda i: float(depths[i]))
    for py in range(H):
        for px in range(W):
            T = 1.0
            for i in order:
                dx, dy = float(means2d[i, 0]) - (px + 0.5), float(means2d[i, 1]) - (py + 0.5)
                a, b, c = (float(v) for v in conics[i])
                sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                alpha = min(MAX_ALPHA, float(opac[i]) * math.exp(-sigma))
                if sigma < 0 or alpha < ALPHA_THRESHOLD:
                    continue
                if T * (1 - alpha) <= T_MIN:
                    break
                yield i, py, px, alpha, T
                T *= 1 - alpha


def _brute_force_masked_count(means2d, conics, opac, depths, radii, mask):
    """The number of masked pixels each Gaussian blends into."""
    count = [0] * means2d.shape[0]
    for i, py, px, _, _ in _brute_force_pairs(means2d, conics, opac, depths, radii):
        count[i] += int(mask[py, px])
    return torch.tensor(count, dtype=torch.float32)


def test_masked_hit_count_matches_brute_force():
    """Overlapping Gaussians (one nearly opaque in front) and a checkerboard-ish mask: exact counts."""
    g = torch.Generator().manual_seed(3)
    pixels = [(8, 8), (10, 9), (20, 22), (16, 16), (15, 17), (26, 6)]
    splats = _splats(pixels, [0.3, 0.5, 0.4, 0.8, 0.3, 0.2], [0.99, 0.6, 0.3, 0.95, 0.8, 0.05])
    with torch.no_grad():
        splats["means"][:, 2] += torch.rand(len(pixels), generator=g)  # distinct depths
    cam = _cams(1)[0]
    mask = torch.rand(H, W, generator=g) > 0.4
    _, info = render_view(splats, cam, "cpu", 0)[0::2]
    count = masked_hit_count(splats, cam, info, mask)
    with torch.no_grad():
        p = project(splats["means"], splats["quats"], torch.exp(splats["scales"]), torch.sigmoid(splats["opacities"]),
                    cam.viewmat[None], cam.K[None], W, H)
    expected = _brute_force_masked_count(p.means2d[0], p.conics[0], p.opacities[0], p.depths[0], p.radii[0], mask)
    assert expected.sum() > 50 and (expected > 0).sum() >= 4  # a case with something to count
    torch.testing.assert_close(count, expected)
    # the CUDA path's route (a separate counting pass) gives the same on CPU
    stats = contribution_stats(splats["means"], splats["quats"], torch.exp(splats["scales"]),
                               torch.sigmoid(splats["opacities"]), cam.viewmat, cam.K, W, H, pixel_weights=mask.float())
    torch.testing.assert_close(stats.hit_count, expected)


def test_error_mask_and_photometric_loss_by_hand():
    gt = torch.zeros(12, 12, 3)
    rgb = gt.clone()
    rgb[2:5, 3:9] = 0.9  # error 0.9 here
    rgb[8, 8] = 0.05  # error 0.05: 0.056 after min-max, below tau = 0.1
    mask = error_mask(rgb, gt, 0.1)
    expected = torch.zeros(12, 12, dtype=torch.bool)
    expected[2:5, 3:9] = True
    assert torch.equal(mask, expected)
    assert not error_mask(gt, gt, 0.1).any()  # no error: no mask (and no NaN)
    l1 = (rgb - gt).abs().mean()
    torch.testing.assert_close(photometric_loss(rgb, gt), 0.8 * l1 + 0.2 * (1 - ssim(rgb[None], gt[None])))


LEFT = [(6, 6), (6, 16), (6, 26)]
RIGHT = [(26, 6), (26, 16), (26, 26)]


def test_vcd_grows_only_in_high_error_areas():
    # right column: a small Gaussian (clone: max scale <= dense * extent) and two large ones (split)
    splats = _splats(LEFT + RIGHT, [0.2, 0.2, 0.2, 0.1, 0.2, 0.2], [0.9] * 6)
    strategy, optimizers, state, _, _ = _setup(splats, dense=0.15)
    state["grad2d"][:] = 1.0  # every Gaussian passes both gradient criteria ...
    state["absgrad2d"][:] = 1.0
    s_d, _ = multiview_scores(splats, strategy.views, 10, 0.1)
    assert (s_d[:3] == 0).all() and (s_d[3:] > 5).all()  # ... but only the right ones are multi-view consistent
    before = splats["means"].detach().clone()
    strategy._refine(splats, optimizers, state, step=100)
    means = splats["means"].detach()
    assert len(means) == 6 + 1 + 2  # one clone, two splits (a split replaces its parent by two)
    for i in range(4):  # the left Gaussians and the cloned one are still there, unchanged
        assert (means == before[i]).all(-1).any()
    new = means[~(means[:, None] == before[None]).all(-1).any(-1)]
    assert len(new) == 4 and (new[:, 0] > 0).all()  # the split children, all on the right
    assert (torch.sigmoid(splats["opacities"]) <= 0.8 + 1e-6).all()  # opacity cap after refinement
    assert all(v.shape[0] == 9 for k, v in state.items() if k in ("grad2d", "absgrad2d", "count", "radii"))
    assert (state["count"] == 0).all()  # running sums restart

    # no error anywhere: nothing grows
    splats = _splats(LEFT + RIGHT, [0.2] * 6, [0.9] * 6)
    strategy, optimizers, state, _, _ = _setup(splats, right_error=False, dense=0.15)
    state["grad2d"][:] = 1.0
    state["absgrad2d"][:] = 1.0
    strategy._refine(splats, optimizers, state, step=100)
    assert len(splats["means"]) == 6


def test_vcp_prune_score_follows_gaussians_through_split():
    """Candidates: a big Gaussian C (last index, highest s_p) and a faint one L (s_p = 0); budget 1.

    Splitting the right Gaussians shifts C's index; the sampled prune must still hit C (the official
    code indexes the pre-split scores after the split and would weight another Gaussian).
    """
    pixels = [(6, 6)] + RIGHT + [(20, 16)]
    splats = _splats(pixels, [0.2, 0.2, 0.2, 0.2, 0.5], [0.001, 0.9, 0.9, 0.9, 0.9])
    strategy, optimizers, state, _, _ = _setup(splats, dense=0.15, reset_every=10, prune_scale3d=0.4, prune_radius=0)
    state["absgrad2d"][1:4] = 1.0  # the right Gaussians split, C does not grow
    _, s_p = multiview_scores(splats, strategy.views, 10, 0.1)
    assert s_p[4] == 1.0 and s_p[0] == 0.0
    c_mean = splats["means"][4].detach().clone()
    torch.manual_seed(0)
    strategy._refine(splats, optimizers, state, step=20)
    means = splats["means"].detach()
    assert len(means) == 5 + 3 - 1  # three splits, C pruned
    assert not (means == c_mean).all(-1).any()  # C is gone ...
    assert (torch.sigmoid(splats["opacities"]) < 0.005).sum() == 1  # ... and L survived


def test_final_vcp_removes_exactly_the_rule_set():
    # left: one faint Gaussian (opacity < 0.1); right: two large ones (s_p high) and a small one (s_p low)
    splats = _splats(LEFT + RIGHT, [0.2, 0.2, 0.2, 0.2, 0.2, 0.07], [0.05, 0.9, 0.9, 0.9, 0.9, 0.9])
    strategy, optimizers, state, views, gt = _setup(splats)
    # the rule, computed independently: counts from a separate counting pass, E_j from the loss formula
    with torch.no_grad():
        rgb = render_view(splats, views.cameras[0], "cpu", 0)[0]
    mask = error_mask(rgb, gt, 0.1)
    count = contribution_stats(splats["means"], splats["quats"], torch.exp(splats["scales"]),
                               torch.sigmoid(splats["opacities"]), views.cameras[0].viewmat, views.cameras[0].K,
                               W, H, pixel_weights=mask.float()).hit_count
    score = 3 * count * (0.8 * (rgb - gt).abs().mean() + 0.2 * (1 - ssim(rgb[None], gt[None])))  # 3 identical views
    s_p = (score - score.min()) / (score.max() - score.min())
    expected_removed = (torch.sigmoid(splats["opacities"]) < 0.1) | (s_p > 0.9)
    assert expected_removed[0] and expected_removed[3:5].all() and not expected_removed[[1, 2, 5]].any()
    keep = splats["means"].detach()[~expected_removed].clone()
    strategy._final_prune(splats, optimizers, state, step=18_000)
    assert torch.equal(splats["means"].detach(), keep)
    assert all(v.shape[0] == 3 for k, v in state.items() if isinstance(v, torch.Tensor))


def _brute_force_max_weight(means2d, conics, opac, depths, radii):
    """Max over pixels of alpha T for each Gaussian."""
    best = [0.0] * means2d.shape[0]
    for i, _, _, alpha, T in _brute_force_pairs(means2d, conics, opac, depths, radii):
        best[i] = max(best[i], alpha * T)
    return torch.tensor(best)


def _hidden_scene():
    """Three cameras side by side; a large opaque Gaussian in front, one just behind it (hidden from all three),
    one behind its edge (shown by the side cameras only), and two in the open."""
    pixels = [(16, 16), (16, 16), (23, 16), (5, 5), (27, 27)]
    splats = _splats(pixels, [1.2, 0.15, 0.15, 0.2, 0.2], [0.99, 0.9, 0.9, 0.3, 0.8])
    with torch.no_grad():
        splats["means"][1:3, 2] += 1.0  # behind the front one
    cams = _cams()
    for cam, tx in zip(cams, (0.0, 0.6, -0.6)):
        cam.viewmat[0, 3] = tx
    return splats, cams


def test_max_visibility_matches_brute_force():
    splats, cams = _hidden_scene()
    opac = torch.sigmoid(splats["opacities"].detach())
    best = torch.zeros(len(opac))
    for cam in cams:
        with torch.no_grad():
            p = project(splats["means"], splats["quats"], torch.exp(splats["scales"]), opac, cam.viewmat[None], cam.K[None], W, H)
        best = torch.maximum(best, _brute_force_max_weight(p.means2d[0], p.conics[0], p.opacities[0], p.depths[0], p.radii[0]))
    expected = best / opac
    assert expected[1] < 0.02 < expected[2] < 0.5 < expected[[0, 3, 4]].min()  # hidden, half-hidden, in the open
    torch.testing.assert_close(max_visibility(splats, cams), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("visibility", [0.02, 0.0])
def test_final_vcp_removes_gaussians_hidden_in_every_training_view(visibility):
    splats, cams = _hidden_scene()
    render = lambda cam: render_view(splats, cam, "cpu", 0)[0::2]  # noqa: E731
    with torch.no_grad():
        gt = render(cams[0])[0].clone()
    strategy = FastGSStrategy(views=ViewSampler(cams, lambda cam: gt, render), final_prune_score=2.0,
                              final_prune_visibility=visibility)
    optimizers = create_optimizers(splats, 1.0)
    state = strategy.initialize_state(scene_scale=1.0)
    before = splats["means"].detach().clone()
    strategy._final_prune(splats, optimizers, state, step=21_000)
    kept = [0, 2, 3, 4] if visibility else [0, 1, 2, 3, 4]  # only the Gaussian behind the front one goes
    assert torch.equal(splats["means"].detach(), before[kept])


def test_refinement_scores_come_from_the_last_k_training_renders():
    """With recent_views, the K training renders before a refinement are its scores: s_d and s_p equal
    `multiview_scores` over exactly those views, nothing is rendered again, and the sums restart after."""
    splats = _splats(LEFT + RIGHT, [0.2] * 6, [0.9] * 6)
    strategy, optimizers, state, views, gt = _setup(splats, dense=0.15, num_views=2, refine_every=10,
                                                    refine_start_iter=5)
    assert [strategy.next_refine_step(s) for s in (0, 5, 6, 10, 11)] == [10, 10, 10, 10, 20]
    rendered = []
    base_render = views._render_fn
    views._render_fn = lambda cam: rendered.append(cam) or base_render(cam)
    gts = {}
    for step in range(11, 21):  # the refinement at 20 takes steps 19 and 20
        cam = views.cameras[step % 3]
        gts[step] = gt if step % 2 else torch.zeros_like(gt)  # the two views differ in their errors
        rgb, info = base_render(cam)
        views.record(cam, gts[step], rgb, info)
        strategy._score_step(splats, state, step)
        views.clear()
        assert state["recent_views"] == max(0, step - 18)
    expected_count = expected_weighted = 0
    for step in (19, 20):
        rgb, info = base_render(views.cameras[step % 3])
        count = masked_hit_count(splats, views.cameras[step % 3], info, error_mask(rgb, gts[step], 0.1))
        expected_count = expected_count + count
        expected_weighted = expected_weighted + photometric_loss(rgb, gts[step]) * count
    s_d, s_p = strategy._refine_scores(splats, state)
    assert not rendered
    torch.testing.assert_close(s_d, torch.div(expected_count, 2, rounding_mode="floor"))
    lo, hi = expected_weighted.min(), expected_weighted.max()
    torch.testing.assert_close(s_p, (expected_weighted - lo) / (hi - lo))
    assert state["recent_views"] == 0 and state["recent_count"] is None
    strategy._refine_scores(splats, state)  # nothing collected: K sampled views are rendered
    assert len(rendered) == 2


def test_score_step_counts_come_from_the_training_backward():
    """On a score step the strategy asks the training render's backward pass for the masked counts
    (`BackwardStats`): the scores equal the counting pass over that render, and no counting pass runs."""
    splats = _splats(LEFT + RIGHT, [0.2] * 6, [0.9] * 6)
    strategy, optimizers, state, views, gt = _setup(splats, dense=0.15, num_views=2, refine_every=10,
                                                    refine_start_iter=5)
    cam = views.cameras[0]
    rgb, _, info = render_view(splats, cam, "cpu", 0)  # with gradients, as the training step renders
    views.record(cam, gt, rgb, info)
    strategy.step_pre_backward(splats, optimizers, state, 19, info)  # 19: one of the K = 2 before 20
    (rgb - gt).abs().mean().backward()
    expected = info.weighted_hits(error_mask(rgb.detach(), gt, 0.1)[None].float())[0]
    assert expected.sum() > 0

    def no_counting_pass(weights):
        raise AssertionError("a counting pass ran")
    info.weighted_hits = no_counting_pass
    strategy._score_step(splats, state, 19)
    assert torch.equal(state["recent_count"], expected)


def _train_on_views(strategy, splats, optimizers, state, views, cams, steps):
    """Training steps' render / record / pre-backward / backward / post-backward on `cams`, one per step."""
    for step, cam in zip(steps, cams):
        rgb, _, info = render_view(splats, cam, "cpu", 0)
        views.record(cam, rgb.detach(), rgb, info)
        strategy.step_pre_backward(splats, optimizers, state, step, info)
        rgb.sum().backward()
        strategy.step_post_backward(splats, optimizers, state, step, info)
        views.clear()


def test_final_vcp_reads_visibility_from_the_training_renders(monkeypatch):
    """After densification the training renders' backward passes keep max_i alpha T / o_i per Gaussian; when they
    covered every training view, the final VCP reads it (no pass of its own) and removes the hidden Gaussian;
    with a view unseen it makes its pass over all of them."""
    from gspruner.strategies import fastgs

    calls = []
    passes = fastgs.max_visibility
    monkeypatch.setattr(fastgs, "max_visibility", lambda params, cams: calls.append(1) or passes(params, cams))
    for seen, expected_calls in ((3, 0), (2, 1)):
        splats, cams = _hidden_scene()
        render = lambda cam: render_view(splats, cam, "cpu", 0)[0::2]  # noqa: E731
        with torch.no_grad():
            images = {id(cam): render(cam)[0].clone() for cam in cams}
        views = ViewSampler(cams, lambda cam: images[id(cam)], render)
        strategy = FastGSStrategy(views=views, final_prune_score=2.0, final_prune_iters=(21_000,))
        optimizers = create_optimizers(splats, 0.0)  # the steps leave the Gaussians as they are
        for opt in optimizers.values():
            for group in opt.param_groups:
                group["lr"] = 0.0
        state = strategy.initialize_state(scene_scale=1.0)
        expected = passes(splats, cams)
        _train_on_views(strategy, splats, optimizers, state, views, cams[:seen], range(20_000, 20_000 + seen))
        torch.testing.assert_close(state["visibility"], expected if seen == 3 else passes(splats, cams[:seen]),
                                   rtol=1e-4, atol=1e-6)
        before, calls[:] = splats["means"].detach().clone(), []
        strategy._final_prune(splats, optimizers, state, step=21_000)
        assert len(calls) == expected_calls
        assert torch.equal(splats["means"].detach(), before[[0, 2, 3, 4]])  # the hidden one goes either way
        assert "visibility" not in state


def test_score_step_takes_the_training_steps_own_loss():
    """E_j of a recorded step is the loss the training step computed on that render (no second SSIM); without
    one it is computed from the render."""
    splats = _splats(LEFT + RIGHT, [0.2] * 6, [0.9] * 6)
    strategy, optimizers, state, views, gt = _setup(splats, dense=0.15, num_views=2, refine_every=10,
                                                    refine_start_iter=5)
    cam = views.cameras[0]
    rgb, info = views._render_fn(cam)
    count = masked_hit_count(splats, cam, info, error_mask(rgb, gt, 0.1))
    assert count.sum() > 0
    views.record(cam, gt, rgb, info, loss=torch.tensor(3.5))  # the trainer's masked / weighted loss, say
    strategy._score_step(splats, state, 19)
    torch.testing.assert_close(state["recent_weighted"], 3.5 * count)
    views.clear()
    views.record(cam, gt, rgb, info)
    strategy._score_step(splats, state, 20)
    torch.testing.assert_close(state["recent_weighted"], (3.5 + photometric_loss(rgb, gt)) * count)
    assert views.current_loss() is None


def test_view_sampler_reuses_the_step_render():
    cams = _cams(5)
    calls = []
    views = ViewSampler(cams, lambda cam: torch.zeros(1), lambda cam: calls.append(cam) or (torch.ones(1), {}))
    views.record(cams[2], torch.full((1,), 7.0), torch.full((1,), 3.0), {"x": 1})
    sampled = views.sample(3)
    assert sampled[0][0] is cams[2] and sampled[0][1].item() == 7.0
    assert len({id(c) for c, _ in sampled}) == 3
    rgb, info = views.render(cams[2])
    assert rgb.item() == 3.0 and info == {"x": 1} and not calls  # not rendered again
    views.render(sampled[1][0])
    assert calls == [sampled[1][0]]
    views.clear()
    assert len(views.sample(10)) == 5  # min(k, #views), all distinct
    assert views.render(cams[2])[0].item() == 1.0


def test_schedule_scales_with_max_steps():
    full = make_strategy("fastgs", 30_000)
    assert (full.refine_start_iter, full.refine_stop_iter, full.refine_every, full.reset_every) == (500, 15_000, 500, 3000)
    assert full.final_prune_iters == (18_000, 21_000, 24_000, 27_000)
    s = make_strategy("fastgs", 3000)
    assert (s.refine_start_iter, s.refine_stop_iter, s.refine_every, s.reset_every) == (50, 1500, 50, 300)
    assert s.final_prune_iters == (1800, 2100, 2400, 2700)
    assert (s.sh_step_every, s.sparse_step_iters, s.sparse_step_every) == (2, (1500, 2000), (3, 6))
    assert s.learning_rates == {"opacities": 0.025, "sh0": 0.0025, "shN": 0.00025}


def test_render_kwargs_follow_the_schedule():
    """AbsGS gradients while densifying; the compact box until compact_box_stop_iter, plain renders after."""
    assert make_strategy("fastgs", 1000).render_kwargs(0) == {"absgrad": True, "compact_box": 1.0}  # off by default
    s = FastGSConfig(compact_box=0.5).setup(1000)
    assert (s.refine_stop_iter, s.compact_box_stop_iter) == (500, 900)
    assert s.render_kwargs(0) == {"absgrad": True, "compact_box": 0.5}
    assert s.render_kwargs(500) == {"absgrad": False, "compact_box": 0.5}  # nothing reads absgrad now
    assert s.render_kwargs(900) == {"absgrad": False, "compact_box": 1.0}  # the model ends plain
    assert make_strategy("default", 1000).render_kwargs(0) == {"absgrad": False}


def test_held_optimizers_schedule():
    s = make_strategy("fastgs", 30_000)
    all_names = {"means", "scales", "quats", "opacities", "sh0", "shN"}
    stepping_shN = [step for step in range(15_000) if "shN" not in s.held_optimizers(step)]
    assert stepping_shN == list(range(15, 15_000, 16))  # iterations 16, 32, ... (step = iteration - 1)
    assert all(s.held_optimizers(step) <= {"shN"} for step in range(15_000))  # the rest steps every step
    mid = [step for step in range(15_000, 20_000) if not s.held_optimizers(step)]
    assert mid == [it - 1 for it in range(15_001, 20_001) if it % 32 == 0]
    late = [step for step in range(20_000, 30_000) if not s.held_optimizers(step)]
    assert late == [it - 1 for it in range(20_001, 30_001) if it % 64 == 0]
    assert s.held_optimizers(20_000) == all_names
    assert make_strategy("default", 30_000).held_optimizers(3) == set()
    off = FastGSStrategy(optimizer_schedule=False)
    assert off.held_optimizers(3) == set()


def test_trainer_steps_shN_only_every_16_steps(tiny_scene, tmp_path):
    """In the trainer: shN moves only at step 15 of the first 18; its gradient accumulates meanwhile."""
    cfg = TrainConfig(data_dir=tiny_scene, result_dir=tmp_path / "r", strategy=FastGSConfig(), max_steps=30_000,
                      sh_degree_interval=0, device="cpu", progress=False, lpips=False)
    t = Trainer(cfg)
    t._setup()
    assert t.optimizers["opacities"].param_groups[0]["lr"] == 0.025
    shN_moves, sh0_moves = [], []
    for step in range(18):
        shN, sh0 = t.splats["shN"].detach().clone(), t.splats["sh0"].detach().clone()
        t.train_step(step)
        shN_moves.append(not torch.equal(shN, t.splats["shN"].detach()))
        sh0_moves.append(not torch.equal(sh0, t.splats["sh0"].detach()))
        if step == 14:
            assert t.splats["shN"].grad is not None and t.splats["shN"].grad.abs().sum() > 0  # accumulating
        if step == 15:
            assert t.splats["shN"].grad is None  # stepped and zeroed
    assert [s for s, moved in enumerate(shN_moves) if moved] == [15]
    assert all(sh0_moves)


def test_train_fastgs_end_to_end(tiny_scene, tmp_path):
    r = tmp_path / "fastgs"
    code = main(["train", "--data-dir", str(tiny_scene), "--result-dir", str(r), "strategy:fastgs",
                 "--max-steps", "200", "--device", "cpu", "--no-lpips", "--no-progress", "--no-save-renders"])
    assert code == 0
    m = json.loads((r / "metrics.json").read_text())
    assert m["strategy"] == "fastgs" and m["steps"] == 200 and m["psnr"] > 18
    counts = [json.loads(line)["num_gaussians"] for line in (r / "log.jsonl").read_text().splitlines()]
    assert m["num_gaussians"] == counts[-1] and len(set(counts)) > 1  # densified / pruned
