"""FastGS (Ren et al. 2025, "FastGS: Training 3D Gaussian Splatting in 100 Seconds") as a gsplat Strategy.

Every refinement scores each Gaussian on K sampled training views (Sec. 3.2):
  e_uv = 1/3 sum_c |r - g|,  M = minmax(e),  mask = 1[M > tau]          per view j
  count_ij = #masked pixels that Gaussian i blends into (alpha >= 1/255 before T < 1e-4)
  E_j = 0.8 L1 + 0.2 (1 - SSIM)                                          per view j
  s_d^i = floor(sum_j count_ij / K)          (VCD: grow only where s_d > tau_d)
  s_p^i = minmax_i(sum_j count_ij E_j)       (VCP: prune biased towards high s_p)
then clones / splits (gradient and AbsGS criteria, gated by s_d), prunes a multinomial sample of
the usual candidates, and caps opacity at 0.8. After densification, final VCP removes
opacity < 0.1 or s_p > 0.9 at 18k/21k/24k/27k, and (not in FastGS) Gaussians hidden in every training
view (`max_visibility`). Step-valued fields are for 30k steps; configs.py's `FastGSConfig` (the options)
scales them. The views come from a `ViewSampler` the trainer hands over (design contract 2).

The K views of a refinement are the training renders of the K steps before it (`recent_views`; the
official code renders K sampled views, which in a short scaled run costs as much as training: see
`_score_step`); the final VCPs and `recent_views=False` render K sampled views. The masked count comes
from the render itself: on the compiled CPU rasterizer the training step's own backward pass counts it
(`info.backward_stats`, asked for in `step_pre_backward`), a no-grad render one C++ pass over the masked
pixel rows (`info.weighted_hits`); on the PyTorch one a bincount over its composited pairs; on CUDA our
fused stats kernel. The official code renders twice (render, then a counting pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
from torch import Tensor

from gsplat.strategy import Strategy
from gsplat.strategy.ops import _multinomial_sample, duplicate, remove, reset_opa, split

from ..metrics import ssim
from ..pruning.importance import accumulate_stats
from ..render.stats import contribution_stats
from . import cpu_ops
from .base import Center, StrategyHooks
from .views import ViewSampler

cpu_ops.install()  # gsplat's split on CPU tensors

GAUSSIAN_PARAMS = ("means", "scales", "quats", "opacities", "sh0", "shN")
_RUNNING = ("grad2d", "absgrad2d", "count", "radii")  # per-Gaussian sums since the last refinement


def error_mask(rgb: Tensor, gt: Tensor, tau: float) -> Tensor:
    """High-error pixels [H,W] bool of one view: 1[minmax(e) > tau] with e = mean_c |r - g| (FastGS Sec. 3.2)."""
    e = (rgb - gt).abs().mean(-1)  # [H,W] per-pixel L1 error, e_uv = 1/3 sum_c |r - g|
    lo, hi = e.min(), e.max()
    return (e - lo) / (hi - lo).clamp_min(1e-12) > tau  # M^j_mask = 1[minmax(e^j) > tau]


def photometric_loss(rgb: Tensor, gt: Tensor) -> Tensor:
    """E = 0.8 L1 + 0.2 (1 - SSIM) of one view (FastGS Sec. 3.2, the view weight of the prune score)."""
    return 0.8 * (rgb - gt).abs().mean() + 0.2 * (1 - ssim(rgb[None], gt[None]))


def masked_hit_count(params, cam, info: dict, mask: Tensor) -> Tensor:
    """count_i [N] = #pixels of `mask` [H,W] where Gaussian i blends (alpha >= 1/255 before T < 1e-4)."""
    n = params["means"].shape[0]
    request = getattr(info, "backward_stats", None)  # counted by the training step's backward (`_request_stats`)
    if request is not None and request.hits is not None and torch.equal(request.hit_weights[0], mask.float()):
        return request.hits[0]
    hits = getattr(info, "weighted_hits", None)
    if hits is not None:  # compiled CPU rasterizer: a counting pass over the masked pixel rows only
        return hits(mask[None].float())[0]
    pairs = info.get("pairs")
    if pairs is not None:  # CPU rasterizer: the render's own (Gaussian, pixel) pairs, single camera
        hit = mask.reshape(-1).index_select(0, pairs.pixel_ids)  # [P] pair lies on a masked pixel
        return torch.bincount(pairs.gaussian_ids[hit], minlength=n).float()
    dev = params["means"].device  # CUDA: gsplat's info has no pairs, count with the fused stats kernel
    return contribution_stats(
        params["means"], params["quats"], torch.exp(params["scales"]), torch.sigmoid(params["opacities"]),
        cam.viewmat.to(dev), cam.K.to(dev), cam.width, cam.height, pixel_weights=mask.float(),
    ).hit_count


