"""The pruner interface: hooks the trainer calls at fixed points of every step, so any pruner stacks on
any densification strategy (design contract 3). A pruner's schedule is given as fractions of max_steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import Tensor

from gsplat.strategy.ops import remove


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


def remove_gaussians(params, optimizers: dict, strategy_state: dict, remove_mask: Tensor) -> None:
    """Remove Gaussians [N] in place, keeping Adam moments and per-Gaussian strategy state in sync.

    gsplat's `ops.remove` slices every tensor in the state; MCMC's state also holds a binomial table,
    so only per-Gaussian entries are handed to it.
    """
    n = remove_mask.shape[0]
    per_gaussian = {
        k: v for k, v in strategy_state.items() if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == n and k != "binoms"
    }
    remove(params, optimizers, per_gaussian, remove_mask)
    strategy_state.update(per_gaussian)
