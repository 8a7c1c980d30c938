"""The pruner interface: hooks the trainer calls at fixed points of every step, so any pruner stacks on
any densification strategy (design contract 3). A pruner's schedule is given as fractions of max_steps.

Nothing here loads torch (the configs built on `PrunerConfig` are read by `--help`); `remove_gaussians`
imports gsplat's op when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Iterator

from ..errors import InputError

if TYPE_CHECKING:
    import torch
    from torch import Tensor


@dataclass
class PruneContext:
    """What a pruner may use besides the parameters: the training views and how to rasterize them."""

    views: Callable[[], Iterator[tuple]]  # yields (camera, image [H,W,3] on device) over all training views
    device: torch.device
    max_steps: int
    densify_stop_step: int  # the strategy stops adding Gaussians here; one-shot prunes come after it
    sh_degree: int
    background: tuple | None = None
    near_plane: float = 0.01
    far_plane: float = 1e10
    frame_times: Tensor | None = None  # [F] times of the training frames of a dynamic scene; None when static


class Pruner:
    """No pruning. Subclasses override the hooks they need."""

    name = "none"

    def attach(self, params, optimizers: dict) -> None:
        """Called once the model and its optimizers exist (fresh or resumed), before the first step."""

    def opacity_gate(self, step: int) -> Tensor | None:
        """A per-Gaussian factor [N] on the activated opacity for this step (learned masks)."""
        return None

    def scale_gate(self, step: int) -> Tensor | None:
        """A per-Gaussian factor [N, 1] on the activated scales for this step (Compact-3DGS's mask)."""
        return None

    def active_mask(self, time: float | None) -> Tensor | None:
        """[N] bool: the Gaussians a frame at `time` may rasterize (a temporal filter), or None for all."""
        return None

    def extra_loss(self, step: int) -> Tensor | None:
        """A term added to the loss this step (e.g. a mask sparsity penalty)."""
        return None

    def after_step(self, step: int, params, optimizers: dict, strategy_state: dict) -> None:
        """Called after the optimizer and strategy steps; prunes on the pruner's own schedule."""

    def summary(self) -> dict:
        """Fields merged into metrics.json."""
        return {"prune": self.name}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass
class PrunerConfig:
    """A pruner's options as one dataclass whose `setup` builds it (nerfstudio's `InstantiateConfig`).

    A new pruner is a `Pruner` subclass, a `PrunerConfig` subclass with its options (checked in `__post_init__`,
    raising `InputError`) and one `register_pruner(name, config)` line; `gspruner train prune:NAME --prune.OPTION`
    then selects it, and `gspruner prune score:NAME` too when `post_hoc` is set.
    """

    models: ClassVar[tuple[str, ...]] = ("3d",)  # the model families (3d, 4d) it can prune
    post_hoc: ClassVar[bool] = False  # `gspruner prune` can apply it to a trained checkpoint (at step 0 of a fine-tune)

    def setup(self, ctx: PruneContext, seed: int = 0) -> Pruner:
        raise NotImplementedError

    def at_start(self) -> "PrunerConfig":
        """The same pruner, pruning at the first step (`gspruner prune`: before the fine-tune); post-hoc pruners only."""
        raise NotImplementedError


@dataclass
class NoPruneConfig(PrunerConfig):
    """No pruning."""

    models: ClassVar[tuple[str, ...]] = ("3d", "4d")

    def setup(self, ctx: PruneContext, seed: int = 0) -> Pruner:
        return Pruner()


def check_fractions(at: tuple[float, ...] | None, option: str = "--prune.at") -> None:
    """Prune times are fractions of the run in [0, 1]."""
    if at is not None and (len(at) == 0 or not all(0.0 <= f <= 1.0 for f in at)):
        raise InputError(f"{option} takes fractions of --max-steps in [0, 1], got {list(at)}")


def check_ratio(ratio: float | None, option: str = "--prune.ratio") -> None:
    """A pruning ratio is a fraction of the Gaussians in (0, 1)."""
    if ratio is not None and not 0.0 < ratio < 1.0:
        raise InputError(f"{option} must be in (0, 1), got {ratio}")


def remove_gaussians(params, optimizers: dict, strategy_state: dict, remove_mask: Tensor) -> None:
    """Remove Gaussians [N] in place, keeping Adam moments and per-Gaussian strategy state in sync.

    gsplat's `ops.remove` slices every tensor in the state; MCMC's state also holds a binomial table,
    so only per-Gaussian entries are handed to it.
    """
    from gsplat.strategy.ops import remove
    from torch import Tensor

    n = remove_mask.shape[0]
    per_gaussian = {
        k: v for k, v in strategy_state.items() if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == n and k != "binoms"
    }
    remove(params, optimizers, per_gaussian, remove_mask)
    strategy_state.update(per_gaussian)