@torch.no_grad()
def view_score_terms(params, cam, rgb: Tensor, gt: Tensor, info: dict, tau: float,
                     loss: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
    """(count_ij [N], count_ij E_j [N]) of one view j from its render (FastGS Sec. 3.2); `loss`: E_j when the
    caller has it already (the training step's own loss of this render), else computed here."""
    count = masked_hit_count(params, cam, info, error_mask(rgb, gt, tau))
    return count, (photometric_loss(rgb, gt) if loss is None else loss) * count


def scores_from_sums(count_sum: Tensor, weighted: Tensor, k: int, with_densify: bool = True):
    """(s_d [N] or None, s_p [N]) from sum_j count_ij and sum_j count_ij E_j over k views."""
    lo, hi = weighted.min(), weighted.max()
    s_p = (weighted - lo) / (hi - lo).clamp_min(1e-12)  # s_p = minmax_i(sum_j count_ij E_j)
    s_d = torch.div(count_sum, max(k, 1), rounding_mode="floor") if with_densify else None  # s_d = floor(sum_j count_ij / K)
    return s_d, s_p


@torch.no_grad()
def multiview_scores(params, views: ViewSampler, k: int, tau: float, with_densify: bool = True):
    """(s_d [N] or None, s_p [N]) over k sampled views (FastGS Sec. 3.2, `compute_gaussian_score_fastgs`)."""
    n, dev = params["means"].shape[0], params["means"].device
    count_sum = torch.zeros(n, device=dev)  # sum_j count_ij
    weighted = torch.zeros(n, device=dev)  # sum_j count_ij E_j
    sampled = views.sample(k)
    for cam, gt in sampled:
        rgb, info = views.render(cam)
        count, count_e = view_score_terms(params, cam, rgb, gt, info, tau)
        count_sum += count
        weighted += count_e
    return scores_from_sums(count_sum, weighted, len(sampled), with_densify)


@dataclass
class FastGSStrategy(Strategy, StrategyHooks):
    """VCD + VCP (FastGS) with gsplat's Strategy interface; schedule written for 30k steps."""

    views: Optional[ViewSampler] = None  # the trainer's callback: sampled views and their renders
    num_views: int = 10  # K, views per score
    loss_thresh: float = 0.1  # tau, on the min-max normalised per-pixel L1 error
    densify_score_thresh: float = 5.0  # tau_d: clone/split only where s_d > tau_d
    grad_thresh: float = 2e-4  # clone: mean |dL/dmean2d| (NDC units, as 3DGS) >= this
    grad_abs_thresh: float = 0.0012  # split: mean AbsGS gradient >= this
    dense: float = 0.001  # clone if max scale <= dense * extent, split if above
    prune_opa: float = 0.005  # VCP candidates: opacity below this ...
    prune_radius: float = 20.0  # ... or max screen radius (px) above this (after reset_every; 0 disables) ...
    prune_scale3d: float = 0.1  # ... or max scale above this * extent (after reset_every)
    prune_budget: float = 0.5  # sample int(budget * #candidates) Gaussians, prune candidates among them
    opacity_cap: float = 0.8  # opacity <= this after each refinement
    reset_opa_value: float = 0.01  # opacity reset (3DGS) every reset_every during densification
    final_prune_opa: float = 0.1  # final VCP: opacity below this ...
    final_prune_score: float = 0.9  # ... or s_p above this (tau_p)
    final_prune_visibility: float = 0.02  # ... or max alpha T / opacity over every training view below this (0 = off)
    refine_start_iter: int = 500
    refine_stop_iter: int = 15_000
    refine_every: int = 500
    reset_every: int = 3000
    final_prune_iters: tuple[int, ...] = (18_000, 21_000, 24_000, 27_000)
    optimizer_schedule: bool = True  # FastGS's Adam schedule (see `held_optimizers`)
    sh_step_every: int = 16  # before sparse_step_iters[0]: SH-rest Adam steps every this many steps
    sparse_step_iters: tuple[int, ...] = (15_000, 20_000)  # from these steps on, all step every ...
    sparse_step_every: tuple[int, ...] = (32, 64)  # ... this many steps
    learning_rates: Optional[Dict[str, float]] = None  # Adam lrs overriding the trainer's (FastGS's when set)
    compact_box_beta: float = 0.5  # training renders keep pixels with d^2 <= beta 2 ln(255 o) (Sec. 3.4); 1 = off
    compact_box_stop_iter: int = 27_000  # from here on, training renders are plain (see `compact_box`)
    recent_views: bool = True  # refinement scores from the training renders of the last K steps (see `_score_step`)
    verbose: bool = False

    def render_kwargs(self, step: int) -> Dict[str, Any]:
        """Rasterizer options of the training render at `step` (and of the score renders then).

        absgrad: AbsGS gradients, read by `_update_state` only while densifying; the renders after that
        skip its per-pair backward work (about a fifth of the CPU backward).
        compact_box: FastGS renders with its compact box throughout, but a model trained that way scores
        lower in a plain 3DGS renderer (fox, 1000 steps: 29.1 dB with the box, 27.8 without); from
        compact_box_stop_iter on (after the final VCPs) the renders are plain, so the model that is
        evaluated and exported is a standard 3DGS model. 1 = plain.
        """
        return {"absgrad": step < self.refine_stop_iter,
                "compact_box": self.compact_box_beta if step < self.compact_box_stop_iter else 1.0}

    def initialize_state(self, scene_scale: float = 1.0, scene_center: Center = (0.0, 0.0, 0.0)) -> Dict[str, Any]:
        """Running sums, allocated on the first step (device, N); extent = scene_scale."""
        return {"grad2d": None, "absgrad2d": None, "count": None, "radii": None, "recent_count": None,
                "recent_weighted": None, "recent_views": 0, "scene_scale": scene_scale}

    def densify_stop_step(self) -> int:
        return self.refine_stop_iter

    def check_sanity(self, params, optimizers) -> None:
        super().check_sanity(params, optimizers)
        for key in ("means", "scales", "quats", "opacities"):
            assert key in params, f"{key} is required in params but missing."

    def held_optimizers(self, step: int) -> set:
        """Names of the optimizers that skip their step at `step`; their gradients accumulate (FastGS Sec. 3.4).

        Before sparse_step_iters[0] the SH-rest Adam steps every sh_step_every steps; then all of the
        Gaussians' optimizers step every sparse_step_every[i] steps. Step s is the paper's iteration s + 1.
        """
        if not self.optimizer_schedule:
            return set()
        it = step + 1
        if it <= self.sparse_step_iters[0]:
            return set() if it % self.sh_step_every == 0 else {"shN"}
        every = self.sparse_step_every[0] if it <= self.sparse_step_iters[1] else self.sparse_step_every[1]
        return set() if it % every == 0 else set(GAUSSIAN_PARAMS)

    def step_pre_backward(self, params, optimizers, state, step, info) -> None:
        assert "means2d" in info, "The 2D means of the Gaussians are required but missing."
        if step < self.refine_stop_iter:
            info["means2d"].retain_grad()
        self._request_stats(params, step, info)

    def _is_score_step(self, step: int) -> bool:
        """Whether this step's training render is one of the K that score the next refinement (`_score_step`)."""
        return (step < self.refine_stop_iter and self.recent_views and self.views is not None
                and self.next_refine_step(step) - step < self.num_views)

    def _tracks_visibility(self, step: int) -> bool:
        """Whether this step's render adds to the visibility the final VCPs read (`_record_visibility`): from the
        end of densification (the set of Gaussians then changes only by the final VCPs) to the last final VCP."""
        return (self.final_prune_visibility > 0 and self.views is not None and bool(self.final_prune_iters)
                and self.refine_stop_iter <= step <= max(self.final_prune_iters))

    def _request_stats(self, params, step: int, info) -> None:
        """Ask the training render's backward pass (compiled CPU rasterizer: `BackwardStats`), which walks every
        composited pair anyway, for this view's masked counts (`_score_step`) and its alpha T maxima
        (`_record_visibility`), so neither needs a pass of its own."""
        request, cur = getattr(info, "backward_stats", None), self.views.current() if self.views is not None else None
        if request is None or cur is None or cur[3] is not info:
            return
        if self._is_score_step(step):
            _, gt, rgb, _ = cur
            request.hit_weights = error_mask(rgb, gt, self.loss_thresh)[None].float()
        if self._tracks_visibility(step):
            request.want_weight_max = True
            self._render_opacity = torch.sigmoid(params["opacities"]).detach()  # o_i of this render

    def step_post_backward(self, params, optimizers, state, step, info, packed: bool = False) -> None:
        if step < self.refine_stop_iter:
            self._update_state(params, state, info)
            if self.recent_views:
                self._score_step(params, state, step)
            if step > self.refine_start_iter and step % self.refine_every == 0:
                self._refine(params, optimizers, state, step)
            if step > 0 and step % self.reset_every == 0:  # 3DGS opacity reset, as FastGS's code keeps it
                reset_opa(params, optimizers, state, value=self.reset_opa_value)
        if self._tracks_visibility(step):
            self._record_visibility(params, state, info)
        if step in self.final_prune_iters and step >= self.refine_stop_iter:
            self._final_prune(params, optimizers, state, step)

    # -- running statistics -------------------------------------------------------------------------
    @torch.no_grad()
    def _update_state(self, params, state, info) -> None:
        n, dev = params["means"].shape[0], params["means"].device
        if state["count"] is None or state["count"].shape[0] != n:
            for key in _RUNNING:
                state[key] = torch.zeros(n, device=dev)
        means2d, radii = info["means2d"], info["radii"]  # [C,N,2], [C,N,2]
        visible = (radii > 0).all(-1)  # [C,N]
        # pixel -> NDC gradient scale (3DGS convention of grad_thresh), gsplat's `_update_state`
        to_ndc = torch.tensor([info["width"] / 2.0, info["height"] / 2.0], device=dev) * info["n_cameras"]
        state["grad2d"] += ((means2d.grad * to_ndc).norm(dim=-1) * visible).sum(0)  # sum of ||dL/dmean2d||
        state["absgrad2d"] += ((means2d.absgrad * to_ndc).norm(dim=-1) * visible).sum(0)  # AbsGS: sum of ||sum_p |dL_p/dmean2d|||
        state["count"] += visible.sum(0)
        state["radii"] = torch.maximum(state["radii"], radii.amax(dim=(0, 2)).float())  # max screen radius, px

    def next_refine_step(self, step: int) -> int:
        """The first refinement step >= `step` (refinements run at multiples of refine_every past refine_start_iter)."""
        r = -(-step // self.refine_every) * self.refine_every
        while r <= self.refine_start_iter:
            r += self.refine_every
        return r

    @torch.no_grad()
    def _score_step(self, params, state, step: int) -> None:
        """Add this step's training render to the refinement scores when it is one of the K before a refinement.

        The official code renders K sampled views at each refinement: 10 renders every 500 steps, 2 % of a 30k
        run. Scaled to a short run (refinement every ~17 steps at 1k) the same K renders cost as much as training
        itself. The training step draws its view uniformly without replacement and has just rendered it, so the
        last K steps' renders are K uniform views at (nearly) the current parameters: the scores come free, at
        any run length. Fewer than K when refinements are closer than K steps (s_d averages over those).
        """
        cur = self.views.current() if self.views is not None else None
        if cur is None or not self._is_score_step(step):
            return
        n, dev = params["means"].shape[0], params["means"].device
        if state.get("recent_count") is None or state["recent_count"].shape[0] != n or not state["recent_views"]:
            state["recent_count"], state["recent_weighted"] = torch.zeros(n, device=dev), torch.zeros(n, device=dev)
            state["recent_views"] = 0
        cam, gt, rgb, info = cur
        count, count_e = view_score_terms(params, cam, rgb, gt, info, self.loss_thresh, self.views.current_loss())
        state["recent_count"] += count
        state["recent_weighted"] += count_e
        state["recent_views"] += 1

    def _refine_scores(self, params, state):
        """(s_d, s_p) of a refinement: from the recent training renders when they were collected, else K sampled views."""
        views = state.get("recent_views", 0)
        if views and state["recent_count"].shape[0] == params["means"].shape[0]:
            scores = scores_from_sums(state["recent_count"], state["recent_weighted"], views)
        else:
            scores = multiview_scores(params, self.views, self.num_views, self.loss_thresh)
        state["recent_count"] = state["recent_weighted"] = None
        state["recent_views"] = 0
        return scores

    # -- VCD + VCP during densification ----------------------------------------------------------------
    @torch.no_grad()
    def _refine(self, params, optimizers, state, step: int) -> None:
        s_d, s_p = self._refine_scores(params, state)
        extent = state["scene_scale"]
        count = state["count"].clamp_min(1)
        grad, absgrad = state["grad2d"] / count, state["absgrad2d"] / count  # mean over the views that saw i
        max_scale = torch.exp(params["scales"]).max(dim=-1).values
        small = max_scale <= self.dense * extent
        consistent = s_d > self.densify_score_thresh  # VCD gate, FastGS Sec. 3.2 (importance_score > 5)
        is_clone = (grad >= self.grad_thresh) & small & consistent
        is_split = (absgrad >= self.grad_abs_thresh) & ~small & consistent
        # the prune score rides in the state through duplicate/split, so it stays with its Gaussians
        # (clones and split children inherit their parent's s_p) instead of shifting indices
        # (gsplat's ops rebuild every tensor of the state; None entries and the scene scale pass)
        state["prune_score"] = s_p
        n_clone, n_split = int(is_clone.sum()), int(is_split.sum())
        if n_clone:
            duplicate(params, optimizers, state, is_clone)
        if n_split:  # clones are appended at the end and are not split
            split(params, optimizers, state, torch.cat([is_split, is_split.new_zeros(n_clone)]))
        s_p = state.pop("prune_score")  # [N'] for the Gaussians that exist now

        # VCP: candidates as 3DGS, then keep only those hit by a multinomial sample favouring high s_p
        is_candidate = torch.sigmoid(params["opacities"]) < self.prune_opa
        if step > self.reset_every:
            big = torch.exp(params["scales"]).max(dim=-1).values > self.prune_scale3d * extent
            if self.prune_radius > 0:
                big |= state["radii"] > self.prune_radius
            is_candidate |= big
        budget = int(self.prune_budget * int(is_candidate.sum()))  # remove_budget = int(0.5 * #candidates)
        n_prune = 0
        if budget:
            weights = 1.0 / (1e-6 + 1.0 - s_p)  # sampling weight 1 / (1e-6 + 1 - s_p), FastGS Sec. 3.3
            sampled = torch.zeros_like(is_candidate)
            sampled[_multinomial_sample(weights, budget, replacement=False)] = True
            is_prune = is_candidate & sampled
            n_prune = int(is_prune.sum())
            if n_prune:
                remove(params, optimizers, state, is_prune)
        reset_opa(params, optimizers, state, value=self.opacity_cap)  # opacity <= 0.8, Adam moments reset
        for key in _RUNNING:
            state[key].zero_()
        if self.verbose:
            print(f"step {step}: FastGS cloned {n_clone}, split {n_split}, pruned {n_prune}; "
                  f"{len(params['means'])} Gaussians")

    # -- final VCP ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def _record_visibility(self, params, state, info) -> None:
        """state["visibility"] [N] = max over the training renders since the last final VCP of w_max_i / o_i
        (`max_visibility` from the renders training makes anyway); state["visibility_seen"]: which views they were."""
        request, cur = getattr(info, "backward_stats", None), self.views.current()
        if request is None or request.weight_max is None or cur is None:
            return
        n = params["means"].shape[0]
        if state.get("visibility") is None or state["visibility"].shape[0] != n:
            state["visibility"] = torch.zeros(n, device=params["means"].device)
            state["visibility_seen"] = [False] * len(self.views.cameras)
        seen = next((i for i, c in enumerate(self.views.cameras) if c is cur[0]), None)
        if seen is None:
            return
        state["visibility"] = torch.maximum(state["visibility"], request.weight_max[0] / self._render_opacity)
        state["visibility_seen"][seen] = True

    def _visibility(self, params, state) -> Tensor:
        """v_i [N] (`max_visibility`): from the training renders when they covered every training view since the
        last final VCP, else a pass over all of them."""
        v = state.pop("visibility", None)
        seen = state.pop("visibility_seen", None)
        if v is not None and v.shape[0] == params["means"].shape[0] and seen and all(seen):
            return v
        return max_visibility(params, self.views.cameras)

    @torch.no_grad()
    def _final_prune(self, params, optimizers, state, step: int) -> None:
        _, s_p = multiview_scores(params, self.views, self.num_views, self.loss_thresh, with_densify=False)
        # final VCP: opacity < 0.1 or s_p > tau_p = 0.9 (FastGS Sec. 3.3, `final_prune_fastgs`)
        is_prune = (torch.sigmoid(params["opacities"]) < self.final_prune_opa) | (s_p > self.final_prune_score)
        if self.final_prune_visibility > 0 and self.views is not None:
            # ... or hidden in every training view: `max_visibility`
            is_prune |= self._visibility(params, state) < self.final_prune_visibility
        if is_prune.any():
            remove(params, optimizers, state, is_prune)
        if self.verbose:
            print(f"step {step}: FastGS final VCP pruned {int(is_prune.sum())}; {len(params['means'])} Gaussians")


@torch.no_grad()
def max_visibility(params, cameras) -> Tensor:
    """v_i [N] = max over `cameras` and pixels of alpha_i T_i / o_i: the largest share of its opacity any view shows.

    RadSplat (Eq. 7) prunes on h_i = max alpha T; divided by the opacity o_i it measures occlusion alone, so
    a faint but visible Gaussian keeps v near 1 (the opacity rule is VCP's), while an opaque one that every
    view sees only through a surface in front of it has v near 0: its colour and opacity are fitted to no
    view. VCP removes Gaussians that sit in high-error regions; a hidden one carries no error, so nothing
    else removes it, and on an object captured from few views (chair_blender: 25 views, none below 8
    degrees of elevation) such Gaussians under the seat are the floaters of the low test views (docs/strategies.md, FastGS).
    """
    h = accumulate_stats(params, ((cam, None) for cam in cameras)).weight_max  # max over views and pixels of alpha T
    return h / torch.sigmoid(params["opacities"])
