"""Pruning: importance scores, one-shot pruning, learned masks — each a `Pruner` the trainer hooks in."""

from __future__ import annotations

from .base import Pruner, PruneContext, remove_gaussians
from .importance import SCORES, compute_importance
from .lp3dgs import MaskPruner
from .oneshot import ScorePruner, keep_by_ratio, keep_by_threshold

MASK_PRUNERS = ("lp3dgs", "ste-mask")  # learned masks: the ratio is learned
PRUNERS = ("none",) + SCORES + MASK_PRUNERS

# RadSplat prunes by threshold at 16k and 24k of 30k steps (Niemeyer et al. 2025, Sec. 3.3);
# the others prune once by ratio, at 20k of 30k (LP-3DGS's prune step), then fine-tune.
DEFAULT_AT = {"radsplat": (16 / 30, 24 / 30)}
DEFAULT_RATIO = 0.66  # LightGaussian's prune_percent
RADSPLAT_THRESHOLD = 0.01


def make_pruner(name: str, ctx: PruneContext, ratio: float | None = None, threshold: float | None = None,
                at_fractions: tuple[float, ...] | None = None, lp_score: str = "radsplat", seed: int = 0) -> Pruner:
    """`ratio` set -> ratio mode; radsplat without a ratio -> threshold mode (t_prune 0.01).
    lp3dgs / ste-mask learn their ratio (a given ratio or threshold is an error)."""
    if name == "none":
        return Pruner()
    if name in MASK_PRUNERS:
        if ratio is not None or threshold is not None:
            raise ValueError(f"--prune {name} learns its pruning ratio: drop --prune-ratio / --prune-threshold")
        kw = {} if at_fractions is None else {"prune_fraction": at_fractions[0]}
        return MaskPruner(ctx, "gumbel" if name == "lp3dgs" else "ste", score=lp_score, seed=seed, **kw)
    if name not in SCORES:
        raise ValueError(f"unknown pruner {name!r}; choose from {', '.join(PRUNERS)}")
    if ratio is None and threshold is None:
        if name == "radsplat":
            threshold = RADSPLAT_THRESHOLD
        else:
            ratio = DEFAULT_RATIO
    if at_fractions is None:
        at_fractions = DEFAULT_AT.get(name, (2 / 3,)) if threshold is not None else (2 / 3,)
    at = at_fractions
    return ScorePruner(name, ctx, ratio=ratio, threshold=threshold, at_fractions=at)


__all__ = ["MASK_PRUNERS", "MaskPruner", "PRUNERS", "Pruner", "PruneContext", "ScorePruner", "compute_importance", "keep_by_ratio",
           "keep_by_threshold", "make_pruner", "remove_gaussians"]
