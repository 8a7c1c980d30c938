"""Learned pruning masks (gspruner/pruning/lp3dgs.py): LP-3DGS Gumbel-sigmoid and the STE baseline."""

import json

import pytest
import torch

from gspruner.checkpoint import load_checkpoint
from gspruner.cli import main
from gspruner.config import TrainConfig
from gspruner.errors import InputError
from gspruner.pruning import PRUNERS, PruneContext
from gspruner.pruning.lp3dgs import MASK, MaskPruner, gumbel_sigmoid, ste_mask
from gspruner.trainer import Trainer


def _ctx(max_steps=30_000, densify_stop=15_000, views=()):
    return PruneContext(views=lambda: iter(views), device=torch.device("cpu"), max_steps=max_steps,
                        densify_stop_step=densify_stop, sh_degree=0)


def _cfg(scene, result_dir, **kw):
    from gspruner.strategies import DefaultConfig

    base = dict(data_dir=scene, result_dir=result_dir, max_steps=90, device="cpu", progress=False, lpips=False,
                log_every=10, save_renders=False, strategy=DefaultConfig())  # ADC: the counts below are its
    base.update(kw)
    return TrainConfig(**base)


def test_gumbel_sigmoid_is_a_logistic_relaxation():
    """P(gs(x) > 1/2) = P(x + g > 0) = sigmoid(x) for logistic g; tau only sharpens the sample."""
    gen = torch.Generator().manual_seed(0)
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).repeat(100_000, 1)  # [1e5, 4]
    y = gumbel_sigmoid(x, 0.5, gen)
    frac_open = (y > 0.5).float().mean(0)
    torch.testing.assert_close(frac_open, torch.sigmoid(x[0]), atol=0.006, rtol=0)
    # temperature 0.5 sharpens: y = sigmoid(2 (x + g)) is near 0 or 1 more often than at tau = 1
    y1 = gumbel_sigmoid(x, 1.0, gen)
    assert ((y - 0.5).abs() > 0.4).float().mean() > ((y1 - 0.5).abs() > 0.4).float().mean() + 0.1


def test_ste_mask_is_hard_forward_soft_backward():
    m = torch.tensor([-6.0, -4.0, 0.0, 3.0], requires_grad=True)  # sigmoid: 0.0025, 0.018, 0.5, 0.95
    mask = ste_mask(m)
    assert mask.tolist() == [0.0, 1.0, 1.0, 1.0]
    mask.sum().backward()
    s = torch.sigmoid(m.detach())
    torch.testing.assert_close(m.grad, s * (1 - s))


def test_schedule_scales_with_floors():
    # the paper's 30k schedule: window 19.5k -> 20k, lr 0.05
    p = MaskPruner(_ctx(), "gumbel")
    assert (p.start_step, p.prune_step, p.mask_lr) == (19_500, 20_000, 0.05)
    assert (p.score_every, p.gate_step) == (20, 19_520)  # gate on at the first recompute, as the code
    # a 2k-step run: prune at 2/3, window 10 % of the run (not 33 steps), lr scaled to the paper's travel
    p = MaskPruner(_ctx(2000, 1000), "gumbel")
    assert (p.start_step, p.prune_step) == (1133, 1333) and p.mask_lr == pytest.approx(0.05 * 500 / 200)
    assert (p.score_every, p.gate_step) == (8, 1141)  # still 25 recomputes of S in the window
    # the window never starts before densification stops (MCMC stops at 25k of 30k)
    p = MaskPruner(_ctx(3000, 2500), "gumbel")
    assert p.start_step >= 2500 and p.prune_step == p.start_step + 300
    # STE: from the end of densification to the prune (Compact-3DGS's mask-pruning phase)
    p = MaskPruner(_ctx(), "ste")
    assert (p.start_step, p.prune_step, p.mask_lr) == (15_000, 20_000, 0.01)


def _toy_params(n):
    g = torch.Generator().manual_seed(0)
    params = torch.nn.ParameterDict({
        "means": torch.nn.Parameter(torch.randn(n, 3, generator=g)),
        "opacities": torch.nn.Parameter(torch.randn(n, generator=g)),
    })
    opts = {k: torch.optim.Adam([v], lr=0.1) for k, v in params.items()}
    return params, opts


