"""The registered strategies' configs (ADC, MCMC, FastGS, none; auto.py holds the default's): each method's
options as a dataclass, with the initialisation and loss regularisers it prescribes, whose `setup` builds its
gsplat `Strategy` (default.py, default4d.py, mcmc.py, fastgs.py, none.py) scaled to the run, importing it only
then: the command line (`--help` included) reads these without loading torch or gsplat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from ..errors import InputError
from .base import StrategyConfig, TrainingStrategy


GSPLAT_GROW_GRAD2D = 0.0002


@dataclass
class DefaultConfig(StrategyConfig):
    """Adaptive density control (3DGS): gsplat's DefaultStrategy with working opacity resets; the 4D variant for a 4D model."""

    models: ClassVar[tuple[str, ...]] = ("3d", "4d")

    absgrad: bool = False
    """Grow by the absolute 2D gradient (AbsGS); pair with --strategy.grow-grad2d 0.0006."""
    grow_grad2d: Optional[float] = None
    """2D gradient threshold for clone/split (default 0.0002 as gsplat; 0.0015 for the low-resolution demo scene)."""
    prune_opa: float = 0.005
    """Prune Gaussians below this opacity."""
    prune_far_by_distance: bool = True
    """Too big = max scale > 0.1 × max(scene scale, distance from the training cameras' centroid); off: gsplat's 0.1 × scene scale everywhere."""
    time_split: bool = False
    """4D models: also split Gaussians long in time whose mean |dL/d mu_t| exceeds --strategy.grow-grad-t (the official 4DGS code accumulates this time gradient but never uses it; see strategies/default4d.py)."""
    grow_grad_t: float = 0.0002 / 40
    """4D models with --strategy.time-split: the time-gradient threshold (4DGS's densify_grad_t_threshold; on lego at 100x100 it grows 16x the Gaussians in 200 steps)."""

    def setup(self, max_steps: int, views=None, duration: Optional[float] = None) -> TrainingStrategy:
        from .default import DefaultStrategy
        from .default4d import Default4DStrategy
        from .schedule import scale_schedule

        grow = self.grow_grad2d if self.grow_grad2d is not None else GSPLAT_GROW_GRAD2D
        if duration is not None:
            strategy = Default4DStrategy(grow_grad2d=grow, prune_opa=self.prune_opa, verbose=False,
                                         prune_far_by_distance=self.prune_far_by_distance,
                                         time_split=self.time_split, grow_grad_t=self.grow_grad_t, duration=duration)
        else:
            strategy = DefaultStrategy(absgrad=self.absgrad, grow_grad2d=grow, prune_opa=self.prune_opa,
                                       prune_far_by_distance=self.prune_far_by_distance, verbose=False)
        return scale_schedule(strategy, max_steps)


@dataclass
class MCMCConfig(StrategyConfig):
    """3DGS as MCMC: relocation of dead Gaussians, growth to a budget, position noise (gsplat's MCMCStrategy and its preset)."""

    models: ClassVar[tuple[str, ...]] = ("3d",)

    cap_max: int = 1_000_000
    """The Gaussian budget."""
    noise_lr: float = 5e5
    """Scale of the position noise."""
    init_opacity: float = 0.5
    """Initial opacity of every Gaussian (gsplat's MCMC preset)."""
    init_scale: float = 0.1
    """Initial scale factor on the 3-nearest-neighbour distance (gsplat's MCMC preset)."""
    opacity_reg: float = 0.01
    """Weight of mean(opacity) in the loss (gsplat's MCMC preset)."""
    scale_reg: float = 0.01
    """Weight of mean(scale) in the loss (gsplat's MCMC preset)."""

    def setup(self, max_steps: int, views=None, duration: Optional[float] = None) -> TrainingStrategy:
        from .mcmc import MCMCStrategy
        from .schedule import scale_schedule

        return scale_schedule(MCMCStrategy(cap_max=self.cap_max, noise_lr=self.noise_lr, verbose=False), max_steps)


