"""Adaptive density control (3DGS, Kerbl et al. 2023, Sec. 5.2) as gsplat's `DefaultStrategy`, with the opacity
reset that gsplat 1.5.3 never performs.

gsplat 1.5.3 `DefaultStrategy.step_post_backward` guards the reset with
`step % self.reset_every == 0 & step > 0`: `&` binds tighter than `==`, so the chained comparison reads
`step % reset_every == 0 and 0 > 0`, always false (fixed upstream after 1.5.3, nerfstudio-project/gsplat PR #776).
Without resets, low-opacity floaters are never culled and the "too big in world space" pruning (active only
after `reset_every`) is the only floater control.

This class owns `step_post_backward` (the same statistics, clone/split and prune calls as gsplat's), so each
reset step resets exactly once whether the installed gsplat has the bug or the fix. Its options: configs.py's
`DefaultConfig`, which builds the 4D variant (default4d.py) for a 4D model.

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

import torch
from gsplat.strategy import DefaultStrategy as GsplatDefaultStrategy
from gsplat.strategy.ops import remove, reset_opa

from . import cpu_ops
from .base import StrategyHooks

cpu_ops.install()  # gsplat's split on CPU tensors


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
