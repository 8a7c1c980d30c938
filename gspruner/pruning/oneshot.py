"""Pruning by an importance score: one-shot (ratio or threshold mode) and prune-then-fine-tune rounds (their
options: configs.py's ScorePrunerConfig and RoundsConfig)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..evaluation import render_view
from ..metrics import psnr
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


@torch.no_grad()
def views_psnr(params, ctx: PruneContext) -> float:
    """Mean PSNR [dB] of the current model's renders of every training view."""
    values = [psnr(render_view(params, cam, ctx.device, ctx.sh_degree, ctx.background)[0].clamp(0, 1), image[..., :3])
              for cam, image in ctx.views()]
    return sum(values) / len(values)


class ScorePruner(Pruner):
    """One-shot pruning by an importance score at fixed fractions of training (ratio or threshold mode).

    Each prune runs after the strategy has stopped adding Gaussians (otherwise densification refills
    what was removed): step = max(fraction × max_steps, densify_stop_step).

    With `stop_db`, every prune is preceded by a render of the training views, and the prunes stop for good at
    the first whose mean PSNR is more than `stop_db` below the best measured before it: the prunes so far cost
    the views more than the training since has won back.

    With `passes` > 1 (ratio mode), one prune removes its `ratio` in that many equal steps, the score recomputed
    on the survivors before each and nothing trained in between: two Gaussians that stand in for each other
    each score low alone, and a single pass would remove both.
    """

    def __init__(self, score: str, ctx: PruneContext, ratio: float | None = None, threshold: float | None = None,
                 at_fractions: tuple[float, ...] = (2 / 3,), name: str | None = None, means_lr_boost: float = 1.0,
                 stop_db: float | None = None, passes: int = 1):
        if (ratio is None) == (threshold is None):
            raise ValueError("give exactly one of ratio and threshold")
        if passes < 1 or (passes > 1 and ratio is None):
            raise ValueError("passes must be >= 1, and > 1 only with a ratio")
        self.score, self.name, self.ctx, self.ratio, self.threshold = score, name or score, ctx, ratio, threshold
        self.passes = passes
        self.means_lr_boost = means_lr_boost  # the means' learning rate x this after each prune
        last = max(ctx.max_steps - 1, 0)
        self.steps = sorted({min(max(round(f * ctx.max_steps), ctx.densify_stop_step), last) for f in at_fractions})
        self.num_before: int | None = None
        self.num_removed = 0
        self.stop_db = stop_db
        self.views_psnr: list[float] = []  # the training views' mean PSNR before each prune (with stop_db)
        self.stopped_at: int | None = None

    def after_step(self, step, params, optimizers, strategy_state) -> None:
        if step not in self.steps or self.stopped_at is not None:
            return
        if self.stop_db is not None:
            now = views_psnr(params, self.ctx)
            best = max(self.views_psnr, default=-math.inf)
            self.views_psnr.append(now)
            if now < best - self.stop_db:
                self.stopped_at = step
                return
        keep = self.keep_mask(params)
        n = keep.shape[0]
        if self.num_before is None:
            self.num_before = n
        self.num_removed += int((~keep).sum())
        remove_gaussians(params, optimizers, strategy_state, ~keep)
        if self.means_lr_boost != 1.0 and "means" in optimizers:  # the schedule decays it on from the new value
            for group in optimizers["means"].param_groups:
                group["lr"] *= self.means_lr_boost

    def importance(self, params) -> Tensor:
        return compute_importance(self.score, params, self.ctx.views(), self.ctx.near_plane, self.ctx.far_plane,
                                  self.ctx.background)

    def keep_mask(self, params) -> Tensor:  # not under no_grad: PUP's Fisher takes Jacobians by autograd
        """keep [N] bool of one prune: the score at or above the threshold, or all but the lowest `ratio`, removed
        in `passes` steps that each leave n (1 - ratio)^(k / passes) (k = 1 .. passes), scored on the survivors."""
        if self.threshold is not None:
            return keep_by_threshold(self.importance(params), self.threshold)
        if self.passes == 1:
            return keep_by_ratio(self.importance(params), self.ratio)
        n = params["means"].shape[0]
        keep = torch.ones(n, dtype=torch.bool, device=params["means"].device)
        for k in range(1, self.passes + 1):
            survivors = torch.nonzero(keep).flatten()  # [M] ids into the model
            subset = params if k == 1 else {name: p.detach()[survivors] for name, p in params.items()}
            n_remove = round(n * (1.0 - (1.0 - self.ratio) ** (k / self.passes))) - (n - survivors.numel())
            order = torch.argsort(self.importance(subset), stable=True)  # ascending; ties by id, as keep_by_ratio
            keep[survivors[order[:max(n_remove, 0)]]] = False
        return keep

    def summary(self) -> dict:
        return {
            "prune": self.name,
            "prune_mode": "ratio" if self.ratio is not None else "threshold",
            "prune_steps": self.steps,
            "num_gaussians_before_prune": self.num_before,
            "prune_ratio": None if not self.num_before else self.num_removed / self.num_before,
            "means_lr_boost": self.means_lr_boost,
            **({"score_passes": self.passes} if self.passes > 1 else {}),
            **({"stop_db": self.stop_db, "views_psnr_before_prunes": self.views_psnr, "prunes_stopped_at": self.stopped_at}
               if self.stop_db is not None else {}),
        }

    def state_dict(self) -> dict:
        return {"num_before": self.num_before, "num_removed": self.num_removed, "views_psnr": self.views_psnr,
                "stopped_at": self.stopped_at}

    def load_state_dict(self, state: dict) -> None:
        if state:  # empty: continuing an unpruned run's checkpoint
            self.num_before, self.num_removed = state["num_before"], state["num_removed"]
            self.views_psnr, self.stopped_at = state.get("views_psnr", []), state.get("stopped_at")
