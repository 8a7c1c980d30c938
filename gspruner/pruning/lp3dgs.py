"""Learned pruning masks: LP-3DGS's Gumbel-sigmoid mask on an importance score, and the straight-through
(STE) mask of Compact-3DGS as its ablation baseline. The pruning ratio is learned, not set.

One logit m_i per Gaussian is trained for a window of steps, gating the Gaussians' opacity (and scale,
STE) under a sparsity penalty; at the window's end one hard prune removes the Gaussians whose mask
collapsed, and training continues on the plain model (fine-tuning).

The logit lives in the splats' ParameterDict as `mask_logit` [N] (with its own optimizer in the trainer's
optimizer dict) during the window, as Compact-3DGS keeps its mask as a Gaussian attribute: every
densification / pruning op of any strategy (gsplat's `strategy.ops`) then keeps it aligned with the
Gaussians, and checkpoints inside the window carry it.

Schedule (paper, 30k steps): mask created at 19.5k, prune at 20k, score recomputed over all training views
every 20 steps. Scaled to max_steps; see `MaskPruner.__init__` for the short-run rules. The options:
configs.py's LP3DGSConfig and STEMaskConfig.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from .base import Pruner, PruneContext, remove_gaussians
from .importance import accumulate_stats

if TYPE_CHECKING:
    from .configs import Estimator

REFERENCE_STEPS = 30_000
MASK = "mask_logit"

# LP-3DGS (Zhang et al. 2024), code defaults: prune_iterations=[19500], train_mask_iters=500
LP_PRUNE_STEP = 20_000
LP_WINDOW = 500
LP_MASK_LR = 0.05  # AdamW(lr=0.05, eps=1e-15) in the code
LP_TEMPERATURE = 0.5  # gumbel_temp
SCORE_EVERY = 20  # importance recomputed when (step - start) % 20 == 0; the first one switches the gate on
SPARSITY_WEIGHT = 5e-4  # lambda_m; R_mask = mean(sigmoid(m)) as the code (the paper writes mean|m|)
# Compact-3DGS (Lee et al. 2024): mask lr 0.01, keep where sigmoid(m) > 0.01, mask-only pruning from 15k
STE_MASK_LR = 0.01
STE_THRESHOLD = 0.01


def gumbel_sigmoid(logits: Tensor, temperature: float, generator: torch.Generator | None = None) -> Tensor:
    """y = sigmoid((x + g) / tau), g = g1 - g2 logistic noise (LP-3DGS Eq. 6; mask.py::_gumbel_sigmoid)."""
    u = torch.rand(logits.shape, generator=generator, device="cpu").to(logits.device).clamp(1e-10, 1 - 1e-10)
    g = torch.log(u) - torch.log1p(-u)  # difference of two Gumbel(0, 1) = Logistic(0, 1)
    return torch.sigmoid((logits + g) / temperature)


def ste_mask(logits: Tensor, threshold: float = STE_THRESHOLD) -> Tensor:
    """M = 1[sigmoid(m) > eps] forward, d sigmoid(m) backward (Compact-3DGS Eq. 2, straight-through)."""
    soft = torch.sigmoid(logits)
    return ((soft > threshold).float() - soft).detach() + soft


def lp_importance(score: str, stats) -> Tensor:
    """S [N] of LP-3DGS, over all training views: RadSplat max alpha*T, or Mini-Splatting's sum of
    blending weights (`bw_score`, no max-contributor rule). Raw values, not normalised, as the code."""
    if score == "radsplat":
        return stats.weight_max
    if score == "minisplatting":
        return stats.weight_sum
    raise ValueError(f"unknown LP-3DGS score {score!r}; choose radsplat or minisplatting")


class MaskPruner(Pruner):
    """A learned per-Gaussian mask for a window of training, then one hard prune (LP-3DGS / STE)."""

    def __init__(self, ctx: PruneContext, estimator: Estimator = "gumbel", score: str = "radsplat",
                 prune_fraction: float = LP_PRUNE_STEP / REFERENCE_STEPS, seed: int = 0):
        if estimator not in ("gumbel", "ste"):
            raise ValueError(f"unknown mask estimator {estimator!r}")
        self.ctx, self.estimator, self.score = ctx, estimator, score
        self.name = "lp3dgs" if estimator == "gumbel" else "ste-mask"
        n, s = ctx.max_steps, ctx.max_steps / REFERENCE_STEPS
        # Window length: the paper's 500 steps scaled, but at least 10 % of a short run (up to 500): a
        # 2k-step run would otherwise train the mask for 33 steps, less than one pass over the views.
        lp_window = max(round(LP_WINDOW * s), min(LP_WINDOW, round(0.1 * n)))
        # The prune comes after densification has stopped (the strategy would refill what was pruned)
        # and after a full window.
        self.prune_step = min(max(round(prune_fraction * n), ctx.densify_stop_step + lp_window), n - 1)
        if estimator == "gumbel":
            self.start_step, paper_window, base_lr = self.prune_step - lp_window, LP_WINDOW, LP_MASK_LR
        else:
            # Compact-3DGS trains its mask through training and prunes by it from 15k on; here it is
            # trained from the end of densification (the set of Gaussians is then settled) to the shared
            # prune step: 15k -> 20k of the 30k schedule.
            paper_window = LP_PRUNE_STEP - REFERENCE_STEPS // 2
            self.start_step, base_lr = max(ctx.densify_stop_step, self.prune_step - round(paper_window * s)), STE_MASK_LR
            self.start_step = min(self.start_step, self.prune_step - lp_window)
        self.start_step = max(self.start_step, 0)
        window = max(self.prune_step - self.start_step, 1)
        # Adam moves a logit by at most ~lr per step: scale lr so the window allows the paper's travel.
        self.mask_lr = base_lr * max(1.0, paper_window / window)
        # LP-3DGS: S is recomputed 25 times in the window (every 20 of 500 steps) and the gate switches on
        # at the first recompute; before that only the sparsity loss acts, which moves m from 1 to ~0
        # (20 Adam steps of 0.05), so the gate opens at gs(~0) and rendering decides each m's sign.
        self.score_every = max(1, round(SCORE_EVERY * window / paper_window)) if estimator == "gumbel" else 0
        self.gate_step = self.start_step + self.score_every
        self.generator = torch.Generator().manual_seed(seed + 1)
        self.importance: Tensor | None = None  # S [N], LP-3DGS only
        self.coverage = 1.0  # mean alpha of the training renders, from the last score refresh (see `extra_loss`)
        self.num_before: int | None = None
        self.num_removed = 0
        self._params = self._optimizers = None
        self._gate_step, self._gate = -1, None

    # -- wiring ------------------------------------------------------------------------------
    def attach(self, params, optimizers: dict) -> None:
        self._params, self._optimizers = params, optimizers
        if MASK in params and MASK not in optimizers:  # resumed inside the window
            optimizers[MASK] = self._make_optimizer(params[MASK])

    def _make_optimizer(self, logit: Tensor) -> torch.optim.Optimizer:
        return torch.optim.AdamW([{"params": logit, "lr": self.mask_lr, "name": MASK}], eps=1e-15)

    def active(self, step: int) -> bool:
        """The mask exists (and its sparsity loss acts) at this step."""
        return self.start_step <= step < self.prune_step and self._params is not None and MASK in self._params

    def gating(self, step: int) -> bool:
        return self.active(step) and step >= self.gate_step

    def _mask(self, step: int) -> Tensor:
        """The mask value [N] of this step (one Gumbel sample per step, shared by the gates)."""
        if self._gate_step != step:
            m = self._params[MASK]
            if self.estimator == "gumbel":
                s = self.importance
                if s is None or s.shape[0] != m.shape[0]:  # the strategy changed N: refresh S now
                    s = self._refresh_importance()
                self._gate = gumbel_sigmoid(m * s, LP_TEMPERATURE, self.generator)  # gs(m_i S_i) (Eq. 7, code)
            else:
                self._gate = ste_mask(m)
            self._gate_step = step
        return self._gate

    # -- hooks -------------------------------------------------------------------------------
    def opacity_gate(self, step: int) -> Tensor | None:
        return self._mask(step) if self.gating(step) else None  # o'_i = sigmoid(o_i) * mask_i

    def scale_gate(self, step: int) -> Tensor | None:
        # Compact-3DGS masks both opacity and scale; LP-3DGS only opacity
        return self._mask(step)[:, None] if self.estimator == "ste" and self.gating(step) else None

    def extra_loss(self, step: int) -> Tensor | None:
        if not self.active(step):
            return None
        # lambda_m R_mask (LP-3DGS Eq. 8, code), x the covered fraction of the training pixels: the rendering loss is a
        # mean over every pixel, so on an object against an empty background each Gaussian's share of it is diluted
        # by the empty pixels while R_mask is not; the paper's lambda_m was set on scenes that fill the frame.
        return SPARSITY_WEIGHT * self.coverage * torch.sigmoid(self._params[MASK]).mean()

    def after_step(self, step: int, params, optimizers: dict, strategy_state: dict) -> None:
        self._params, self._optimizers = params, optimizers
        nxt = step + 1
        if self.start_step <= nxt < self.prune_step and MASK not in params:  # (also: continuing a run from inside the window)
            n = params["means"].shape[0]
            params[MASK] = torch.nn.Parameter(torch.ones(n, device=params["means"].device))  # m_i = 1
            optimizers[MASK] = self._make_optimizer(params[MASK])
            self.num_before = n
        if self.estimator == "gumbel" and self.gate_step <= nxt < self.prune_step and (nxt - self.start_step) % self.score_every == 0:
            self._refresh_importance()
        if nxt == self.prune_step and MASK in params:
            self._hard_prune(params, optimizers, strategy_state)

    @torch.no_grad()
    def _refresh_importance(self) -> Tensor:
        p = {k: v for k, v in self._params.items() if k != MASK}
        pixels = 0

        def counted():
            nonlocal pixels
            for cam, image in self.ctx.views():
                pixels += cam.width * cam.height
                yield cam, image

        stats = accumulate_stats(p, counted(), near_plane=self.ctx.near_plane, far_plane=self.ctx.far_plane)
        self.importance = lp_importance(self.score, stats)
        # sum over Gaussians of sum alpha T = sum over pixels of (1 - T_final): the renders' mean alpha
        self.coverage = min(max(float(stats.weight_sum.sum()) / max(pixels, 1), 1e-3), 1.0)
        self._gate_step = -1
        return self.importance

    @torch.no_grad()
    def _hard_prune(self, params, optimizers: dict, strategy_state: dict) -> None:
        m = params[MASK].detach()
        if self.estimator == "gumbel":
            # Deterministic rule: keep where the noise-free mask sigmoid(m S / tau) > 1/2, i.e. m S > 0.
            # The code's rule, a fresh sample gs(m) < 0.5, removes a Gaussian with probability > 1/2
            # exactly when m < 0, so this is its most likely outcome, without a coin flip on Gaussians
            # whose m is near 0 (the paper's "mask value 0" is the same set for a converged mask).
            # S = 0 means no training pixel sees the Gaussian: removing it changes no training view.
            s = self._refresh_importance() if self.importance is None or self.importance.shape != m.shape else self.importance
            keep = m * s > 0
        else:
            keep = torch.sigmoid(m) > STE_THRESHOLD  # the STE's own forward mask
        self.num_before = m.shape[0]
        self.num_removed = int((~keep).sum())
        del optimizers[MASK]
        del params[MASK]
        remove_gaussians(params, optimizers, strategy_state, ~keep)
        self.importance, self._gate_step, self._gate = None, -1, None

    # -- outputs -----------------------------------------------------------------------------
    def summary(self) -> dict:
        ratio = None if not self.num_before else self.num_removed / self.num_before
        return {
            "prune": self.name,
            "lp_score": self.score if self.estimator == "gumbel" else None,
            "mask_window": [self.start_step, self.prune_step],
            "mask_lr": self.mask_lr,
            "num_gaussians_before_prune": self.num_before,
            "learned_prune_ratio": ratio,
            "lp_coverage": self.coverage if self.estimator == "gumbel" else None,
            "prune_ratio": ratio,
        }

    def state_dict(self) -> dict:
        return {"num_before": self.num_before, "num_removed": self.num_removed, "generator": self.generator.get_state(),
                "coverage": self.coverage,
                "importance": None if self.importance is None else self.importance.cpu()}

    def load_state_dict(self, state: dict) -> None:
        if not state:
            return
        self.num_before, self.num_removed = state["num_before"], state["num_removed"]
        self.generator.set_state(state["generator"])
        self.coverage = state.get("coverage", 1.0)
        imp = state.get("importance")
        self.importance = None if imp is None else imp.to(self.ctx.device)
