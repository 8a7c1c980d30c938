"""3DGS as MCMC (Kheradmand et al. 2024): gsplat's `MCMCStrategy` as it is, adapted to `TrainingStrategy`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Optional

from gsplat.strategy import MCMCStrategy as GsplatMCMCStrategy

from .base import Center, StrategyConfig, StrategyHooks, TrainingStrategy
from .schedule import scale_schedule


@dataclass
class MCMCStrategy(GsplatMCMCStrategy, StrategyHooks):
    """gsplat's MCMCStrategy: its state needs no scene scale, and its noise scales with the means lr."""

    def initialize_state(self, scene_scale: float = 1.0, scene_center: Center = (0.0, 0.0, 0.0)) -> Dict[str, Any]:
        return super().initialize_state()

    def post_backward_kwargs(self, means_lr: float) -> Dict[str, Any]:
        return {"lr": means_lr}

    def densify_stop_step(self) -> int:
        return self.refine_stop_iter


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
        return scale_schedule(MCMCStrategy(cap_max=self.cap_max, noise_lr=self.noise_lr, verbose=False), max_steps)