def test_hard_prune_keeps_where_noise_free_mask_is_open():
    params, opts = _toy_params(6)
    p = MaskPruner(_ctx(100, 0), "gumbel")
    p._refresh_importance = lambda: p.importance  # no views here: S is set by hand below
    p.attach(params, opts)
    p.after_step(p.start_step - 1, params, opts, {})  # creates the mask (m = 1) and its optimizer
    assert MASK in params and MASK in opts and params[MASK].tolist() == [1.0] * 6
    with torch.no_grad():
        params[MASK].copy_(torch.tensor([2.0, -0.5, 0.3, -3.0, 1.0, 0.1]))
    p.importance = torch.tensor([0.5, 0.9, 0.0, 0.2, 0.01, 1.0])  # S = 0: no training pixel sees it
    means_before = params["means"].detach().clone()
    state = {"grad2d": torch.arange(6.0)}
    p.after_step(p.prune_step - 1, params, opts, state)
    keep = torch.tensor([True, False, False, False, True, True])  # m S > 0
    assert MASK not in params and MASK not in opts
    torch.testing.assert_close(params["means"].detach(), means_before[keep])
    assert state["grad2d"].tolist() == [0.0, 4.0, 5.0]
    s = p.summary()
    assert s["prune"] == "lp3dgs" and s["num_gaussians_before_prune"] == 6 and s["learned_prune_ratio"] == 0.5


def test_sparsity_is_weighted_by_the_covered_fraction_of_the_views():
    """LP-3DGS's lambda_m is scaled by the training renders' mean alpha (sum of alpha T over Gaussians and pixels /
    pixels), measured at each score refresh: an object in a quarter of an otherwise empty frame gets ~1/4 of it."""
    from pathlib import Path

    from gspruner.data.scene import Camera
    from gspruner.model.gaussians import activated, create_splats
    from gspruner.pruning.lp3dgs import SPARSITY_WEIGHT
    from gspruner.render import rasterize

    g = torch.Generator().manual_seed(3)
    points = (torch.rand(300, 3, generator=g) - 0.5) * torch.tensor([0.5, 0.5, 0.2])  # a slab in the image centre
    splats = create_splats(points.numpy(), None, sh_degree=0, init_opacity=0.9, init_scale=1.0)
    K = torch.tensor([[40.0, 0, 20], [0, 40.0, 16], [0, 0, 1]])
    views = []
    for z in (2.0, 2.5):
        c2w = torch.eye(4)
        c2w[2, 3] = -z
        views.append((Camera(f"v{z}", K, c2w, 40, 32, Path("unused.png")), torch.zeros(32, 40, 3)))
    p = MaskPruner(_ctx(100, 0, views), "gumbel")
    params = torch.nn.ParameterDict({k: torch.nn.Parameter(v.detach().clone()) for k, v in splats.items()})
    params[MASK] = torch.nn.Parameter(torch.full((300,), 0.3))
    p._params = params
    p._refresh_importance()
    a = activated(splats, 0)
    alphas = [rasterize(a["means"], a["quats"], a["scales"], a["opacities"], a["colors"], cam.viewmat[None],
                        cam.K[None], 40, 32, sh_degree=0)[1].mean() for cam, _ in views]
    expected = float(torch.stack(alphas).mean().detach())
    assert 0.1 < expected < 0.6  # the object covers part of the frame
    assert p.coverage == pytest.approx(expected, rel=1e-4)
    p.start_step, p.prune_step = 0, 100
    torch.testing.assert_close(p.extra_loss(5), SPARSITY_WEIGHT * expected * torch.sigmoid(torch.tensor(0.3)),
                               rtol=1e-4, atol=0)
    assert p.summary()["lp_coverage"] == p.coverage


def test_mask_follows_densification_ops():
    """The mask is a per-Gaussian parameter: gsplat's ops keep it aligned, S is refreshed for new N."""
    from gsplat.strategy.ops import duplicate

    params, opts = _toy_params(4)
    p = MaskPruner(_ctx(100, 0), "gumbel")
    p._refresh_importance = lambda: None  # no views here
    p.attach(params, opts)
    p.after_step(p.start_step - 1, params, opts, {})
    with torch.no_grad():
        params[MASK].copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    p.importance = torch.ones(4)
    duplicate(params, opts, {}, torch.tensor([False, True, False, True]))
    assert params[MASK].tolist() == [1.0, 2.0, 3.0, 4.0, 2.0, 4.0]
    calls = []
    p._refresh_importance = lambda: calls.append(1) or torch.ones(6)  # no views here: count the refresh
    assert p.opacity_gate(p.start_step) is None  # sparsity only until the first recompute
    assert p.opacity_gate(p.gate_step).shape == (6,) and calls == [1]


