"""What the trainer asks of a densification strategy, and the config that builds one.

gsplat's `Strategy` interface (`initialize_state`, `check_sanity`, `step_pre_backward`, `step_post_backward`) plus
the few things a strategy may want of the training loop, declared here with their defaults instead of probed
with `getattr`: Adam learning rates, optimizers whose step it holds back, options for the training render, the
step densification stops, and extra arguments of `step_post_backward`. Nothing here loads torch or gsplat (the
command line reads the configs for `--help`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Optional, Protocol, Set, runtime_checkable

Center = tuple  # (x, y, z): the training cameras' centroid


@runtime_checkable
class TrainingStrategy(Protocol):
    """A densification strategy as the trainer drives it. Call order (gsplat's, with ours around it):

        strategy = config.setup(max_steps, views, duration)
        optimizers = create_optimizers(splats, lrs=strategy.learning_rates)
        strategy.check_sanity(params, optimizers)
        state = strategy.initialize_state(scene_scale, scene_center)
        for step in range(max_steps):
            render with **strategy.render_kwargs(step) -> info
            strategy.step_pre_backward(params, optimizers, state, step, info)
            loss.backward()
            every optimizer not in strategy.held_optimizers(step) steps
            strategy.step_post_backward(params, optimizers, state, step, info, **strategy.post_backward_kwargs(means_lr))
        pruners act after strategy.densify_stop_step()
    """

    learning_rates: Optional[Dict[str, float]]  # Adam learning rates overriding the defaults, or None

    def initialize_state(self, scene_scale: float = 1.0, scene_center: Center = (0.0, 0.0, 0.0)) -> Dict[str, Any]: ...

    def check_sanity(self, params, optimizers) -> None: ...

    def step_pre_backward(self, params, optimizers, state, step, info) -> None: ...

    def step_post_backward(self, params, optimizers, state, step, info, **kwargs) -> None: ...

    def post_backward_kwargs(self, means_lr: float) -> Dict[str, Any]: ...

    def held_optimizers(self, step: int) -> Set[str]: ...

    def render_kwargs(self, step: int) -> Dict[str, Any]: ...

    def densify_stop_step(self) -> int: ...


class StrategyHooks:
    """The defaults of `TrainingStrategy`'s additions to gsplat's interface (a mixin after gsplat's class)."""

    learning_rates: Optional[Dict[str, float]] = None

    def post_backward_kwargs(self, means_lr: float) -> Dict[str, Any]:
        return {}

    def held_optimizers(self, step: int) -> Set[str]:
        return set()

    def render_kwargs(self, step: int) -> Dict[str, Any]:
        return {"absgrad": False}

    def densify_stop_step(self) -> int:
        return 0


@dataclass
class StrategyConfig:
    """A strategy's options as one dataclass whose `setup` builds it, with the model initialisation and loss
    regularisers the method prescribes (gsplat's MCMC preset differs from ADC's) as its own fields."""

    models: ClassVar[tuple[str, ...]] = ("3d",)  # the model families (3d, 4d) it can densify

    init_opacity: float = 0.1
    """Initial opacity of every Gaussian (gsplat: 0.1; its MCMC preset 0.5)."""
    init_scale: float = 1.0
    """Initial scale factor on the 3-nearest-neighbour distance (gsplat: 1.0; its MCMC preset 0.1)."""
    opacity_reg: float = 0.0
    """Weight of mean(opacity) in the loss (gsplat's MCMC preset: 0.01)."""
    scale_reg: float = 0.0
    """Weight of mean(scale) in the loss (gsplat's MCMC preset: 0.01)."""

    def for_scene(self, has_alpha: bool, model: str, sharded: bool = False) -> StrategyConfig:
        """The config to train this scene with (images with alpha or not; model family "3d" / "4d"; a run
        sharded over several processes or not): itself,
        except for a strategy that chooses by the scene (strategies/auto.py)."""
        return self

    def setup(self, max_steps: int, views=None, duration: Optional[float] = None) -> TrainingStrategy:
        """The strategy for a run of `max_steps` (schedules scaled from 30k); `views`: the trainer's ViewSampler;
        `duration`: the time span of a 4D model (None: static)."""
        raise NotImplementedError