# FastGS's Adam learning rates (its `training_setup`: opacity_lr, lowfeature_lr, highfeature_lr / 20)
FASTGS_LRS = {"opacities": 0.025, "sh0": 0.0025, "shN": 0.005 / 20}


@dataclass
class FastGSConfig(StrategyConfig):
    """FastGS (Ren et al. 2025): multi-view consistent densification and pruning, sparse optimizer steps."""

    models: ClassVar[tuple[str, ...]] = ("3d",)

    views: int = 10
    """K, training views sampled (without replacement) per multi-view score."""
    loss_thresh: float = 0.1
    """τ, a pixel is high-error where its min-max normalised L1 error exceeds this (0.06 for garden)."""
    densify_score: float = 5.0
    """τ_d, clone/split only Gaussians whose mean masked hit count over the K views, floored, exceeds this."""
    grad_thresh: float = 0.0002
    """Clone where the mean 2D gradient (3DGS NDC units) reaches this and max scale ≤ dense·extent."""
    grad_abs_thresh: float = 0.0012
    """Split where the mean absolute (AbsGS) 2D gradient reaches this and max scale > dense·extent (0.0006–0.002 per scene)."""
    dense: float = 0.001
    """Clone/split scale boundary as a fraction of the scene extent (0.003–0.015 per scene)."""
    prune_score: float = 0.9
    """τ_p, the final VCP removes Gaussians whose prune score exceeds this (or opacity < 0.1)."""
    prune_visibility: float = 0.02
    """The final VCP also removes Gaussians that every training view shows at less than this share of their opacity (max α·T / opacity, RadSplat's score per unit opacity): hidden Gaussians, fitted to no view (not in FastGS: docs/strategies.md, FastGS); 0 = off."""
    optimizer_schedule: bool = True
    """Step the SH-rest Adam every 16 steps, then all every 32 (15k–20k) and 64 steps (30k schedule, scaled); gradients accumulate in between."""
    lrs: bool = True
    """Its learning rates (opacity 0.025, sh0 0.0025, shN 0.005/20) instead of gsplat's."""
    recent_views: bool = True
    """Score each refinement on the training renders of the K steps before it (free) instead of K extra sampled renders (the official code; the same cost as training itself in a short run): docs/strategies.md, FastGS."""
    compact_box: float = 1.0
    """β of the compact box in training renders: a Gaussian reaches only pixels with Mahalanobis d² ≤ β·2 ln(255 opacity) (FastGS's `mult` = 0.5, 0.7 for T&T); 1 = off, the default: our CPU rasterizer cuts single pixels where FastGS cuts 16×16 tiles, which trains a model that loses 0.2–1.1 dB rendered plain (docs/strategies.md, FastGS). CPU rasterizer only; evaluation and export render without it."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.prune_visibility < 1.0:
            raise InputError(f"--strategy.prune-visibility must be in [0, 1), got {self.prune_visibility}")

    def setup(self, max_steps: int, views=None, duration: Optional[float] = None) -> TrainingStrategy:
        from .fastgs import FastGSStrategy
        from .schedule import scale_schedule

        strategy = FastGSStrategy(
            views=views, num_views=self.views, loss_thresh=self.loss_thresh, densify_score_thresh=self.densify_score,
            grad_thresh=self.grad_thresh, grad_abs_thresh=self.grad_abs_thresh, dense=self.dense,
            final_prune_score=self.prune_score, final_prune_visibility=self.prune_visibility, optimizer_schedule=self.optimizer_schedule,
            compact_box_beta=self.compact_box, recent_views=self.recent_views, learning_rates=dict(FASTGS_LRS) if self.lrs else None, verbose=False,
        )
        return scale_schedule(strategy, max_steps)


@dataclass
class NoStrategyConfig(StrategyConfig):
    """No densification: a fixed set of Gaussians (fine-tuning, `gspruner prune`)."""

    models: ClassVar[tuple[str, ...]] = ("3d", "4d")

    def setup(self, max_steps: int, views=None, duration: Optional[float] = None) -> TrainingStrategy:
        from .none import NoStrategy

        return NoStrategy()
