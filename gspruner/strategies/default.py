"""Adaptive density control (3DGS, Kerbl et al. 2023, Sec. 5.2) as gsplat's `DefaultStrategy`, with the opacity
reset that gsplat 1.5.3 never performs.

gsplat 1.5.3 `DefaultStrategy.step_post_backward` guards the reset with
`step % self.reset_every == 0 & step > 0`: `&` binds tighter than `==`, so the chained comparison reads
`step % reset_every == 0 and 0 > 0`, always false (fixed upstream after 1.5.3, nerfstudio-project/gsplat PR #776).
Without resets, low-opacity floaters are never culled and the "too big in world space" pruning (active only
after `reset_every`) is the only floater control.

This class owns `step_post_backward` (the same statistics, clone/split and prune calls as gsplat's), so each
reset step resets exactly once whether the installed gsplat has the bug or the fix.

"Too big in world space" (3DGS: max scale > 0.1 × extent) is measured against the Gaussian's distance from the
training cameras' centroid once that exceeds the scene scale: inside the cameras' sphere the rule is gsplat's,
beyond it the limit grows with distance, so a far background (sky, distant hills) may keep Gaussians of the
angular size the rule allows in the foreground instead of losing them at every refinement
(`prune_far_by_distance`; on the demo, whose sky dome sits at 4× the camera radius, gsplat's rule costs 1 dB).

Call order (gsplat's):

    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale)
    for step in range(max_steps):
        render -> info
        strategy.step_pre_backward(params, optimizers, state, step, info)
        loss.backward()
        optimizer steps
        strategy.step_post_backward(params, optimizers, state, step, info)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import torch
from gsplat.strategy import DefaultStrategy as GsplatDefaultStrategy
from gsplat.strategy.ops import remove, reset_opa

from .base import StrategyConfig, StrategyHooks, TrainingStrategy
from .schedule import scale_schedule


@dataclass
class DefaultStrategy(GsplatDefaultStrategy, StrategyHooks):
    """gsplat's `DefaultStrategy` (same fields, same defaults) with working opacity resets."""

    prune_far_by_distance: bool = True
    """Too big: max scale > prune_scale3d × max(scene scale, distance from the training cameras' centroid);
    False: gsplat's prune_scale3d × scene scale everywhere."""

    def initialize_state(self, scene_scale: float = 1.0, scene_center=(0.0, 0.0, 0.0)) -> dict:
        """gsplat's state plus `scene_center` (the training cameras' centroid, a tuple so `remove` leaves it)."""
        state = super().initialize_state(scene_scale)
        state["scene_center"] = tuple(float(v) for v in scene_center)
        return state

    def render_kwargs(self, step: int) -> dict:
        return {"absgrad": self.absgrad}  # AbsGS: the absolute 2D gradient drives growth

    def densify_stop_step(self) -> int:
        return self.refine_stop_iter

    def too_big(self, params, state) -> torch.Tensor:
        """[N] bool: 3DGS's "big in world space", relative to the distance from the scene centre (module doc)."""
        limit = state["scene_scale"]
        if self.prune_far_by_distance:
            center = torch.tensor(state.get("scene_center", (0.0, 0.0, 0.0)), device=params["means"].device)
            limit = (params["means"] - center).norm(dim=-1).clamp_min(limit)  # [N]
        return torch.exp(params["scales"]).max(dim=-1).values > self.prune_scale3d * limit

    @torch.no_grad()
    def _prune_gs(self, params, optimizers, state, step) -> int:
        is_prune = torch.sigmoid(params["opacities"].flatten()) < self.prune_opa
        if step > self.reset_every:  # as gsplat: big Gaussians only after the first reset
            is_prune |= self.too_big(params, state)
            if step < self.refine_scale2d_stop_iter:
                is_prune |= state["radii"] > self.prune_scale2d
        n_prune = int(is_prune.sum())
        if n_prune > 0:
            remove(params=params, optimizers=optimizers, state=state, mask=is_prune)
        return n_prune

    def is_reset_step(self, step: int) -> bool:
        """3DGS resets opacities every `reset_every` steps while densifying (not at step 0)."""
        return 0 < step < self.refine_stop_iter and step % self.reset_every == 0

    def step_post_backward(self, params, optimizers, state, step, info, packed: bool = False) -> None:
        if step >= self.refine_stop_iter:
            return
        self._update_state(params, state, info, packed=packed)
        if step > self.refine_start_iter and step % self.refine_every == 0 \
                and step % self.reset_every >= self.pause_refine_after_reset:
            self._grow_gs(params, optimizers, state, step)
            self._prune_gs(params, optimizers, state, step)  # too big in world space only after the first reset
            state["grad2d"].zero_()
            state["count"].zero_()
            if self.refine_scale2d_stop_iter > 0:
                state["radii"].zero_()
        if self.is_reset_step(step):
            # opacity <- min(opacity, 2 * prune_opa), Adam moments of the opacities zeroed (3DGS reset_opacity)
            reset_opa(params=params, optimizers=optimizers, state=state, value=self.prune_opa * 2.0)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


GSPLAT_GROW_GRAD2D = 0.0002


@dataclass
class DefaultConfig(StrategyConfig):
    """Adaptive density control (3DGS): gsplat's DefaultStrategy with working opacity resets; the 4D variant for a 4D model."""

    models: ClassVar[tuple[str, ...]] = ("3d", "4d")

    absgrad: bool = False
    """Grow by the absolute 2D gradient (AbsGS); pair with --strategy.grow-grad2d 0.0006."""
    grow_grad2d: Optional[float] = None
    """2D gradient threshold for clone/split (default 0.0002 as gsplat; 0.0015 for the low-resolution demo scene)."""
    prune_opa: float = 0.005
    """Prune Gaussians below this opacity."""
    prune_far_by_distance: bool = True
    """Too big = max scale > 0.1 × max(scene scale, distance from the training cameras' centroid); off: gsplat's 0.1 × scene scale everywhere."""
    time_split: bool = False
    """4D models: also split Gaussians long in time whose mean |dL/d mu_t| exceeds --strategy.grow-grad-t (the official 4DGS code accumulates this time gradient but never uses it; see strategies/default4d.py)."""
    grow_grad_t: float = 0.0002 / 40
    """4D models with --strategy.time-split: the time-gradient threshold (4DGS's densify_grad_t_threshold; on lego at 100x100 it grows 16x the Gaussians in 200 steps)."""

    def setup(self, max_steps: int, views=None, duration: Optional[float] = None) -> TrainingStrategy:
        grow = self.grow_grad2d if self.grow_grad2d is not None else GSPLAT_GROW_GRAD2D
        if duration is not None:
            from .default4d import Default4DStrategy

            strategy = Default4DStrategy(grow_grad2d=grow, prune_opa=self.prune_opa, verbose=False,
                                         prune_far_by_distance=self.prune_far_by_distance,
                                         time_split=self.time_split, grow_grad_t=self.grow_grad_t, duration=duration)
        else:
            strategy = DefaultStrategy(absgrad=self.absgrad, grow_grad2d=grow, prune_opa=self.prune_opa,
                                       prune_far_by_distance=self.prune_far_by_distance, verbose=False)
        return scale_schedule(strategy, max_steps)
