"""4D densification (strategies/default4d.py), the 4DGS-1K score and the key-frame temporal filter
(pruning/spatiotemporal.py), and 4D training end to end on the generated dynamic scene."""

import json

import pytest
import torch

from gspruner.checkpoint import load_checkpoint
from gspruner.cli import main
from gspruner.config import TrainConfig
from gspruner.export import read_ply
from gspruner.model import create_optimizers
from gspruner.model.gaussians4d import covariance_4d, create_splats_4d
from gspruner.pruning import SpatioTemporalConfig
from gspruner.pruning.spatiotemporal import (TemporalFilter, _per_view_stats, keyframe_times, spatiotemporal_score,
                                             stability_weight)
from gspruner.strategies.default4d import Default4DStrategy, split_4d
from gspruner.trainer import Trainer


@pytest.fixture(autouse=True)
def _one_thread():  # beside other jobs on a 2-core machine, 2 torch threads are slower than 1
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _splats(n=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    splats = create_splats_4d((torch.rand(n, 3, generator=gen) - 0.5).numpy(), None, (0.0, 1.0), sh_degree=0, seed=seed)
    with torch.no_grad():
        splats["quats"].copy_(torch.randn(n, 4, generator=gen))
        splats["quats_r"].copy_(torch.randn(n, 4, generator=gen))
    return splats


def test_split_4d_samples_children_from_the_parent_4d_gaussian():
    splats = _splats(n=3)
    optimizers = create_optimizers(splats, 1.0, lrs={"times": 1e-3, "scales_t": 1e-3, "quats_r": 1e-3})
    reps = 4000  # many copies of Gaussian 1, each split once: the children sample N(mu, Sigma) in 4D
    with torch.no_grad():
        parent = {k: v[1].clone() for k, v in splats.items()}
    for k in list(splats.keys()):
        splats[k] = torch.nn.Parameter(splats[k].detach()[[1]].repeat_interleave(reps, 0))
    optimizers = create_optimizers(splats, 1.0, lrs={"times": 1e-3, "scales_t": 1e-3, "quats_r": 1e-3})
    state = {"grad2d": torch.arange(reps, dtype=torch.float32)}
    split_4d(splats, optimizers, state, torch.ones(reps, dtype=torch.bool))
    assert len(splats["means"]) == 2 * reps and state["grad2d"].shape == (2 * reps,)
    xyzt = torch.cat([splats["means"], splats["times"]], dim=1).detach().double()  # [2 reps, 4]
    cov = covariance_4d(parent["scales"][None], parent["scales_t"][None], parent["quats"][None], parent["quats_r"][None])[0]
    mu = torch.cat([parent["means"], parent["times"]]).double()
    torch.testing.assert_close(xyzt.mean(0), mu, atol=4 * cov.diagonal().max().sqrt().item() / reps**0.5, rtol=0)
    emp = torch.cov(xyzt.T)
    assert (emp - cov.double()).abs().max() < 0.08 * cov.diagonal().max()
    torch.testing.assert_close(splats["scales"][0], parent["scales"] - torch.log(torch.tensor(1.6)))
    torch.testing.assert_close(splats["scales_t"][0], parent["scales_t"] - torch.log(torch.tensor(1.6)))
    assert optimizers["times"].param_groups[0]["params"][0] is splats["times"]


def test_update_state_scatters_frame_subsets_and_time_gradient():
    n = 6
    splats = _splats(n=n)
    strategy = Default4DStrategy(refine_stop_iter=100)
    state = strategy.initialize_state(scene_scale=1.0)
    infos = []
    for ids in (torch.tensor([1, 4]), torch.tensor([4, 5])):  # two frames of a batch, each with its alive subset
        means2d = torch.zeros(1, len(ids), 2, requires_grad=True)
        dt = torch.zeros(len(ids), requires_grad=True)
        (means2d * torch.tensor([3.0, 4.0])).sum().backward()  # |grad| = 5 per Gaussian before scaling
        (dt * -2.0).sum().backward()
        infos.append({"means2d": means2d, "dt": dt, "ids": ids, "radii": torch.ones(1, len(ids), 2),
                      "width": 2, "height": 2, "n_cameras": 1})
    strategy._update_state(splats, state, infos)
    # x (width / 2) and x 2 frames: 5 x 2 per visit; Gaussian 4 was in both frames
    torch.testing.assert_close(state["grad2d"], torch.tensor([0, 10, 0, 0, 20, 10.0]))
    torch.testing.assert_close(state["count"], torch.tensor([0, 1, 0, 0, 2, 1.0]))
    torch.testing.assert_close(state["grad_t"], torch.tensor([0, 4, 0, 0, 8, 4.0]))


def test_stability_weight_uses_the_second_time_derivative_of_the_marginal():
    """w(t) = 1 / (0.5 tanh|d^2 p / dt^2| + 0.5), with d^2 p / dt^2 from finite differences of p(t)."""
    splats = _splats(n=20)
    cov = covariance_4d(splats["scales"], splats["scales_t"], splats["quats"], splats["quats_r"]).detach().double()
    mu_t = splats["times"].detach().double()[:, 0]

    def p(t):
        return torch.exp(-0.5 * (t - mu_t) ** 2 / cov[:, 3, 3])

    h = 1e-4
    for t in (0.0, 0.3, 0.55, 1.0):
        p2 = (p(t + h) - 2 * p(t) + p(t - h)) / h**2
        torch.testing.assert_close(stability_weight(splats, t).double(), 1.0 / (0.5 * torch.tanh(p2.abs()) + 0.5),
                                   rtol=1e-3, atol=0)


def test_transient_gaussian_weighs_less_where_it_is_seen():
    """At its peak a flash (sigma_t 0.03) gets w ~ 1, a Gaussian there all along w ~ 2: for the same spatial
    contribution the steady one scores twice as high."""
    splats = _splats(n=3)
    with torch.no_grad():
        for k in ("quats", "quats_r"):
            splats[k].copy_(torch.tensor([1.0, 0, 0, 0]))
        splats["times"].fill_(0.5)
        splats["scales_t"][0] = -3.5  # sigma_t 0.03: a flash in the middle of the sequence
        splats["scales_t"][1] = 1.5  # sigma_t 4.5: there all along
        splats["scales_t"][2] = 0.0  # sigma_t 1
    w = stability_weight(splats, 0.5)
    assert w[0] < 1.01 and w[1] > 1.9 and w[0] < w[2] < w[1]


def test_score_ranks_unseen_and_transient_gaussians_last(tiny_dynamic_scene):
    from gspruner.data import load_scene
    from gspruner.pruning.base import PruneContext

    scene = load_scene(tiny_dynamic_scene, background=(0.0, 0.0, 0.0))
    ctx = PruneContext(views=lambda: ((c, None) for c in scene.train), device=torch.device("cpu"), max_steps=1,
                       densify_stop_step=0, sh_degree=0, frame_times=torch.tensor([c.time for c in scene.train]))
    splats = create_splats_4d(torch.zeros(4, 3).numpy(), None, (0.0, 1.0), sh_degree=0, init_opacity=0.9)
    with torch.no_grad():
        splats["scales"].fill_(-2.5)  # 8 cm blobs at the centre of the object, seen from every camera
        splats["means"][3] = torch.tensor([0.0, 0.0, 30.0])  # far outside every view
        splats["scales_t"][0] = 1.5  # steady
        splats["scales_t"][1] = -4.0  # a flash at t = 0.5
        splats["times"][1] = 0.5
        splats["scales_t"][2] = 1.5
        splats["means"][2] = splats["means"][0] + 0.01  # right behind/beside the steady one: partly hidden
    score = spatiotemporal_score(splats, ctx)
    assert score[3] == 0  # no pixel sees it
    assert score[1] < score[0]  # seen in at most one frame, and unstable there
    assert score[0] > 0 and score[2] > 0


def test_filter_uses_the_two_nearest_keyframes():
    visible = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1]], dtype=torch.bool)
    f = TemporalFilter(torch.tensor([0.0, 0.5, 1.0]), visible)
    assert f.active(0.25).tolist() == [True, True, False, False]
    assert f.active(0.75).tolist() == [False, True, True, True]
    assert f.active(0.5).tolist() == [True, True, False, False]  # on a key-frame: it and the one before
    assert f.active(-0.2).tolist() == [True, False, False, False]  # before the first: clamped
    assert f.active(1.3).tolist() == [False, False, True, True]
    g = TemporalFilter.from_state(f.state_dict(), "cpu")
    assert torch.equal(g.visible, f.visible)


