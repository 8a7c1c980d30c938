"""Pruning: importance scores, one-shot pruning, learned masks — each a `Pruner` the trainer hooks in, built by
its `PrunerConfig` (the pruner's options as a dataclass, configs.py) and registered here by name.

`gspruner train prune:NAME --prune.OPTION VALUE` selects one (tyro subcommands built from `PRUNERS`);
`gspruner prune score:NAME` applies a post-hoc one to a trained checkpoint. This package and its configs load
no torch: the pruners themselves (oneshot.py, lp3dgs.py, spatiotemporal.py, importance.py) are imported from
their modules, and a config's `setup` imports its pruner.
"""

from __future__ import annotations

from ..registry import Registry
from .base import NoPruneConfig, Pruner, PruneContext, PrunerConfig, remove_gaussians
from .configs import (DEFAULT_FILTER_MIN_WEIGHT, SCORES, LightGaussianConfig, LP3DGSConfig, MiniSplattingAreaConfig,
                      MiniSplattingConfig, OpacityConfig, PUPConfig, PUPScaleConfig, RadSplatConfig, RemovalConfig,
                      RemovalSumConfig, RoundsConfig, ScorePrunerConfig, SpatioTemporalConfig, STEMaskConfig)

# name -> its config class (the defaults of a fresh instance are the method's); one line per pruner
PRUNERS = Registry(PrunerConfig, {
    "none": NoPruneConfig,
    "lightgaussian": LightGaussianConfig,
    "radsplat": RadSplatConfig,
    "minisplatting": MiniSplattingConfig,
    "minisplatting-area": MiniSplattingAreaConfig,
    "opacity": OpacityConfig,
    "pup": PUPConfig,
    "pup-scale": PUPScaleConfig,
    "removal": RemovalConfig,
    "removal-sum": RemovalSumConfig,
    "rounds": RoundsConfig,
    "lp3dgs": LP3DGSConfig,
    "ste-mask": STEMaskConfig,
    "spatiotemporal": SpatioTemporalConfig,
})
register_pruner = PRUNERS.register  # make a config selectable as prune:NAME (and score:NAME when post_hoc)
pruner_name = PRUNERS.name_of


def pruner_union(post_hoc: bool = False):
    """The tyro type choosing one registered pruner config (`prune:NAME`; `score:NAME`: post-hoc ones only)."""
    return PRUNERS.union(lambda config: config.post_hoc or not post_hoc)


__all__ = ["DEFAULT_FILTER_MIN_WEIGHT", "PRUNERS", "LP3DGSConfig", "LightGaussianConfig",
           "MiniSplattingAreaConfig", "MiniSplattingConfig", "NoPruneConfig", "OpacityConfig", "PUPConfig", "PUPScaleConfig", "RadSplatConfig",
           "RemovalConfig", "RemovalSumConfig", "RoundsConfig",
           "STEMaskConfig", "SpatioTemporalConfig", "Pruner", "PruneContext",
           "PrunerConfig", "SCORES", "ScorePrunerConfig", "pruner_name", "pruner_union", "register_pruner",
           "remove_gaussians"]
