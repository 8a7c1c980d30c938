"""3DGS as MCMC (Kheradmand et al. 2024): gsplat's `MCMCStrategy` as it is, adapted to `TrainingStrategy` (its
options and gsplat's MCMC preset: configs.py's MCMCConfig)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict

from gsplat.strategy import MCMCStrategy as GsplatMCMCStrategy

from . import cpu_ops
from .base import Center, StrategyHooks

cpu_ops.install()  # gsplat's relocation and noise on CPU tensors


@dataclass
class MCMCStrategy(GsplatMCMCStrategy, StrategyHooks):
    """gsplat's MCMCStrategy: its state needs no scene scale, and its noise scales with the means lr."""

    def initialize_state(self, scene_scale: float = 1.0, scene_center: Center = (0.0, 0.0, 0.0)) -> Dict[str, Any]:
        return super().initialize_state()

    def post_backward_kwargs(self, means_lr: float) -> Dict[str, Any]:
        return {"lr": means_lr}

    def densify_stop_step(self) -> int:
        return self.refine_stop_iter
