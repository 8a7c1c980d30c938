"""Adaptive density control for 4D Gaussians: our DefaultStrategy (gsplat's, with working opacity resets) with the 4DGS changes
(Yang et al. 2024, code `fudan-zvg/4d-gaussian-splatting` train.py / scene/gaussian_model.py).

- A step may render several frames (4DGS trains D-NeRF with batches of 2, each frame at its own time):
  `info` is then a list, one per frame, and the statistics add up over it.
- Each frame rasterizes only the Gaussians alive at its time (info["ids"] [M]); their statistics are
  scattered back to the whole model.
- Besides the 2D screen-space gradient, the running mean of |dL/d mu_t| is kept. The official code
  accumulates this time gradient (signed) but its clone/split never read it (HEAD 63725f2), so by default
  neither do we. With `time_split`, a Gaussian long in time whose mean time gradient exceeds `grow_grad_t`
  is split too, dividing a Gaussian stretched over motion it cannot follow. At the official
  `densify_grad_t_threshold` (0.0002/40) this splits nearly everything: on D-NeRF lego at 100x100 the count
  went 20k -> 431k in 200 steps (26k without), hence off by default.
- Splitting samples the two children in 4D, from N(mu_xyzt, R S^2 R^T), and divides all four scales by
  1.6 (= 0.8 N, N = 2, as the official `densify_and_split`).
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any

import torch
from torch import Tensor

from gsplat.strategy.ops import _update_param_with_optimizer, duplicate

from ..model.gaussians4d import rotation_4d
from .default import DefaultStrategy


def _frames(info) -> list[dict]:
    return info if isinstance(info, list) else [info]


@dataclass
class Default4DStrategy(DefaultStrategy):
    grow_grad_t: float = 0.0002 / 40
    """Split a Gaussian long in time whose mean |dL/d mu_t| exceeds this (4DGS densify_grad_t_threshold)."""
    time_split: bool = False
    """Use the time gradient for splitting (the official code accumulates it but does not use it)."""
    duration: float = 1.0
    """Length of the sequence in time units; 'long in time' is scale_t > grow_scale3d x duration."""

    def initialize_state(self, scene_scale: float = 1.0, scene_center=(0.0, 0.0, 0.0)) -> dict[str, Any]:
        state = super().initialize_state(scene_scale, scene_center)
        state["grad_t"] = None
        return state

    def check_sanity(self, params, optimizers) -> None:
        super().check_sanity(params, optimizers)
        for key in ("times", "scales_t", "quats_r"):
            assert key in params, f"{key} is required in params for a 4D model"

    def step_pre_backward(self, params, optimizers, state, step, info) -> None:
        for frame in _frames(info):
            frame[self.key_for_gradient].retain_grad()
            frame["dt"].retain_grad()

    def _update_state(self, params, state, info, packed: bool = False) -> None:
        frames = _frames(info)
        n = len(params["means"])
        device = params["means"].device
        for key in ("grad2d", "count", "grad_t"):
            if state[key] is None:
                state[key] = torch.zeros(n, device=device)
        for frame in frames:
            grads = frame[self.key_for_gradient].grad[0].clone()  # [M, 2]: one camera per frame
            # normalised to [-1, 1] screen space; x len(frames) undoes the batch mean of the loss (as gsplat's C)
            grads[:, 0] *= frame["width"] / 2.0 * len(frames)
            grads[:, 1] *= frame["height"] / 2.0 * len(frames)
            visible = (frame["radii"][0] > 0).all(dim=-1)  # [M]
            ids = frame["ids"][visible]
            state["grad2d"].index_add_(0, ids, grads[visible].norm(dim=-1))
            state["count"].index_add_(0, ids, torch.ones_like(ids, dtype=torch.float32))
            dt_grad = frame["dt"].grad
            if dt_grad is not None:  # d(t - mu_t) = -d mu_t: the magnitude is the same
                state["grad_t"].index_add_(0, ids, dt_grad[visible].abs() * len(frames))

    @torch.no_grad()
    def _grow_gs(self, params, optimizers, state, step) -> tuple[int, int]:
        count = state["count"].clamp_min(1)
        grads, grads_t = state["grad2d"] / count, state["grad_t"] / count
        device = grads.device
        is_grad_high = grads > self.grow_grad2d
        is_small = torch.exp(params["scales"]).max(dim=-1).values <= self.grow_scale3d * state["scene_scale"]
        is_dupli = is_grad_high & is_small
        is_split = is_grad_high & ~is_small
        if self.time_split:
            is_long = torch.exp(params["scales_t"][:, 0]) > self.grow_scale3d * self.duration
            is_split |= (grads_t > self.grow_grad_t) & is_long
        n_dupli, n_split = int(is_dupli.sum()), int(is_split.sum())
        if n_dupli > 0:
            duplicate(params=params, optimizers=optimizers, state=state, mask=is_dupli)
        is_split = torch.cat([is_split, torch.zeros(n_dupli, dtype=torch.bool, device=device)])
        if n_split > 0:
            split_4d(params, optimizers, state, is_split, self.revised_opacity)
        state["grad_t"].zero_()  # gsplat's step resets grad2d and count after refining; the time gradient too
        return n_dupli, n_split


@torch.no_grad()
def split_4d(params, optimizers, state: dict, mask: Tensor, revised_opacity: bool = False) -> None:
    """Replace each selected Gaussian by two sampled from it in (x, y, z, t), all scales / 1.6 (4DGS
    `densify_and_split` with rot_4d); optimizer moments of the children start at zero."""
    sel, rest = torch.where(mask)[0], torch.where(~mask)[0]
    R = rotation_4d(params["quats"][sel], params["quats_r"][sel])  # [S,4,4]
    s = torch.exp(torch.cat([params["scales"][sel], params["scales_t"][sel]], dim=-1))  # [S,4]
    noise = torch.randn(2, len(sel), 4, device=mask.device)
    samples = torch.einsum("nij,nj,bnj->bni", R, s, noise)  # [2,S,4] ~ N(0, R S^2 R^T)

    def param_fn(name: str, p: Tensor) -> Tensor:
        repeats = [2] + [1] * (p.dim() - 1)
        if name == "means":
            p_split = (p[sel] + samples[..., :3]).reshape(-1, 3)
        elif name == "times":
            p_split = (p[sel] + samples[..., 3:]).reshape(-1, 1)
        elif name in ("scales", "scales_t"):
            p_split = (p[sel] - math.log(1.6)).repeat(repeats)
        elif name == "opacities" and revised_opacity:
            p_split = torch.logit(1.0 - torch.sqrt(1.0 - torch.sigmoid(p[sel]))).repeat(repeats)
        else:
            p_split = p[sel].repeat(repeats)
        return torch.nn.Parameter(torch.cat([p[rest], p_split]), requires_grad=p.requires_grad)

    def optimizer_fn(key: str, v: Tensor) -> Tensor:
        return torch.cat([v[rest], torch.zeros((2 * len(sel), *v.shape[1:]), device=v.device)])

    _update_param_with_optimizer(param_fn, optimizer_fn, params, optimizers)
    for k, v in state.items():
        if isinstance(v, Tensor) and v.dim() > 0 and v.shape[0] == mask.shape[0]:
            repeats = [2] + [1] * (v.dim() - 1)
            state[k] = torch.cat((v[rest], v[sel].repeat(repeats)))
