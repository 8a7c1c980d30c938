"""One-shot pruning rules on an importance score: ratio mode and threshold mode."""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Pruner, PruneContext, remove_gaussians
from .importance import compute_importance


def keep_by_ratio(importance: Tensor, ratio: float) -> Tensor:
    """keep [N] bool: drop the `ratio` fraction with the lowest importance (ties broken by index)."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"prune ratio must be in (0, 1), got {ratio}")
    n = importance.shape[0]
    n_remove = int(round(ratio * n))
    order = torch.argsort(importance, stable=True)  # ascending
    keep = torch.ones(n, dtype=torch.bool, device=importance.device)
    keep[order[:n_remove]] = False
    return keep


def keep_by_threshold(importance: Tensor, threshold: float) -> Tensor:
    """keep [N] bool: RadSplat's rule, prune where h_i < t_prune (Niemeyer et al. 2025, Sec. 3.3)."""
    return importance >= threshold


class ScorePruner(Pruner):
    """One-shot pruning by an importance score at fixed fractions of training (ratio or threshold mode).

    Each prune runs after the strategy has stopped adding Gaussians (otherwise densification refills
    what was removed): step = max(fraction × max_steps, densify_stop_step).
    """

    def __init__(self, score: str, ctx: PruneContext, ratio: float | None = None, threshold: float | None = None,
                 at_fractions: tuple[float, ...] = (2 / 3,)):
        if (ratio is None) == (threshold is None):
            raise ValueError("give exactly one of ratio and threshold")
        self.name, self.ctx, self.ratio, self.threshold = score, ctx, ratio, threshold
        last = max(ctx.max_steps - 1, 0)
        self.steps = sorted({min(max(round(f * ctx.max_steps), ctx.densify_stop_step), last) for f in at_fractions})
        self.num_before: int | None = None
        self.num_removed = 0

    def after_step(self, step, params, optimizers, strategy_state) -> None:
        if step not in self.steps:
            return
        importance = compute_importance(self.name, params, self.ctx.views(), self.ctx.near_plane, self.ctx.far_plane)
        keep = keep_by_ratio(importance, self.ratio) if self.ratio is not None else keep_by_threshold(importance, self.threshold)
        n = keep.shape[0]
        if self.num_before is None:
            self.num_before = n
        self.num_removed += int((~keep).sum())
        remove_gaussians(params, optimizers, strategy_state, ~keep)

    def summary(self) -> dict:
        return {
            "prune": self.name,
            "prune_mode": "ratio" if self.ratio is not None else "threshold",
            "prune_steps": self.steps,
            "num_gaussians_before_prune": self.num_before,
            "prune_ratio": None if not self.num_before else self.num_removed / self.num_before,
        }

    def state_dict(self) -> dict:
        return {"num_before": self.num_before, "num_removed": self.num_removed}

    def load_state_dict(self, state: dict) -> None:
        if state:  # empty: continuing an unpruned run's checkpoint
            self.num_before, self.num_removed = state["num_before"], state["num_removed"]
