import dataclasses
import math

import pytest

from gspruner.strategies import DefaultConfig  # the pruner tests count on ADC (auto would pick FastGS, which prunes too)
import torch

from gspruner.cli import main
from gspruner.config import TrainConfig
from gspruner.model import create_optimizers
from gspruner.errors import InputError
from gspruner.pruning import LightGaussianConfig, Pruner, PrunerConfig, RadSplatConfig, remove_gaussians
from gspruner.pruning.base import PruneContext
from gspruner.pruning.importance import importance_from_stats, lightgaussian_volume_factor
from gspruner.pruning.oneshot import keep_by_ratio, keep_by_threshold
from gspruner.render import project
from gspruner.render.stats import contribution_stats
from gspruner.render.torch_raster import tile_ranges
from gspruner.trainer import Trainer


def _random_scene(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * 0.6 + torch.tensor([0.0, 0.0, 4.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.25 + 0.03
    opacities = torch.rand(n, generator=g) * 0.9 + 0.05
    viewmat = torch.eye(4)
    K = torch.tensor([[30.0, 0, 20], [0, 30.0, 15], [0, 0, 1]])
    return means, quats, scales, opacities, viewmat, K, 40, 30


def _brute_force_stats(means, quats, scales, opacities, viewmat, K, W, H, mask=None):
    """Per-pixel loop over depth-sorted Gaussians with gsplat's rules, independent of the pair layout."""
    p = project(means, quats, scales, opacities, viewmat[None], K[None], W, H)
    m2, con, op, dep, rad = p.means2d[0].double(), p.conics[0].double(), p.opacities[0].double(), p.depths[0], p.radii[0]
    x0, y0, x1, y1 = tile_ranges(p.means2d[0], rad, 16, math.ceil(W / 16), math.ceil(H / 16))
    n = means.shape[0]
    out = {k: torch.zeros(n, dtype=torch.float64) for k in ("weight_sum", "weight_max", "hit_count", "trans_sum", "max_count")}
    order = [int(i) for i in torch.argsort(dep, stable=True) if (rad[i] > 0).all()]
    for y in range(H):
        for x in range(W):
            m = 1.0 if mask is None else float(mask[y, x])
            T, best, best_w = 1.0, None, -1.0
            for i in order:
                if not (x0[i] <= x // 16 < x1[i] and y0[i] <= y // 16 < y1[i]):
                    continue
                dx, dy = float(m2[i, 0]) - (x + 0.5), float(m2[i, 1]) - (y + 0.5)
                a, b, c = con[i].tolist()
                sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                alpha = min(0.999, float(op[i]) * math.exp(-sigma))
                if sigma < 0 or alpha < 1 / 255:
                    continue
                if T * (1 - alpha) <= 1e-4:
                    break
                w = alpha * T
                out["weight_sum"][i] += m * w
                out["weight_max"][i] = max(float(out["weight_max"][i]), m * w)
                out["hit_count"][i] += m
                out["trans_sum"][i] += m * T
                if w > best_w:
                    best, best_w = i, w
                T *= 1 - alpha
            if best is not None:
                out["max_count"][best] += m
    return out


@pytest.mark.parametrize("masked", [False, True])
def test_contribution_stats_match_brute_force(masked):
    scene = _random_scene()
    W, H = scene[-2], scene[-1]
    mask = (torch.rand(H, W, generator=torch.Generator().manual_seed(1)) > 0.5).float() if masked else None
    stats = contribution_stats(*scene, pixel_weights=mask)
    ref = _brute_force_stats(*scene, mask=mask)
    assert ref["hit_count"].sum() > 100  # the scene really covers the image
    for name, expected in ref.items():
        torch.testing.assert_close(getattr(stats, name).double(), expected, rtol=1e-5, atol=1e-6, msg=name)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("masked", [False, True])
def test_cuda_statistics_kernel_matches_the_torch_path(masked):
    """cuda/csrc/contribution_stats.cu (after gsplat's projection and binning) against the CPU path."""
    from gspruner.render import cuda_stats

    assert cuda_stats.available(), "the statistics kernel did not build"
    scene = _random_scene(seed=5)
    W, H = scene[-2], scene[-1]
    mask = (torch.rand(H, W, generator=torch.Generator().manual_seed(1)) > 0.5).float() if masked else None
    cpu = contribution_stats(*scene, pixel_weights=mask)
    on_gpu = [x.cuda() if isinstance(x, torch.Tensor) else x for x in scene]
    gpu = contribution_stats(*on_gpu, pixel_weights=None if mask is None else mask.cuda())
    assert cpu.hit_count.sum() > 100
    for name in ("weight_sum", "weight_max", "hit_count", "trans_sum"):
        torch.testing.assert_close(getattr(gpu, name).cpu().float(), getattr(cpu, name).float(), rtol=1e-3, atol=1e-3, msg=name)
    # the most-contributing Gaussian of a pixel can flip between two near-equal ones under float rounding
    assert (getattr(gpu, "max_count").cpu() - cpu.max_count).abs().sum() <= 0.01 * cpu.max_count.sum() + 2


def test_scores_rank_as_defined():
    scene = _random_scene(seed=3)
    stats = contribution_stats(*scene)
    means, quats, scales, opacities = scene[:4]
    splats = {"opacities": torch.logit(opacities), "scales": torch.log(scales)}
    torch.testing.assert_close(importance_from_stats("radsplat", stats, splats), stats.weight_max)
    torch.testing.assert_close(importance_from_stats("opacity", stats, splats), opacities)
    lg = importance_from_stats("lightgaussian", stats, splats)
    gamma = lightgaussian_volume_factor(torch.log(scales))
    torch.testing.assert_close(lg, opacities * stats.trans_sum * gamma)
    assert gamma.max() == pytest.approx(1.0) and (gamma > 0).all() and (gamma <= 1).all()
    ms = importance_from_stats("minisplatting", stats, splats)
    assert ((ms == 0) == (stats.max_count == 0)).all()


def test_keep_rules():
    imp = torch.tensor([0.5, 0.1, 0.9, 0.3, 0.7, 0.2])
    keep = keep_by_ratio(imp, 0.5)
    assert keep.tolist() == [True, False, True, False, True, False]
    assert keep_by_threshold(imp, 0.3).tolist() == [True, False, True, True, True, False]
    with pytest.raises(ValueError):
        keep_by_ratio(imp, 1.0)


def test_remove_keeps_optimizer_and_strategy_state_in_sync():
    n = 10
    splats = torch.nn.ParameterDict({"means": torch.nn.Parameter(torch.randn(n, 3)),
                                     "opacities": torch.nn.Parameter(torch.randn(n))})
    opts = {k: torch.optim.Adam([{"params": p, "lr": 0.1, "name": k}]) for k, p in splats.items()}
    (splats["means"].sum() + splats["opacities"].pow(2).sum()).backward()
    for o in opts.values():
        o.step()
    avg_before = opts["opacities"].state[splats["opacities"]]["exp_avg"].clone()
    state = {"grad2d": torch.arange(n, dtype=torch.float32), "binoms": torch.ones(n, n), "scene_scale": 1.0}
    remove = torch.zeros(n, dtype=torch.bool)
    remove[[1, 4, 7]] = True
    remove_gaussians(splats, opts, state, remove)
    assert splats["means"].shape[0] == 7
    torch.testing.assert_close(opts["opacities"].state[splats["opacities"]]["exp_avg"], avg_before[~remove])
    assert state["grad2d"].tolist() == [0, 2, 3, 5, 6, 8, 9]
    assert state["binoms"].shape == (n, n)  # MCMC's table is not per Gaussian


def test_ratio_pruner_in_training(tiny_scene, tmp_path):
    cfg = TrainConfig(strategy=DefaultConfig(), data_dir=tiny_scene, result_dir=tmp_path / "r", max_steps=120, device="cpu", progress=False,
                      lpips=False, prune=LightGaussianConfig(ratio=0.5))
    t = Trainer(cfg)
    m = t.train()
    stop = t.strategy.refine_stop_iter
    assert t.pruner.steps == [max(round(2 / 3 * 120), stop)]
    assert m["prune"] == "lightgaussian"
    assert m["num_gaussians"] == m["num_gaussians_before_prune"] - round(0.5 * m["num_gaussians_before_prune"])
    assert m["prune_ratio"] == pytest.approx(0.5, abs=1e-3)


def test_rounds_split_the_ratio_over_evenly_spaced_prunes(tiny_scene, tmp_path):
    """prune:rounds removes `ratio` in all, in `rounds` equal prunes from densification's end to `end`."""
    from gspruner.pruning import RoundsConfig
    from gspruner.pruning.configs import per_round_ratio, round_fractions

    assert per_round_ratio(0.85, 3) == pytest.approx(1 - 0.15 ** (1 / 3))
    assert (1 - per_round_ratio(0.9, 2)) ** 2 == pytest.approx(0.1)
    assert round_fractions(0.5, 0.8, 4) == pytest.approx((0.5, 0.6, 0.7, 0.8)) and round_fractions(0.3, 0.9, 1) == (0.3,)
    ctx = PruneContext(views=lambda: iter(()), device=torch.device("cpu"), max_steps=30_000,
                       densify_stop_step=15_000, sh_degree=3)
    p = RoundsConfig(ratio=0.875, rounds=3, start=0.5, end=0.7).setup(ctx)
    assert p.steps == [15_000, 18_000, 21_000] and p.ratio == pytest.approx(0.5) and p.score == "removal"
    assert RoundsConfig().at_start().setup(ctx).steps[0] == 15_000  # never before densification stops

    cfg = TrainConfig(strategy=DefaultConfig(), data_dir=tiny_scene, result_dir=tmp_path / "r", max_steps=120, device="cpu", progress=False,
                      lpips=False, prune=RoundsConfig(ratio=0.875, rounds=3, score="lightgaussian"))
    t = Trainer(cfg)
    m = t.train()
    assert len(t.pruner.steps) == 3 and t.pruner.steps[0] >= t.strategy.refine_stop_iter
    assert m["prune"] == "rounds:lightgaussian"
    n = m["num_gaussians_before_prune"]
    for _ in range(3):  # each round removes round(0.5 * what is left)
        n -= round(0.5 * n)
    assert m["num_gaussians"] == n and m["prune_ratio"] == pytest.approx(0.875, abs=0.01)


def test_rounds_raise_the_means_learning_rate_after_each_prune():
    """After each round the means' lr is x means_lr_boost (default 2), other lrs untouched; 1 turns it off."""
    from gspruner.pruning import RoundsConfig

    ctx = PruneContext(views=lambda: iter(()), device=torch.device("cpu"), max_steps=300, densify_stop_step=100,
                       sh_degree=0)
    for boost in (2.0, 1.0):
        g = torch.Generator().manual_seed(0)
        params = torch.nn.ParameterDict({"means": torch.nn.Parameter(torch.randn(64, 3, generator=g)),
                                         "opacities": torch.nn.Parameter(torch.randn(64, generator=g))})
        optimizers = {k: torch.optim.Adam([{"params": v, "lr": 0.01, "name": k}]) for k, v in params.items()}
        p = RoundsConfig(ratio=0.75, rounds=2, start=0.5, end=0.6, score="opacity", means_lr_boost=boost).setup(ctx)
        assert p.steps == [150, 180]
        lrs = []
        for step in range(200):
            p.after_step(step, params, optimizers, {})
            lrs.append(optimizers["means"].param_groups[0]["lr"])
        assert lrs[149] == 0.01 and lrs[150] == pytest.approx(0.01 * boost) and lrs[180] == pytest.approx(0.01 * boost**2)
        assert optimizers["opacities"].param_groups[0]["lr"] == 0.01 and params["means"].shape[0] == 16
        assert p.summary()["means_lr_boost"] == boost
    with pytest.raises(InputError, match="--prune.means-lr-boost"):
        RoundsConfig(means_lr_boost=0.5)


def test_rounds_stop_once_the_training_views_fall_below_their_best(monkeypatch):
    """With --prune.stop-db the training views' PSNR is measured before each prune, and the prunes stop for good at
    the first measurement more than stop_db below the best before it (later measurements are not taken)."""
    from gspruner.pruning import RoundsConfig
    from gspruner.pruning import oneshot

    ctx = PruneContext(views=lambda: iter(()), device=torch.device("cpu"), max_steps=400, densify_stop_step=100,
                       sh_degree=0)
    for psnrs, stop_db, kept, measured in (([30.0, 31.0, 30.85, 32.0], 0.1, 4, 3),  # 0.15 below 31: stop at the 3rd
                                           ([30.0, 31.0, 30.95, 32.0], 0.1, 1, 4),  # within 0.1: all four prune
                                           ([30.0, 29.0, 35.0, 35.0], 0.5, 8, 2),   # stops at the 2nd for good
                                           ([30.0, 29.0, 35.0, 35.0], None, 1, 0)):  # off: no render at all
        readings = iter(psnrs)
        calls = []
        monkeypatch.setattr(oneshot, "views_psnr", lambda params, c: calls.append(1) or next(readings))
        params = torch.nn.ParameterDict({"means": torch.nn.Parameter(torch.randn(16, 3)),
                                         "opacities": torch.nn.Parameter(torch.randn(16))})
        optimizers = {k: torch.optim.Adam([{"params": v, "lr": 0.01, "name": k}]) for k, v in params.items()}
        p = RoundsConfig(ratio=15 / 16, rounds=4, start=0.5, end=0.8, score="opacity", stop_db=stop_db).setup(ctx)
        assert p.steps == [200, 240, 280, 320] and p.ratio == pytest.approx(0.5)
        for step in range(400):
            p.after_step(step, params, optimizers, {})
        assert params["means"].shape[0] == kept and len(calls) == measured
        if stop_db is not None:
            summary = p.summary()
            assert summary["views_psnr_before_prunes"] == psnrs[:measured]
            assert summary["prunes_stopped_at"] == (None if kept == 1 else p.steps[measured - 1])
            resumed = RoundsConfig(ratio=15 / 16, rounds=4, start=0.5, end=0.8, score="opacity", stop_db=stop_db).setup(ctx)
            resumed.load_state_dict(p.state_dict())
            assert resumed.summary() == summary
    with pytest.raises(InputError, match="--prune.stop-db"):
        RoundsConfig(stop_db=-0.1)


def test_views_psnr_renders_every_training_view(tiny_scene, tmp_path):
    """The stop rule's measurement is the mean PSNR of the trainer's renders of its training views."""
    from gspruner.evaluation import render_view
    from gspruner.metrics import psnr
    from gspruner.pruning.oneshot import views_psnr

    t = Trainer(TrainConfig(data_dir=tiny_scene, result_dir=tmp_path / "r", max_steps=20, device="cpu",
                            progress=False, lpips=False))
    t.train()
    ctx = t._prune_context()
    views = list(ctx.views())
    expected = [psnr(render_view(t.splats, cam, "cpu", ctx.sh_degree, ctx.background)[0].clamp(0, 1), image)
                for cam, image in views]
    assert len(views) == len(t.scene.train) >= 2 and len(set(expected)) > 1
    assert views_psnr(t.splats, ctx) == pytest.approx(sum(expected) / len(expected))


@pytest.mark.parametrize("kw,message", [(dict(ratio=0.0), "--prune.ratio"), (dict(rounds=0), "--prune.rounds"),
                                        (dict(start=0.8, end=0.6), "--prune.end"), (dict(end=1.2), "--prune.start")])
def test_rounds_options_are_checked_where_parsed(kw, message):
    from gspruner.pruning import RoundsConfig

    with pytest.raises(InputError, match=message):
        RoundsConfig(**kw)


def test_radsplat_threshold_schedule():
    ctx = PruneContext(views=lambda: iter(()), device=torch.device("cpu"), max_steps=30_000,
                       densify_stop_step=15_000, sh_degree=3)
    p = RadSplatConfig().setup(ctx)
    assert p.threshold == 0.01 and p.ratio is None and p.steps == [16_000, 24_000]
    assert RadSplatConfig(ratio=0.5).setup(ctx).steps == [20_000]
    assert LightGaussianConfig().setup(ctx).ratio == 0.66


@pytest.mark.parametrize("kw,message", [(dict(ratio=1.5), "--prune.ratio"), (dict(ratio=0.5, threshold=0.1), "exclude"),
                                        (dict(at=(1.5,)), "--prune.at")])
def test_score_pruner_options_are_checked_where_parsed(kw, message):
    with pytest.raises(InputError, match=message):
        RadSplatConfig(**kw)


def test_passes_rescore_the_survivors_between_steps(monkeypatch):
    """--prune.passes k removes the ratio in k steps that leave n (1 - ratio)^(j / k), each ranked by the score
    of the survivors alone. The score here makes Gaussians 0 and 1 stand in for each other (each scores 0 while
    the other is there, 10 once it is gone; Gaussian i > 1 scores i + 1): one pass removes both, two passes
    remove 0, then see that 1 is now needed and remove 2. The model reaches the score as the survivors only."""
    from gspruner.pruning import RemovalConfig
    from gspruner.pruning import oneshot

    def stand_ins(name, params, views, near, far, background):
        ids = params["means"][:, 0].round().long().tolist()  # the Gaussians' own ids, stored in their means
        return torch.tensor([(0.0 if (1 - i) in ids else 10.0) if i < 2 else i + 1.0 for i in ids])

    monkeypatch.setattr(oneshot, "compute_importance", stand_ins)
    ctx = PruneContext(views=lambda: iter(()), device=torch.device("cpu"), max_steps=100, densify_stop_step=0,
                       sh_degree=0)
    for passes, kept in ((1, [2, 3, 4, 5, 6, 7, 8, 9]), (2, [1, 3, 4, 5, 6, 7, 8, 9]),
                         (3, [1, 3, 4, 5, 6, 7, 8, 9])):
        means = torch.zeros(10, 3)
        means[:, 0] = torch.arange(10.0)
        params = torch.nn.ParameterDict({"means": torch.nn.Parameter(means),
                                         "opacities": torch.nn.Parameter(torch.zeros(10))})
        optimizers = {k: torch.optim.Adam([{"params": v, "lr": 0.01, "name": k}]) for k, v in params.items()}
        p = RemovalConfig(ratio=0.2, passes=passes, at=(0.0,)).setup(ctx)
        p.after_step(0, params, optimizers, {})
        assert params["means"][:, 0].round().long().tolist() == kept, passes
        assert p.summary().get("score_passes", 1) == passes
    with pytest.raises(InputError, match="--prune.passes"):
        RemovalConfig(ratio=0.5, passes=0)
    with pytest.raises(InputError, match="--prune.passes"):
        RadSplatConfig(passes=2)  # RadSplat's default is a threshold
    from gspruner.pruning import RoundsConfig

    rounds = RoundsConfig(ratio=0.75, rounds=2, passes=3, score="opacity").setup(ctx)
    assert rounds.passes == 3 and rounds.ratio == pytest.approx(0.5)  # each round in three passes
    with pytest.raises(InputError, match="--prune.passes"):
        RoundsConfig(passes=21)


def test_prune_command_end_to_end(tiny_scene, tmp_path, capsys):
    base = tmp_path / "base"
    Trainer(TrainConfig(data_dir=tiny_scene, result_dir=base, max_steps=60, device="cpu", progress=False, lpips=False)).train()
    ckpt = str(base / "ckpt" / "last.pt")
    before = torch.load(ckpt, weights_only=False)["splats"]["means"].shape[0]
    out = tmp_path / "pruned"
    assert main(["prune", "--ckpt", ckpt, "--result-dir", str(out), "score:radsplat", "--score.ratio", "0.6",
                 "--finetune-steps", "20", "--device", "cpu", "--no-progress", "--no-lpips"]) == 0
    import json

    m = json.loads((out / "metrics.json").read_text())
    assert m["num_gaussians_before_prune"] == before
    assert m["num_gaussians"] == before - round(0.6 * before)
    assert m["strategy"] == "none" and m["prune"] == "radsplat"
    out3 = tmp_path / "pruned3"  # the same ratio in three passes of the removal score
    assert main(["prune", "--ckpt", ckpt, "--result-dir", str(out3), "score:removal", "--score.ratio", "0.6",
                 "--score.passes", "3", "--finetune-steps", "20", "--device", "cpu", "--no-progress", "--no-lpips"]) == 0
    m3 = json.loads((out3 / "metrics.json").read_text())
    assert m3["num_gaussians"] == m["num_gaussians"] and m3["score_passes"] == 3 and m3["prune"] == "removal"
    out_pup = tmp_path / "pruned_pup"  # PUP's Fisher takes autograd Jacobians inside the prune
    assert main(["prune", "--ckpt", ckpt, "--result-dir", str(out_pup), "score:pup", "--score.ratio", "0.6",
                 "--score.passes", "2", "--finetune-steps", "5", "--device", "cpu", "--no-progress", "--no-lpips"]) == 0
    assert json.loads((out_pup / "metrics.json").read_text())["num_gaussians"] == m["num_gaussians"]
    # bad input: ratio outside (0,1), checkpoint of another scene
    capsys.readouterr()
    assert main(["prune", "--ckpt", ckpt, "--result-dir", str(tmp_path / "x"), "--score.ratio", "1.5", "--device", "cpu"]) == 2
    assert "error: --score.ratio must be in (0, 1)" in capsys.readouterr().err  # the option as `prune` spells it
    assert main(["prune", "--ckpt", ckpt, "--result-dir", str(tmp_path / "x"), "score:removal", "--score.passes", "0",
                 "--device", "cpu"]) == 2
    assert "error: --score.passes must be in 1..20" in capsys.readouterr().err
    from gspruner.data.demo import ensure_demo_scene

    other = ensure_demo_scene(tmp_path / "other", width=32, height=24, n_views=10, n_points=300, seed=1)
    assert main(["prune", "--ckpt", ckpt, "--data-dir", str(other), "--result-dir", str(tmp_path / "y"), "--device", "cpu"]) == 2
    assert "another scene" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert main(["prune", "--ckpt", ckpt, "--result-dir", str(tmp_path / "z"), "score:nonsense"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0 and not (tmp_path / "z").exists()


# --- a method is one unit: a pruner defined here, registered with one line, trained through the CLI users get ---

class EveryOtherPruner(Pruner):
    """Toy pruner: at its step, remove every second Gaussian starting at `offset`."""

    name = "every-other"

    def __init__(self, ctx, offset: int):
        self.step, self.offset = max(ctx.densify_stop_step, ctx.max_steps // 2), offset
        self.num_before = None

    def after_step(self, step, params, optimizers, strategy_state) -> None:
        if step == self.step:
            n = params["means"].shape[0]
            remove = torch.zeros(n, dtype=torch.bool)
            remove[self.offset::2] = True
            self.num_before = n
            remove_gaussians(params, optimizers, strategy_state, remove)

    def summary(self) -> dict:
        return {"prune": self.name, "num_gaussians_before_prune": self.num_before}


@dataclasses.dataclass
class EveryOtherConfig(PrunerConfig):
    """Keep every other Gaussian."""

    offset: int = 0
    """Index of the first Gaussian removed (0 or 1)."""

    def __post_init__(self) -> None:
        if self.offset not in (0, 1):
            raise InputError(f"--prune.offset must be 0 or 1 (got {self.offset})")

    def setup(self, ctx, seed: int = 0) -> Pruner:
        return EveryOtherPruner(ctx, self.offset)


def test_a_new_pruner_is_one_config_and_one_registration(tiny_scene, tmp_path, monkeypatch, capsys):
    import json

    import yaml

    from gspruner.pruning import PRUNERS, register_pruner

    monkeypatch.setitem(PRUNERS, "every-other", None)  # restored after the test
    register_pruner("every-other", EveryOtherConfig)
    r = tmp_path / "r"
    assert main(["train", "--data-dir", str(tiny_scene), "--result-dir", str(r), "strategy:default", "prune:every-other", "--prune.offset",
                 "1", "--max-steps", "40", "--device", "cpu", "--no-progress", "--no-lpips", "--no-save-renders"]) == 0
    m = json.loads((r / "metrics.json").read_text())
    n = m["num_gaussians_before_prune"]
    assert m["prune"] == "every-other" and m["num_gaussians"] == n - n // 2  # offset 1 removes indices 1, 3, ..
    assert yaml.safe_load((r / "config.yml").read_text())["prune"] == {"name": "every-other", "offset": 1}
    with pytest.raises(SystemExit):  # listed in the help with its option
        main(["train", "prune:every-other", "--help"])
    assert "--prune.offset" in capsys.readouterr().out
    assert main(["train", "--data-dir", str(tiny_scene), "--result-dir", str(tmp_path / "bad"), "prune:every-other",
                 "--prune.offset", "3"]) == 2  # its own check, one error line
    assert capsys.readouterr().err.strip() == "error: --prune.offset must be 0 or 1 (got 3)"
    assert not (tmp_path / "bad").exists()


def _fisher_by_autograd(splats, cam, background, patch=4):
    """PUP's definition taken literally: one backward pass per patch and channel, outer products summed."""
    from gspruner.render import rasterize

    means = splats["means"].detach().clone().requires_grad_(True)
    log_scales = splats["scales"].detach().clone().requires_grad_(True)
    sh = torch.cat([splats["sh0"], splats["shN"]], dim=1).detach()
    img, _, _ = rasterize(means, splats["quats"].detach(), torch.exp(log_scales), torch.sigmoid(splats["opacities"]).detach(),
                          sh, cam.viewmat[None], cam.K[None], cam.width, cam.height, sh_degree=1,
                          backgrounds=torch.as_tensor(background, dtype=torch.float64)[None])
    F = torch.zeros(means.shape[0], 6, 6, dtype=torch.float64)
    for y0 in range(0, cam.height, patch):
        for x0 in range(0, cam.width, patch):
            for k in range(3):
                gm, gs = torch.autograd.grad(img[0, y0:y0 + patch, x0:x0 + patch, k].sum(), (means, log_scales),
                                             retain_graph=True)
                g6 = torch.cat([gm, gs], dim=-1)  # [N, 6]
                F += g6[:, :, None] * g6[:, None, :]
    return F


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_pup_fisher_matches_one_backward_pass_per_patch(dtype):
    """The analytic per-pair Fisher (pruning/sensitivity.py) equals PUP's definition computed by autograd, one
    backward pass per 4x4 patch and colour channel, background term and view-dependent colour included. Float64
    takes the composited pairs; float32 the compiled backend's fused kernel (when built)."""
    from types import SimpleNamespace

    from gspruner.pruning.sensitivity import fisher, scale_invariant_offset, sensitivity

    means, quats, scales, opacities, viewmat, K, W, H = _random_scene(n=30, seed=7)
    opacities[:3] = 0.99999  # alpha clamped at 0.999 near their centres: no gradient there
    g = torch.Generator().manual_seed(3)
    splats = {"means": means.double(), "quats": quats.double(), "scales": torch.log(scales).double(),
              "opacities": torch.logit(opacities).double(),
              "sh0": torch.randn(30, 1, 3, generator=g, dtype=torch.float64) * 0.5,
              "shN": torch.randn(30, 3, 3, generator=g, dtype=torch.float64) * 0.2}
    cam = SimpleNamespace(viewmat=viewmat.double(), K=K.double(), width=W, height=H)
    background = (0.2, 0.5, 0.9)
    expected = _fisher_by_autograd(splats, cam, background)
    assert expected.abs().sum() > 0 and (expected.diagonal(dim1=1, dim2=2) > 0).any(dim=1).sum() >= 20
    if dtype == torch.float32:  # the projection, alphas and Jacobians round to float32
        camera = SimpleNamespace(viewmat=cam.viewmat.float(), K=cam.K.float(), width=W, height=H)
        F = fisher({k: v.float() for k, v in splats.items()}, [(camera, None)], background=background)
        torch.testing.assert_close(F, expected, rtol=1e-3, atol=1e-5 * float(expected.abs().max()))
        return
    F = fisher(splats, [(cam, None)], background=background)
    torch.testing.assert_close(F, expected, rtol=1e-5, atol=1e-6 * float(expected.abs().max()))
    U = sensitivity(F)
    assert U.shape == (30,) and torch.isfinite(U).all()
    # pup-scale: the same log-det with each mean in units of its own scale (the chain rule through μ = μ₀ + s δ)
    # (one view leaves F rank-deficient, so the identity is checked on full-rank Fishers)
    A = torch.randn(30, 6, 6, generator=g, dtype=torch.float64)
    F_full = A @ A.transpose(1, 2) + 0.1 * torch.eye(6, dtype=torch.float64)
    D = torch.diag_embed(torch.cat([torch.exp(splats["scales"]), torch.ones(30, 3, dtype=torch.float64)], dim=1))
    torch.testing.assert_close(sensitivity(D @ F_full @ D), sensitivity(F_full) + scale_invariant_offset(splats["scales"]),
                               rtol=1e-5, atol=1e-4)
    # a Gaussian behind the camera: no gradient, F = 0, the floor's log: the lowest score
    unseen = dict(splats, means=torch.cat([splats["means"][:29], torch.tensor([[0.0, 0.0, -5.0]], dtype=torch.float64)]))
    U_unseen = sensitivity(fisher(unseen, [(cam, None)], background=background))
    assert U_unseen[29] == pytest.approx(6 * math.log(1e-30)) and int(U_unseen.argmin()) == 29


def _removal_scene(with_wall: bool, n: int = 30):
    """(splats (float64, SH degree 1), two views (camera, image) whose images are renders plus noise, background,
    render(splats, camera) -> image) for the removal-score tests."""
    from types import SimpleNamespace

    from gspruner.render import rasterize

    means, quats, scales, opacities, viewmat, K, W, H = _random_scene(n=n, seed=11)
    if with_wall:
        opacities[:3] = 0.99999  # alpha clamped at 0.999 near their centres
        means[3], scales[3], opacities[3] = torch.tensor([0.1, 0.0, 9.0]), 0.05, 0.9  # behind the wall
        means[4], scales[4], opacities[4] = torch.tensor([0.1, 0.0, 7.0]), torch.tensor([3.0, 3.0, 0.01]), 0.99999
    g = torch.Generator().manual_seed(5)
    splats = {"means": means.double(), "quats": quats.double(), "scales": torch.log(scales).double(),
              "opacities": torch.logit(opacities).double(),
              "sh0": torch.randn(n, 1, 3, generator=g, dtype=torch.float64) * 0.5,
              "shN": torch.randn(n, 3, 3, generator=g, dtype=torch.float64) * 0.2}
    side = torch.eye(4, dtype=torch.float64)
    side[0, 3] = 0.3  # a second view, shifted sideways
    cams = [SimpleNamespace(viewmat=v, K=K.double(), width=W, height=H) for v in (viewmat.double(), side)]
    background = (0.2, 0.5, 0.9)
    bg = torch.tensor(background, dtype=torch.float64)[None]

    def render(sp, cam):
        sh = torch.cat([sp["sh0"], sp["shN"]], dim=1)
        img, _, _ = rasterize(sp["means"], sp["quats"], torch.exp(sp["scales"]), torch.sigmoid(sp["opacities"]), sh,
                              cam.viewmat[None], cam.K[None], W, H, sh_degree=1, backgrounds=bg)
        return img[0]

    images = [render(splats, cam) + 0.3 * torch.rand(H, W, 3, generator=g, dtype=torch.float64) for cam in cams]
    return splats, list(zip(cams, images)), background, render


@pytest.mark.parametrize("with_wall, dtype", [(False, torch.float64), (True, torch.float64), (False, torch.float32),
                                              (True, torch.float32)])
def test_removal_error_matches_rerendering_without_each_gaussian(with_wall, dtype):
    """The removal scores (pruning/removal.py) equal, for every Gaussian, the L1 loss change of re-rendering each
    view without it (background and view-dependent colour included), summed over the views (`removal-sum`; some
    Gaussians make the views worse and score below 0) or the largest of them and 0 (`removal`). With an opaque
    wall (alpha clamped at 0.999) pixels reach the T < 1e-4 stop, beyond which the score cannot see what a
    removal would reveal: there it is close, and a Gaussian hidden behind the wall scores ~0. Float64 scores
    come from the composited pairs, float32 ones from the compiled backend's fused kernel (when built)."""
    from gspruner.pruning.importance import compute_importance

    n = 30
    splats, views, background, render = _removal_scene(with_wall, n)

    def l1(sp):  # [views] the L1 loss of each view
        return torch.tensor([float((render(sp, cam) - image).abs().sum()) for cam, image in views], dtype=torch.float64)

    base = l1(splats)
    per_view = torch.stack([l1({k: v[torch.arange(n) != i] for k, v in splats.items()}) - base for i in range(n)])
    for name, expected in (("removal", per_view.amax(dim=1).clamp_min(0.0)), ("removal-sum", per_view.sum(dim=1))):
        score = compute_importance(name, {k: v.to(dtype) for k, v in splats.items()},
                                   [(cam, image.to(dtype)) for cam, image in views], background=background).double()
        assert score.shape == (n,) and (expected > 0).sum() >= 10
        top = float(expected.abs().max())
        if not with_wall:
            tol = 1e-5 if dtype == torch.float64 else 1e-4  # float32: the projection and alphas round
            torch.testing.assert_close(score, expected, rtol=1e-4, atol=tol * top)
        else:
            torch.testing.assert_close(score, expected, rtol=0.0, atol=0.03 * top)
            assert abs(float(expected[3])) < 1e-3 * top and abs(float(score[3])) < 1e-3 * top
    assert (per_view.sum(dim=1) < 0).sum() >= 2  # removing these makes the views closer to their images


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_removal_scores_on_cuda_match_the_cpu():
    """The removal score has no CUDA kernel: on CUDA the PyTorch pairs path runs on the GPU. Its float32 scores
    equal the CPU's (the compiled kernel when built) to float32 rounding."""
    from gspruner.pruning.importance import compute_importance

    splats, views, background, _ = _removal_scene(with_wall=True)
    for name in ("removal", "removal-sum"):
        cpu = compute_importance(name, {k: v.float() for k, v in splats.items()},
                                 [(cam, image.float()) for cam, image in views], background=background)
        gpu = compute_importance(name, {k: v.float().cuda() for k, v in splats.items()},
                                 [(cam, image.float().cuda()) for cam, image in views], background=background)
        assert gpu.is_cuda and (cpu > 0).sum() >= 10
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-3, atol=1e-4 * float(cpu.abs().max()))