def test_keyframe_times():
    frames = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    torch.testing.assert_close(keyframe_times(frames, every=3), torch.tensor([0.1, 0.4, 0.7]))
    torch.testing.assert_close(keyframe_times(frames, every=4), torch.tensor([0.1, 0.5, 0.7]))
    torch.testing.assert_close(keyframe_times(frames, count=4), torch.linspace(0.1, 0.7, 4))


def _cfg(scene, result_dir, **kw):
    base = dict(data_dir=scene, result_dir=result_dir, max_steps=150, device="cpu", progress=False, lpips=False,
                log_every=10, init_num_pts=3000, sh_degree=1)
    base.update(kw)
    return TrainConfig(**base)


def test_4d_training_pruning_filter_and_export(tiny_dynamic_scene, tmp_path, capsys):
    untrained = Trainer(_cfg(tiny_dynamic_scene, tmp_path / "untrained", max_steps=1)).train()
    r = tmp_path / "pruned"
    m = Trainer(_cfg(tiny_dynamic_scene, r, prune=SpatioTemporalConfig(ratio=0.6))).train()
    saved = json.loads((r / "metrics.json").read_text())
    assert saved["model"] == "4d" and saved["batch_size"] == 2 and saved["prune"] == "spatiotemporal"
    assert m["psnr"] > untrained["psnr"] + 3.0  # it learned the moving scene
    assert saved["prune_ratio"] == pytest.approx(0.6, abs=1e-3)
    assert saved["num_gaussians"] == round(saved["num_gaussians_before_prune"] * 0.4)
    # the filter narrows what each frame rasterizes below what the temporal marginal alone keeps
    assert saved["temporal_filter"] and saved["num_keyframes"] == 6
    assert saved["filter_views"] == "all"  # auto: a monocular scene's masks come from every training camera
    # test frames lie between training frames: all inside the training time span
    assert saved["num_views_in_span"] == saved["num_views"] and saved["num_views_out_of_span"] == 0
    assert saved["psnr_in_span"] == pytest.approx(saved["psnr"]) and saved["psnr_out_of_span"] is None
    assert saved["mean_rasterized"] < saved["mean_rasterized_unfiltered"] <= saved["num_gaussians"]
    assert abs(saved["psnr"] - saved["psnr_unfiltered"]) < 3.0
    ckpt = load_checkpoint(r / "ckpt" / "last.pt")
    assert ckpt["pruner"]["filter"]["visible"].shape == (6, saved["num_gaussians"])
    # eval of the checkpoint renders through the filter and reproduces the run's figure
    assert main(["eval", "--ckpt", str(r / "ckpt" / "last.pt"), "--device", "cpu", "--no-lpips"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["psnr"] == pytest.approx(saved["psnr"], abs=1e-4)
    assert out["mean_rasterized"] == pytest.approx(saved["mean_rasterized"])
    # export --time: the snapshot's Gaussians are those alive at t within the filter
    assert main(["export", "--ckpt", str(r / "ckpt" / "last.pt"), "--time", "0.5", "--format", "ply",
                 "--out", str(tmp_path / "t05.ply")]) == 0
    n_at_half = read_ply(tmp_path / "t05.ply")["means"].shape[0]
    assert 0 < n_at_half <= saved["num_gaussians"]
    assert main(["export", "--ckpt", str(r / "ckpt" / "last.pt"), "--format", "ply", "--out", str(tmp_path / "x.ply")]) == 2
    assert not (tmp_path / "x.ply").exists()
    assert read_ply(r / "point_cloud.ply")["means"].shape[0] > 0  # the mid-sequence snapshot


def test_metrics_split_at_the_training_time_span(tiny_dynamic_scene):
    """evaluate(time_range=...) reports the views inside the training frames' span and those outside it apart."""
    from gspruner.data import load_scene
    from gspruner.evaluation import evaluate

    scene = load_scene(tiny_dynamic_scene)
    gen = torch.Generator().manual_seed(0)
    splats = create_splats_4d(((torch.rand(2000, 3, generator=gen) - 0.5) * 2).numpy(), None, (0.0, 1.0), sh_degree=0)
    times = sorted(cam.time for cam in scene.test)
    span = (times[1] - 1e-3, times[-2] + 1e-3)
    m = evaluate(splats, scene, "cpu", 0, with_lpips=False, time_range=span)
    assert m["num_views_in_span"] == len(times) - 2 and m["num_views_out_of_span"] == 2
    mean = (m["psnr_in_span"] * m["num_views_in_span"] + m["psnr_out_of_span"] * 2) / len(times)
    assert mean == pytest.approx(m["psnr"]) and m["psnr_in_span"] != m["psnr_out_of_span"]
    # each view by name and time: the span means are means of these
    by_name = {v["name"]: v for v in m["per_view"]}
    assert sorted(by_name) == sorted(cam.name for cam in scene.test)
    inside = [v["psnr"] for v in m["per_view"] if span[0] <= v["time"] <= span[1]]
    assert len(inside) == m["num_views_in_span"] and sum(inside) / len(inside) == pytest.approx(m["psnr_in_span"])
    assert "psnr_in_span" not in evaluate(splats, scene, "cpu", 0, with_lpips=False)


def test_4d_resume_is_exact(tiny_dynamic_scene, tmp_path):
    full = Trainer(_cfg(tiny_dynamic_scene, tmp_path / "full", max_steps=60))
    full.train()
    part = Trainer(_cfg(tiny_dynamic_scene, tmp_path / "part", max_steps=60))
    part._setup()
    part.cfg.result_dir.mkdir(parents=True)
    for step in range(30):
        part.train_step(step)
    part._save(29, tic=0.0)
    resumed = Trainer(_cfg(tiny_dynamic_scene, tmp_path / "part", max_steps=60, resume=True))
    resumed._setup()
    for step in range(30, 60):
        resumed.train_step(step)
    a = load_checkpoint(tmp_path / "full" / "ckpt" / "last.pt")["splats"]
    assert set(a) >= {"times", "scales_t", "quats_r"}
    for k, v in a.items():
        torch.testing.assert_close(resumed.splats[k].detach(), v, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("args", [
    ["strategy:mcmc"],
    ["prune:lightgaussian"],
    ["prune:spatiotemporal", "--prune.threshold", "0.1"],  # 4DGS-1K prunes by ratio only
    ["prune:spatiotemporal", "--prune.ratio", "1.5"],
    ["prune:spatiotemporal", "--prune.keyframe-every", "0"],
])
def test_4d_refuses_options_it_cannot_honour(tiny_dynamic_scene, tmp_path, capsys, args):
    r = tmp_path / "r"
    assert main(["train", "--data-dir", str(tiny_dynamic_scene), "--result-dir", str(r), "--device", "cpu", *args]) == 2
    assert not r.exists()
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["prune:spatiotemporal"], ["--batch-size", "2"]])
def test_static_scene_refuses_4d_options(tiny_scene, tmp_path, args):
    r = tmp_path / "r"
    assert main(["train", "--data-dir", str(tiny_scene), "--result-dir", str(r), "--device", "cpu", *args]) == 2
    assert not r.exists()


def test_prune_command_on_a_4d_checkpoint(tiny_dynamic_scene, tmp_path):
    """4DGS-1K's own order: train, then prune once and fine-tune through the filter (`gspruner prune`)."""
    r = tmp_path / "trained"
    Trainer(_cfg(tiny_dynamic_scene, r, max_steps=40)).train()
    n = json.loads((r / "metrics.json").read_text())["num_gaussians"]
    out = tmp_path / "pruned"
    assert main(["prune", "--ckpt", str(r / "ckpt" / "last.pt"), "--result-dir", str(out), "score:spatiotemporal",
                 "--finetune-steps", "20", "--device", "cpu", "--no-lpips", "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["prune"] == "spatiotemporal" and m["num_gaussians_before_prune"] == n
    assert m["num_gaussians"] == n - round(0.8 * n) and m["temporal_filter"]
    assert main(["prune", "--ckpt", str(r / "ckpt" / "last.pt"), "--result-dir", str(tmp_path / "bad"),
                 "score:lightgaussian", "--device", "cpu"]) == 2  # a 3D score on a 4D model


def test_keyframe_masks_from_the_views_at_its_time_are_within_all_views(tiny_dynamic_scene):
    """filter_views "timestamp" (the paper: the training views at the key-frame's time; one camera for D-NeRF)
    gives subsets of "all" (every training camera rendered at that time), and key-frames are frame times."""
    from gspruner.data import load_scene
    from gspruner.pruning.base import PruneContext

    scene = load_scene(tiny_dynamic_scene, background=(0.0, 0.0, 0.0))
    frame_times = torch.tensor([c.time for c in scene.train])
    ctx = PruneContext(views=lambda: ((c, None) for c in scene.train), device=torch.device("cpu"), max_steps=1,
                       densify_stop_step=0, sh_degree=0, frame_times=frame_times)
    gen = torch.Generator().manual_seed(0)
    splats = create_splats_4d(((torch.rand(3000, 3, generator=gen) - 0.5) * 2).numpy(), None, (0.0, 1.0), sh_degree=0)
    keys = keyframe_times(frame_times)
    assert len(keys) == 6 and all(bool((frame_times == k).any()) for k in keys)
    own = TemporalFilter.build(splats, keys, ctx, "timestamp")
    every = TemporalFilter.build(splats, keys, ctx, "all")
    assert not (own.visible & ~every.visible).any()
    assert own.visible.sum() < every.visible.sum()
    # min_weight: visible = largest alpha T above it, within the any-pixel masks
    faint = TemporalFilter.build(splats, keys, ctx, "timestamp", min_weight=0.05)
    assert not (faint.visible & ~own.visible).any() and 0 < faint.visible.sum() < own.visible.sum()
    expect = torch.zeros(len(splats["means"]), dtype=torch.bool)
    for cam in (c for c in scene.train if abs(c.time - float(keys[0])) < 1e-6):
        ids, stats = _per_view_stats(splats, cam, float(keys[0]), ctx)
        expect[ids[stats.weight_max > 0.05]] = True
    assert torch.equal(faint.visible[0], expect)
