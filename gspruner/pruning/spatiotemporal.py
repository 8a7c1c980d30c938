"""Spatio-temporal pruning and the key-frame temporal filter for 4D Gaussians (4DGS-1K: Yuan et al., "1000+ FPS
4D Gaussian Splatting for Dynamic Scene Rendering", 2025, Sec. 4).

Score (per Gaussian i, the paper's Eq. 4-7):
  SS_i(t)  = sum over the training views at time t and their pixels of alpha_i T_i          (spatial, Eq. 4)
  p2_i(t)  = ((t - mu_t)^2 / Sigma_t^2 - 1 / Sigma_t) p_i(t) = d^2 p_i / dt^2              (Eq. 5, Sigma_t = Sigma_tt)
  w_i(t)   = 1 / (0.5 tanh(|p2_i(t)|) + 0.5), in (1, 2]: 2 where the opacity is steady      (Eq. 6's summand)
  S_i      = gamma(S4D_i) sum_t w_i(t) SS_i(t), gamma = LightGaussian's volume factor of the 4 scales (Eq. 7)
The lowest `ratio` are removed, then the model is fine-tuned without densification.
Two readings, both for the paper's stated intent ("large second derivative magnitude corresponds to unstable,
short-lived Gaussians"; "a higher temporal score to Gaussians with a longer lifespan"):
- |p2|: without it the denominator reaches 0 at the peak of every short-lived Gaussian (p2 = -1 / Sigma_t),
  ranking exactly the transient Gaussians highest.
- w_i is taken at the time of each SS_i(t) it multiplies (Eq. 6 indexes g_{i,t}). Summing w over all t first and
  multiplying by the total SS, the other reading, gives a Gaussian dead most of the sequence (p ~ 0, so p2 ~ 0)
  the highest temporal score: a flash of sigma_t 0.03 outscores one present all along.

Temporal filter (Sec. 4.2): key-frames at evenly spaced training frame times; for each, the union over the
training views at that time (`filter_views="timestamp"`, the paper's "all training views at current
timestamp": every camera of a multi-view video frame, the one camera of a monocular D-NeRF frame) or over
every training camera rendered at the key-frame's time (`"all"`, a wider set for monocular data; `"auto"`, the
default, picks "all" when every training time has one camera — a monocular mask holds only what that one camera
saw, and novel views of the object lose the rest — and "timestamp" for multi-view video), of the
Gaussians that blend into a pixel with alpha T above `DEFAULT_FILTER_MIN_WEIGHT` (configs.py; 0.05, our choice:
the paper does not define visible); a frame at time t rasterizes only the union of the masks of its two
nearest key-frames. Built right after the prune and
used during the fine-tune (which recovers what the filter loses) and at evaluation.
The pruner's options: configs.py's SpatioTemporalConfig.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from ..model.gaussians4d import covariance_4d, snapshot
from ..render.stats import contribution_stats
from .base import Pruner, PruneContext, remove_gaussians
from .importance import lightgaussian_volume_factor
from .oneshot import keep_by_ratio

DEFAULT_KEYFRAMES = 6  # 4DGS-1K on D-NeRF: 6 key-frames in all (N3V: one every 20 frames)


@torch.no_grad()
def _per_view_stats(splats, cam, t: float, ctx: PruneContext, candidates: Tensor | None = None):
    """(ids [M], ContributionStats over M) of the Gaussians alive at t, seen from `cam`."""
    dev = ctx.device
    snap = snapshot(splats, t, candidates)
    stats = contribution_stats(snap["means"], snap["quats"], torch.exp(snap["scales"]), torch.sigmoid(snap["opacities"]),
                               cam.viewmat.to(dev), cam.K.to(dev), cam.width, cam.height,
                               near_plane=ctx.near_plane, far_plane=ctx.far_plane)
    return snap["ids"], stats


@torch.no_grad()
def stability_weight(splats, t: float, ids: Tensor | None = None) -> Tensor:
    """w(t) = 1 / (0.5 tanh(|p2(t)|) + 0.5) [N] or [M] (4DGS-1K Eq. 5-6, with |p2|)."""
    sel = (lambda x: x) if ids is None else (lambda x: x[ids])
    cov = covariance_4d(sel(splats["scales"]), sel(splats["scales_t"]), sel(splats["quats"]), sel(splats["quats_r"]))
    var_t = cov[:, 3, 3]  # Sigma_t
    dt = t - sel(splats["times"])[:, 0]
    p2 = (dt**2 / var_t**2 - 1.0 / var_t) * torch.exp(-0.5 * dt**2 / var_t)  # second derivative of p(t)
    return 1.0 / (0.5 * torch.tanh(p2.abs()) + 0.5)


@torch.no_grad()
def spatiotemporal_score(splats, ctx: PruneContext) -> Tensor:
    """S [N] = gamma(S4D) sum over the training views (each at its own time t) of w(t) SS(t) (4DGS-1K Eq. 7)."""
    total = torch.zeros(len(splats["means"]), device=ctx.device)
    for cam, _ in ctx.views():
        ids, stats = _per_view_stats(splats, cam, cam.time, ctx)
        total.index_add_(0, ids, stats.weight_sum * stability_weight(splats, cam.time, ids))
    log_scales_4d = torch.cat([splats["scales"], splats["scales_t"]], dim=-1).detach()
    return total * lightgaussian_volume_factor(log_scales_4d)


def keyframe_times(frame_times: Tensor, every: int | None = None, count: int = DEFAULT_KEYFRAMES) -> Tensor:
    """Key-frame times [K], each a training frame time: every `every`-th frame (and the last), or the `count`
    frames nearest to evenly spaced times over the span."""
    frame_times = torch.unique(frame_times)  # sorted
    if every is not None:
        keys = frame_times[::every]
        return keys if keys[-1] == frame_times[-1] else torch.cat([keys, frame_times[-1:]])
    even = torch.linspace(float(frame_times[0]), float(frame_times[-1]), max(2, min(count, len(frame_times))))
    return torch.unique(frame_times[(even[:, None] - frame_times[None, :]).abs().argmin(dim=1)])


@dataclasses.dataclass
class TemporalFilter:
    """Per key-frame visibility masks: a frame at time t may rasterize the union of its two nearest key-frames'."""

    key_times: Tensor  # [K] sorted
    visible: Tensor  # [K, N] bool

    @classmethod
    @torch.no_grad()
    def build(cls, splats, key_times: Tensor, ctx: PruneContext, views: str = "timestamp",
              min_weight: float = 0.0) -> "TemporalFilter":
        """views "timestamp": the training views of the key-frame's own time (the paper: N3V's cameras at that
        frame; D-NeRF's single camera); "all": every training camera, rendered at the key-frame's time.
        Visible: reaches a pixel of one of them (min_weight 0), or blends into one with alpha T > min_weight."""
        n = len(splats["means"])
        visible = torch.zeros(len(key_times), n, dtype=torch.bool, device=ctx.device)
        for k, t in enumerate(key_times.tolist()):
            for cam, _ in ctx.views():
                if views == "timestamp" and abs(cam.time - t) > 1e-6:
                    continue
                ids, stats = _per_view_stats(splats, cam, t, ctx)
                seen = stats.hit_count > 0 if min_weight <= 0 else stats.weight_max > min_weight
                visible[k, ids[seen]] = True
        return cls(key_times.to(ctx.device).contiguous(), visible)

    def active(self, t: float) -> Tensor:
        """[N] bool: visible at the key-frame at or before t, or at the one after (clamped at the ends)."""
        right = int(torch.searchsorted(self.key_times, torch.tensor(t, device=self.key_times.device, dtype=self.key_times.dtype)))
        left = max(right - 1, 0)
        right = min(right, len(self.key_times) - 1)
        return self.visible[left] | self.visible[right]

    def state_dict(self) -> dict:
        return {"key_times": self.key_times.cpu(), "visible": self.visible.cpu()}

    @classmethod
    def from_state(cls, state: dict, device) -> "TemporalFilter":
        return cls(state["key_times"].to(device).contiguous(), state["visible"].to(device))


