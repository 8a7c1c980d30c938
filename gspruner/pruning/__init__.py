"""Pruning: importance scores, one-shot pruning, learned masks — each a `Pruner` the trainer hooks in."""

from __future__ import annotations

from .base import Pruner, PruneContext, remove_gaussians
from .importance import SCORES, compute_importance
from .lp3dgs import MaskPruner
from .oneshot import ScorePruner, keep_by_ratio, keep_by_threshold
from .spatiotemporal import DEFAULT_FILTER_MIN_WEIGHT, SpatioTemporalPruner, TemporalFilter

MASK_PRUNERS = ("lp3dgs", "ste-mask")  # learned masks: the ratio is learned
PRUNERS_4D = ("spatiotemporal",)  # 4D models only
PRUNERS = ("none",) + SCORES + MASK_PRUNERS + PRUNERS_4D

# RadSplat prunes by threshold at 16k and 24k of 30k steps (Niemeyer et al. 2025, Sec. 3.3);
# the others prune once by ratio, at 20k of 30k (LP-3DGS's prune step), then fine-tune.
DEFAULT_AT = {"radsplat": (16 / 30, 24 / 30)}
DEFAULT_RATIO = 0.66  # LightGaussian's prune_percent
RADSPLAT_THRESHOLD = 0.01


def make_pruner(name: str, ctx: PruneContext, ratio: float | None = None, threshold: float | None = None,
                at_fractions: tuple[float, ...] | None = None, lp_score: str = "radsplat", seed: int = 0,
                temporal_filter: bool = True, keyframe_every: int | None = None, filter_views: str = "auto",
                filter_min_weight: float = DEFAULT_FILTER_MIN_WEIGHT) -> Pruner:
    """`ratio` set -> ratio mode; radsplat without a ratio -> threshold mode (t_prune 0.01).
    lp3dgs / ste-mask learn their ratio (a given ratio or threshold is an error).
    spatiotemporal (4D models, ctx.frame_times set) prunes by ratio (default 0.8) and builds the key-frame filter."""
    if name == "none":
        return Pruner()
    dynamic = ctx.frame_times is not None
    if dynamic != (name in PRUNERS_4D):
        raise ValueError(f"--prune {name} is for 4D models (dynamic scenes)" if name in PRUNERS_4D
                         else f"--prune {name} is for static scenes; a dynamic (4D) scene takes --prune spatiotemporal")
    if name == "spatiotemporal":
        if threshold is not None:
            raise ValueError("--prune spatiotemporal prunes by --prune-ratio, not by a threshold")
        kw = {} if at_fractions is None else {"at_fraction": at_fractions[0]}
        return SpatioTemporalPruner(ctx, ctx.frame_times, ratio=ratio, use_filter=temporal_filter,
                                    keyframe_every=keyframe_every, filter_views=filter_views,
                                    filter_min_weight=filter_min_weight, **kw)
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


__all__ = ["MASK_PRUNERS", "MaskPruner", "PRUNERS", "PRUNERS_4D", "Pruner", "PruneContext", "ScorePruner",
           "SpatioTemporalPruner", "TemporalFilter", "compute_importance", "keep_by_ratio",
           "keep_by_threshold", "make_pruner", "remove_gaussians"]