@pytest.mark.parametrize("prune", ["lp3dgs", "ste-mask"])
def test_mask_pruner_has_no_fixed_ratio(tiny_scene, tmp_path, prune, capsys):
    """A learned-ratio pruner has no ratio option: the command line refuses one, and nothing is written."""
    r = tmp_path / "r"
    assert main(["train", "--data-dir", str(tiny_scene), "--result-dir", str(r), f"prune:{prune}", "--prune.ratio",
                 "0.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "--prune.ratio" in err[0]
    assert not r.exists()


@pytest.mark.parametrize("prune", ["lp3dgs", "ste-mask"])
def test_learned_prune_in_training(tiny_scene, tmp_path, prune):
    """A trained tiny scene plus Gaussians no view sees: the mask learns to drop those and reports a ratio."""
    r = tmp_path / prune
    trainer = Trainer(_cfg(tiny_scene, r, prune=PRUNERS[prune](), max_steps=90))
    trainer._setup()
    p = trainer.pruner
    assert isinstance(p, MaskPruner) and 0 < p.start_step < p.prune_step < 90
    trainer.cfg.result_dir.mkdir(parents=True)
    step = 0
    while step < p.start_step - 1:
        trainer.train_step(step)
        step += 1
    # 300 junk Gaussians no pixel sees (opacity 6e-6 < 1/255): no rendering gradient, S = 0
    from gsplat.strategy.ops import duplicate

    n_real = len(trainer.splats["means"])
    duplicate(trainer.splats, trainer.optimizers, {}, torch.arange(n_real) < 300)
    with torch.no_grad():
        trainer.splats["opacities"][n_real:] = -12.0
    trainer.strategy_state = {k: (torch.cat([v, v[:300]]) if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == n_real else v)
                              for k, v in trainer.strategy_state.items()}
    for step in range(step, 90):
        trainer.train_step(step)
        if step == p.gate_step:
            assert MASK in trainer.splats and trainer.pruner.opacity_gate(step) is not None
    assert MASK not in trainer.splats
    m = trainer.finish(89)
    saved = json.loads((r / "metrics.json").read_text())
    assert saved["prune"] == prune and saved["num_gaussians_before_prune"] == n_real + 300
    assert 300 / (n_real + 300) <= saved["learned_prune_ratio"] < 1.0
    assert m["num_gaussians"] == round((n_real + 300) * (1 - saved["learned_prune_ratio"]))
    # every junk Gaussian is gone
    assert (trainer.splats["opacities"] > -11.0).all()


def test_resume_inside_mask_window_is_exact(tiny_scene, tmp_path):
    full = Trainer(_cfg(tiny_scene, tmp_path / "full", prune=PRUNERS["lp3dgs"]()))
    full.train()
    p = full.pruner
    stop = (p.start_step + p.prune_step) // 2  # inside the window

    part = Trainer(_cfg(tiny_scene, tmp_path / "part", prune=PRUNERS["lp3dgs"]()))
    part._setup()
    part.cfg.result_dir.mkdir(parents=True)
    for step in range(stop + 1):
        part.train_step(step)
    part._save(stop, tic=0.0)
    ck = load_checkpoint(tmp_path / "part" / "ckpt" / "last.pt")
    assert MASK in ck["splats"] and MASK in ck["optimizers"]

    resumed = Trainer(_cfg(tiny_scene, tmp_path / "part", prune=PRUNERS["lp3dgs"](), resume=True))
    resumed._setup()
    assert resumed.start_step == stop + 1 and MASK in resumed.optimizers
    for step in range(stop + 1, 90):
        resumed.train_step(step)
    a = load_checkpoint(tmp_path / "full" / "ckpt" / "last.pt")["splats"]
    assert set(a) == set(resumed.splats) and MASK not in a
    for k, v in a.items():
        torch.testing.assert_close(resumed.splats[k].detach(), v, rtol=1e-5, atol=1e-6)
    assert resumed.pruner.summary()["learned_prune_ratio"] == full.pruner.summary()["learned_prune_ratio"]
