"""`strategy:none`: a fixed set of Gaussians, no densification and no pruning (fine-tuning, `gspruner prune`)."""

from __future__ import annotations

from typing import Any, Dict

from gsplat.strategy import Strategy

from .base import Center, StrategyHooks


class NoStrategy(Strategy, StrategyHooks):
    """A fixed set of Gaussians: no densification, no pruning (gsplat's base `Strategy`)."""

    def initialize_state(self, scene_scale: float = 1.0, scene_center: Center = (0.0, 0.0, 0.0)) -> Dict[str, Any]:
        return {}
