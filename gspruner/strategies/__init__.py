"""Densification strategies: ADC (our `DefaultStrategy`: gsplat's, with the opacity reset gsplat 1.5.3 skips),
gsplat's MCMCStrategy, FastGS, and the 4D ADC — each built by its `StrategyConfig` and registered here by name.

`gspruner train strategy:NAME --strategy.OPTION VALUE` selects one. Their step-based schedules are written for
30k steps; each config's `setup` scales them to `max_steps` (see `schedule.scale_schedule`), so a short CPU run
has the 30k schedule's shape: the same opacity resets at the same fractions of the run, densification stopping
at the same fraction.
"""

from __future__ import annotations

from ..model.gaussians import REFERENCE_STEPS  # gsplat's schedules are written for 30k steps
from ..registry import Registry
from . import cpu_ops
from .auto import AutoConfig
from .base import NoStrategy, NoStrategyConfig, StrategyConfig, StrategyHooks, TrainingStrategy
from .default import DefaultConfig, DefaultStrategy
from .default4d import Default4DStrategy
from .fastgs import FASTGS_LRS, FastGSConfig, FastGSStrategy
from .mcmc import MCMCConfig, MCMCStrategy
from .schedule import MIN_REFINE_EVERY, MIN_RESET_EVERY, scale_schedule
from .views import ViewSampler

cpu_ops.install()

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


__all__ = ["AutoConfig", "DefaultConfig", "DefaultStrategy", "Default4DStrategy", "FASTGS_LRS", "FastGSConfig", "FastGSStrategy",
           "MCMCConfig", "MCMCStrategy", "MIN_REFINE_EVERY", "MIN_RESET_EVERY", "NoStrategy", "NoStrategyConfig",
           "REFERENCE_STEPS", "STRATEGIES", "StrategyConfig", "StrategyHooks", "TrainingStrategy", "ViewSampler",
           "make_strategy", "register_strategy", "scale_schedule", "strategy_name", "strategy_union"]