class SpatioTemporalPruner(Pruner):
    """4DGS-1K: one prune by the spatio-temporal variation score S at `at_fraction` of training (after densification stops), then the
    key-frame filter for the rest of training and for rendering."""

    name = "spatiotemporal"

    def __init__(self, ctx: PruneContext, frame_times: Tensor, ratio: float, at_fraction: float = 2 / 3,
                 use_filter: bool = True, keyframe_every: int | None = None, filter_views: str = "auto",
                 filter_min_weight: float = 0.0):
        self.ctx, self.ratio = ctx, ratio
        self.frame_times = torch.unique(frame_times.float()).to(ctx.device)
        if filter_views == "auto":  # monocular: one training camera per time
            filter_views = "all" if len(self.frame_times) == len(frame_times) else "timestamp"
        self.step = min(max(round(at_fraction * ctx.max_steps), ctx.densify_stop_step), max(ctx.max_steps - 1, 0))
        self.use_filter, self.keyframe_every, self.filter_views = use_filter, keyframe_every, filter_views
        self.filter_min_weight = filter_min_weight
        self.num_before: int | None = None
        self.num_removed = 0
        self.filter: TemporalFilter | None = None

    def after_step(self, step, params, optimizers, strategy_state) -> None:
        if step != self.step:
            return
        importance = spatiotemporal_score(params, self.ctx)
        keep = keep_by_ratio(importance, self.ratio)
        self.num_before, self.num_removed = keep.shape[0], int((~keep).sum())
        remove_gaussians(params, optimizers, strategy_state, ~keep)
        if self.use_filter:
            keys = keyframe_times(self.frame_times, self.keyframe_every)
            self.filter = TemporalFilter.build(params, keys, self.ctx, self.filter_views, self.filter_min_weight)

    def active_mask(self, time: float | None) -> Tensor | None:
        if self.filter is None or time is None:
            return None
        return self.filter.active(time)

    def summary(self) -> dict:
        return {
            "prune": self.name,
            "prune_mode": "ratio",
            "prune_steps": [self.step],
            "num_gaussians_before_prune": self.num_before,
            "prune_ratio": None if not self.num_before else self.num_removed / self.num_before,
            "temporal_filter": self.filter is not None,
            "num_keyframes": None if self.filter is None else len(self.filter.key_times),
            "filter_views": self.filter_views if self.use_filter else None,
            "filter_min_weight": self.filter_min_weight if self.use_filter else None,
            "keyframe_times": None if self.filter is None else [round(float(t), 4) for t in self.filter.key_times],
        }

    def state_dict(self) -> dict:
        return {"num_before": self.num_before, "num_removed": self.num_removed,
                "filter": None if self.filter is None else self.filter.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if state:
            self.num_before, self.num_removed = state["num_before"], state["num_removed"]
            if state.get("filter") is not None:
                self.filter = TemporalFilter.from_state(state["filter"], self.ctx.device)
