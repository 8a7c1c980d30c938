"""Densification strategies: ADC (our `DefaultStrategy`: gsplat's, with the opacity reset gsplat 1.5.3 skips),
gsplat's MCMCStrategy as it is, FastGS, and the 4D ADC.

Their step-based schedules are written for 30k steps; `make_strategy` scales them to `max_steps` (see
`scale_schedule`), so a short CPU run has the 30k schedule's shape: the same opacity resets at the same fractions
of the run, densification stopping at the same fraction.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from gsplat.strategy import MCMCStrategy, Strategy

from ..config import StrategyConfig
from ..model.gaussians import REFERENCE_STEPS  # gsplat's schedules are written for 30k steps
from . import cpu_ops
from .default import DefaultStrategy
from .default4d import Default4DStrategy
from .fastgs import FastGSStrategy
from .views import ViewSampler

cpu_ops.install()

StrategyName = Literal["default", "mcmc", "fastgs", "none"]

_STEP_FIELDS = (
    "refine_start_iter",
    "refine_stop_iter",
    "reset_every",
    "refine_every",
    "refine_scale2d_stop_iter",
    "pause_refine_after_reset",
    "final_prune_iters",  # FastGS (tuples scale element-wise)
    "sh_step_every",
    "sparse_step_iters",
    "sparse_step_every",
    "compact_box_stop_iter",
)


MIN_REFINE_EVERY = 10  # steps between refinements at least: the averaged 2D gradient needs a few views
MIN_RESET_EVERY = 200  # steps between opacity resets at least: an opacity needs ~100 Adam steps to recover


def scale_schedule(strategy: Strategy, max_steps: int) -> Strategy:
    """Every step-valued field × max_steps / 30k (at least 1 where it was ≥ 1; tuples element-wise).

    Floors, for runs shorter than 30k steps:
    - `refine_every` ≥ MIN_REFINE_EVERY (10) steps: a refinement averages the 2D gradient over the views seen
      since the last one, and over 3 views (100 × 1k/30k) densification runs away. From 3000 steps on a run
      refines as often as the 30k schedule (144 refinements at gsplat's defaults); a 1000-step run 48 times.
    - `reset_every` scales exactly, so a run keeps the 30k schedule's opacity resets (gsplat's 3000 of 30k: 4
      resets before densification stops at 15k, at 10, 20, 30 and 40 % of the run), down to a floor of
      MIN_RESET_EVERY (200) steps: Adam at the opacity lr (0.05, FastGS 0.025) needs ~100 steps to bring a
      logit from the reset value (0.01) back above 0.5, and refinements in between need recovered opacities
      (the 30k schedule spends ~3 % of each interval recovering; at 100 steps apart it would spend all of it,
      and the demo loses 0.6 dB). So runs of ≥ 2000 steps keep all 4 resets; shorter ones fewer (1000 steps:
      2, at 200 and 400; 500 steps: 1; FastGS, densifying until 50 %, as many).
    """
    s = max_steps / REFERENCE_STEPS
    changes = {}
    for name in _STEP_FIELDS:
        value = getattr(strategy, name, None)
        if isinstance(value, int) and value > 0:
            changes[name] = max(1, round(value * s))
        elif isinstance(value, tuple):
            changes[name] = tuple(max(1, round(v * s)) for v in value)
    if "refine_every" in changes:
        every = max(changes["refine_every"], min(MIN_REFINE_EVERY, strategy.refine_every))
        if "reset_every" in changes:  # opacities need time to recover between resets, and refinements in between
            changes["reset_every"] = max(changes["reset_every"], MIN_RESET_EVERY, 2 * every)
        changes["refine_every"] = every
    return replace(strategy, **changes)


# FastGS's Adam learning rates (its `training_setup`: opacity_lr, lowfeature_lr, highfeature_lr / 20)
FASTGS_LRS = {"opacities": 0.025, "sh0": 0.0025, "shN": 0.005 / 20}


def make_strategy(name: StrategyName, max_steps: int, cfg: StrategyConfig | None = None,
                  views: ViewSampler | None = None, duration: float | None = None) -> Strategy:
    """`views`: the trainer's view callback, handed to strategies that score on several views (FastGS).
    `duration`: the time span of a dynamic scene (4D model); None for a static one."""
    cfg = cfg or StrategyConfig()
    if duration is not None and name not in ("default", "none"):
        raise ValueError(f"--strategy {name} is not available for dynamic (4D) scenes; use default or none")
    if name == "default" and duration is not None:
        grow = cfg.grow_grad2d if cfg.grow_grad2d is not None else 0.0002
        strategy = Default4DStrategy(grow_grad2d=grow, prune_opa=cfg.prune_opa, verbose=False,
                                     time_split=cfg.time_split, grow_grad_t=cfg.grow_grad_t, duration=duration)
    elif name == "default":
        grow = cfg.grow_grad2d if cfg.grow_grad2d is not None else 0.0002
        strategy = DefaultStrategy(absgrad=cfg.absgrad, grow_grad2d=grow, prune_opa=cfg.prune_opa, verbose=False)
    elif name == "mcmc":
        strategy = MCMCStrategy(cap_max=cfg.cap_max, noise_lr=cfg.noise_lr, verbose=False)
    elif name == "fastgs":
        strategy = FastGSStrategy(
            views=views, num_views=cfg.fastgs_views, loss_thresh=cfg.fastgs_loss_thresh,
            densify_score_thresh=cfg.fastgs_densify_score, grad_thresh=cfg.fastgs_grad_thresh,
            grad_abs_thresh=cfg.fastgs_grad_abs_thresh, dense=cfg.fastgs_dense,
            final_prune_score=cfg.fastgs_prune_score, optimizer_schedule=cfg.fastgs_optimizer_schedule,
            compact_box_beta=cfg.fastgs_compact_box,
            learning_rates=dict(FASTGS_LRS) if cfg.fastgs_lrs else None, verbose=False,
        )
    elif name == "none":
        return Strategy()  # gsplat's base class: no densification, no pruning
    else:
        raise ValueError(f"unknown strategy {name!r}")
    return scale_schedule(strategy, max_steps)


def initialize_state(strategy: Strategy, scene_scale: float, scene_center=(0.0, 0.0, 0.0)) -> dict:
    """The strategy's running state (MCMC's takes no scene scale; ADC's also the training cameras' centroid)."""
    if isinstance(strategy, MCMCStrategy):
        return strategy.initialize_state()
    if isinstance(strategy, DefaultStrategy):  # Default4DStrategy is a DefaultStrategy
        return strategy.initialize_state(scene_scale=scene_scale, scene_center=scene_center)
    if isinstance(strategy, FastGSStrategy):
        return strategy.initialize_state(scene_scale=scene_scale)
    return {}


def densify_stop_step(strategy: Strategy) -> int:
    """The step after which the strategy adds no Gaussians (0 for none)."""
    return getattr(strategy, "refine_stop_iter", 0)


def post_backward_kwargs(strategy: Strategy, means_lr: float) -> dict:
    """Extra keyword arguments of `step_post_backward` (MCMC scales its noise by the means lr)."""
    return {"lr": means_lr} if isinstance(strategy, MCMCStrategy) else {}


def held_optimizers(strategy: Strategy, step: int) -> set:
    """Names of the optimizers whose step waits at `step` (gradients accumulate); none for gsplat's strategies."""
    held = getattr(strategy, "held_optimizers", None)
    return held(step) if held is not None else set()


def training_render_kwargs(strategy: Strategy, step: int) -> dict:
    """Rasterizer options the strategy asks of the training render at `step`: AbsGS gradients, FastGS's compact box."""
    own = getattr(strategy, "render_kwargs", None)
    return own(step) if own is not None else {"absgrad": bool(getattr(strategy, "absgrad", False))}


def strategy_learning_rates(strategy: Strategy) -> dict | None:
    """Adam learning rates the strategy asks for (overriding the defaults), or None."""
    return getattr(strategy, "learning_rates", None)


__all__ = ["DefaultStrategy", "Default4DStrategy", "FastGSStrategy", "StrategyConfig", "ViewSampler", "densify_stop_step", "held_optimizers", "initialize_state",
           "make_strategy", "post_backward_kwargs", "scale_schedule", "strategy_learning_rates", "training_render_kwargs", "REFERENCE_STEPS"]
