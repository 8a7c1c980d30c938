"""Densification strategies: ADC (our `DefaultStrategy`: gsplat's, with the opacity reset gsplat 1.5.3 skips),
gsplat's MCMCStrategy, FastGS, and the 4D ADC — each built by its `StrategyConfig` and registered here by name.

`gspruner train strategy:NAME --strategy.OPTION VALUE` selects one. Their step-based schedules are written for
30k steps; each config's `setup` scales them to `max_steps` (see `schedule.scale_schedule`), so a short CPU run
has the 30k schedule's shape: the same opacity resets at the same fractions of the run, densification stopping
at the same fraction.

This package and its configs (configs.py, auto.py, base.py) load neither torch nor gsplat: the strategies
themselves (default.py, default4d.py, mcmc.py, fastgs.py, none.py) are imported from their modules, and a
config's `setup` imports its strategy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import Registry
from .auto import AutoConfig
from .base import StrategyConfig, StrategyHooks, TrainingStrategy
from .configs import FASTGS_LRS, DefaultConfig, FastGSConfig, MCMCConfig, NoStrategyConfig

if TYPE_CHECKING:
    from .views import ViewSampler

# name -> its config class (a fresh instance holds the method's defaults); one line per strategy
STRATEGIES = Registry(StrategyConfig, {
    "auto": AutoConfig,
    "default": DefaultConfig,
    "mcmc": MCMCConfig,
    "fastgs": FastGSConfig,
    "none": NoStrategyConfig,
})
register_strategy = STRATEGIES.register  # make a config selectable as strategy:NAME
strategy_name = STRATEGIES.name_of
strategy_union = STRATEGIES.union


def make_strategy(name: str, max_steps: int, views: ViewSampler | None = None,
                  duration: float | None = None) -> TrainingStrategy:
    """The registered strategy `name` with its defaults, for a run of `max_steps` (scripts and tests)."""
    return STRATEGIES[name]().setup(max_steps, views=views, duration=duration)


__all__ = ["AutoConfig", "DefaultConfig", "FASTGS_LRS", "FastGSConfig", "MCMCConfig", "NoStrategyConfig", "STRATEGIES",
           "StrategyConfig", "StrategyHooks", "TrainingStrategy", "make_strategy", "register_strategy", "strategy_name",
           "strategy_union"]
