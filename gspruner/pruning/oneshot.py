"""Pruning by an importance score: one-shot (ratio or threshold mode) and prune-then-fine-tune rounds."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar, Literal, Optional

import torch
from torch import Tensor

from ..errors import InputError
from ..evaluation import render_view
from ..metrics import psnr
from .base import Pruner, PruneContext, PrunerConfig, check_fractions, check_ratio, remove_gaussians
from .importance import SCORES, compute_importance

MAX_PASSES = 20  # scoring passes per prune (--prune.passes)


def check_passes(passes: int) -> None:
    """Scoring passes per prune: 1 (one ranking) to MAX_PASSES."""
    if not 1 <= passes <= MAX_PASSES:
        raise InputError(f"--prune.passes must be in 1..{MAX_PASSES}, got {passes}")


def keep_by_ratio(importance: Tensor, ratio: float) -> Tensor:
    """keep [N] bool: drop the `ratio` fraction with the lowest importance (ties broken by index)."""
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"prune ratio must be in (0, 1), got {ratio}")
    n = importance.shape[0]
    n_remove = int(round(ratio * n))
    order = torch.argsort(importance, stable=True)  # ascending
    keep = torch.ones(n, dtype=torch.bool, device=importance.device)
    keep[order[:n_remove]] = False
    return keep


def keep_by_threshold(importance: Tensor, threshold: float) -> Tensor:
    """keep [N] bool: RadSplat's rule, prune where h_i < t_prune (Niemeyer et al. 2025, Sec. 3.3)."""
    return importance >= threshold


@torch.no_grad()
def views_psnr(params, ctx: PruneContext) -> float:
    """Mean PSNR [dB] of the current model's renders of every training view."""
    values = [psnr(render_view(params, cam, ctx.device, ctx.sh_degree, ctx.background)[0].clamp(0, 1), image[..., :3])
              for cam, image in ctx.views()]
    return sum(values) / len(values)


class ScorePruner(Pruner):
    """One-shot pruning by an importance score at fixed fractions of training (ratio or threshold mode).

    Each prune runs after the strategy has stopped adding Gaussians (otherwise densification refills
    what was removed): step = max(fraction × max_steps, densify_stop_step).

    With `stop_db`, every prune is preceded by a render of the training views, and the prunes stop for good at
    the first whose mean PSNR is more than `stop_db` below the best measured before it: the prunes so far cost
    the views more than the training since has won back.

    With `passes` > 1 (ratio mode), one prune removes its `ratio` in that many equal steps, the score recomputed
    on the survivors before each and nothing trained in between: two Gaussians that stand in for each other
    each score low alone, and a single pass would remove both.
    """

    def __init__(self, score: str, ctx: PruneContext, ratio: float | None = None, threshold: float | None = None,
                 at_fractions: tuple[float, ...] = (2 / 3,), name: str | None = None, means_lr_boost: float = 1.0,
                 stop_db: float | None = None, passes: int = 1):
        if (ratio is None) == (threshold is None):
            raise ValueError("give exactly one of ratio and threshold")
        if passes < 1 or (passes > 1 and ratio is None):
            raise ValueError("passes must be >= 1, and > 1 only with a ratio")
        self.score, self.name, self.ctx, self.ratio, self.threshold = score, name or score, ctx, ratio, threshold
        self.passes = passes
        self.means_lr_boost = means_lr_boost  # the means' learning rate x this after each prune
        last = max(ctx.max_steps - 1, 0)
        self.steps = sorted({min(max(round(f * ctx.max_steps), ctx.densify_stop_step), last) for f in at_fractions})
        self.num_before: int | None = None
        self.num_removed = 0
        self.stop_db = stop_db
        self.views_psnr: list[float] = []  # the training views' mean PSNR before each prune (with stop_db)
        self.stopped_at: int | None = None

    def after_step(self, step, params, optimizers, strategy_state) -> None:
        if step not in self.steps or self.stopped_at is not None:
            return
        if self.stop_db is not None:
            now = views_psnr(params, self.ctx)
            best = max(self.views_psnr, default=-math.inf)
            self.views_psnr.append(now)
            if now < best - self.stop_db:
                self.stopped_at = step
                return
        keep = self.keep_mask(params)
        n = keep.shape[0]
        if self.num_before is None:
            self.num_before = n
        self.num_removed += int((~keep).sum())
        remove_gaussians(params, optimizers, strategy_state, ~keep)
        if self.means_lr_boost != 1.0 and "means" in optimizers:  # the schedule decays it on from the new value
            for group in optimizers["means"].param_groups:
                group["lr"] *= self.means_lr_boost

    def importance(self, params) -> Tensor:
        return compute_importance(self.score, params, self.ctx.views(), self.ctx.near_plane, self.ctx.far_plane,
                                  self.ctx.background)

    def keep_mask(self, params) -> Tensor:  # not under no_grad: PUP's Fisher takes Jacobians by autograd
        """keep [N] bool of one prune: the score at or above the threshold, or all but the lowest `ratio`, removed
        in `passes` steps that each leave n (1 - ratio)^(k / passes) (k = 1 .. passes), scored on the survivors."""
        if self.threshold is not None:
            return keep_by_threshold(self.importance(params), self.threshold)
        if self.passes == 1:
            return keep_by_ratio(self.importance(params), self.ratio)
        n = params["means"].shape[0]
        keep = torch.ones(n, dtype=torch.bool, device=params["means"].device)
        for k in range(1, self.passes + 1):
            survivors = torch.nonzero(keep).flatten()  # [M] ids into the model
            subset = params if k == 1 else {name: p.detach()[survivors] for name, p in params.items()}
            n_remove = round(n * (1.0 - (1.0 - self.ratio) ** (k / self.passes))) - (n - survivors.numel())
            order = torch.argsort(self.importance(subset), stable=True)  # ascending; ties by id, as keep_by_ratio
            keep[survivors[order[:max(n_remove, 0)]]] = False
        return keep

    def summary(self) -> dict:
        return {
            "prune": self.name,
            "prune_mode": "ratio" if self.ratio is not None else "threshold",
            "prune_steps": self.steps,
            "num_gaussians_before_prune": self.num_before,
            "prune_ratio": None if not self.num_before else self.num_removed / self.num_before,
            "means_lr_boost": self.means_lr_boost,
            **({"score_passes": self.passes} if self.passes > 1 else {}),
            **({"stop_db": self.stop_db, "views_psnr_before_prunes": self.views_psnr, "prunes_stopped_at": self.stopped_at}
               if self.stop_db is not None else {}),
        }

    def state_dict(self) -> dict:
        return {"num_before": self.num_before, "num_removed": self.num_removed, "views_psnr": self.views_psnr,
                "stopped_at": self.stopped_at}

    def load_state_dict(self, state: dict) -> None:
        if state:  # empty: continuing an unpruned run's checkpoint
            self.num_before, self.num_removed = state["num_before"], state["num_removed"]
            self.views_psnr, self.stopped_at = state.get("views_psnr", []), state.get("stopped_at")


DEFAULT_RATIO = 0.66  # LightGaussian's prune_percent


@dataclass
class ScorePrunerConfig(PrunerConfig):
    """One-shot pruning by an importance score, after densification stops, then training goes on."""

    score: ClassVar[str] = ""  # the importance score (pruning/importance.py)
    post_hoc: ClassVar[bool] = True  # a score prunes a trained checkpoint as well (`gspruner prune score:NAME`)
    threshold_default: ClassVar[Optional[float]] = None  # a score with a threshold mode prunes by it by default
    threshold_at: ClassVar[tuple[float, ...]] = (2 / 3,)

    ratio: Optional[float] = None
    """Fraction of Gaussians to remove, in (0, 1) (default 0.66, LightGaussian's prune_percent; RadSplat without it prunes by --prune.threshold)."""
    threshold: Optional[float] = None
    """Threshold mode instead: remove the Gaussians whose score is below this (RadSplat's t_prune; default 0.01 for radsplat)."""
    at: Optional[tuple[float, ...]] = None
    """When to prune, as fractions of --max-steps (default 2/3, LP-3DGS's 20k of 30k; RadSplat's threshold mode 16/30 and 24/30). Never before densification stops."""
    passes: int = 1
    """Ratio mode: remove the ratio in this many equal steps per prune, the score recomputed on the survivors before each, no training between (README: one-shot removal, 3 passes)."""

    def __post_init__(self) -> None:
        if self.ratio is not None and self.threshold is not None:
            raise InputError("--prune.ratio and --prune.threshold exclude each other")
        check_passes(self.passes)
        if self.ratio is None and self.threshold is None:
            if self.threshold_default is not None:
                self.threshold = self.threshold_default
            else:
                self.ratio = DEFAULT_RATIO
        check_ratio(self.ratio)
        if self.passes > 1 and self.threshold is not None:
            raise InputError("--prune.passes takes a ratio (--prune.ratio), not a threshold")
        if self.at is None:
            self.at = self.threshold_at if self.threshold is not None else (2 / 3,)
        check_fractions(self.at)

    def setup(self, ctx: PruneContext, seed: int = 0) -> Pruner:
        return ScorePruner(self.score, ctx, ratio=self.ratio, threshold=self.threshold, at_fractions=self.at,
                           passes=self.passes)

    def at_start(self) -> "ScorePrunerConfig":
        return replace(self, at=(0.0,))


@dataclass
class LightGaussianConfig(ScorePrunerConfig):
    """LightGaussian (Fan et al. 2024): Σ over hit pixels of opacity·T, × the volume factor; removes the lowest --prune.ratio."""

    score: ClassVar[str] = "lightgaussian"


@dataclass
class RadSplatConfig(ScorePrunerConfig):
    """RadSplat (Niemeyer et al. 2025): max over views and pixels of α·T; by default removes those below 0.01 at 16k and 24k of 30k steps."""

    score: ClassVar[str] = "radsplat"
    threshold_default: ClassVar[Optional[float]] = 0.01  # Sec. 3.3
    threshold_at: ClassVar[tuple[float, ...]] = (16 / 30, 24 / 30)


@dataclass
class MiniSplattingConfig(ScorePrunerConfig):
    """Mini-Splatting (Fang & Wang 2024): Σ α·T, 0 for Gaussians never a pixel's largest contributor."""

    score: ClassVar[str] = "minisplatting"


@dataclass
class MiniSplattingAreaConfig(ScorePrunerConfig):
    """Mini-Splatting's score per hit pixel (its outdoor variant)."""

    score: ClassVar[str] = "minisplatting-area"


@dataclass
class PUPConfig(ScorePrunerConfig):
    """PUP-3DGS (Hanson et al. 2025): log-determinant of each Gaussian's Fisher information over its mean and scale (4x4 patches, all training views); removes the lowest --prune.ratio. The paper's rounds (80 %, fine-tune, 50 %): --prune.at twice with --prune.ratio 0.68 (90 % in all)."""

    score: ClassVar[str] = "pup"


@dataclass
class PUPScaleConfig(ScorePrunerConfig):
    """PUP-3DGS with each mean measured in units of the Gaussian's own scale: log|F| + 2 Σ log s (ours; better than PUP on the demo and fox, worse on chair: see the README)."""

    score: ClassVar[str] = "pup-scale"


@dataclass
class RemovalConfig(ScorePrunerConfig):
    """The most any training view's L1 loss rises when the Gaussian alone is removed, exact up to the T < 1e-4 stop (ours; pruning/removal.py); removes the lowest --prune.ratio."""

    score: ClassVar[str] = "removal"


@dataclass
class RemovalSumConfig(ScorePrunerConfig):
    """The removal score summed over the training views instead of their maximum (ours; pruning/removal.py)."""

    score: ClassVar[str] = "removal-sum"


@dataclass
class OpacityConfig(ScorePrunerConfig):
    """The baseline: opacity as the importance."""

    score: ClassVar[str] = "opacity"


def per_round_ratio(total: float, rounds: int) -> float:
    """The fraction each of `rounds` equal prunes removes so that 1 - (1 - r)^rounds = total."""
    return 1.0 - (1.0 - total) ** (1.0 / rounds)


def round_fractions(start: float, end: float, rounds: int) -> tuple[float, ...]:
    """`rounds` prune times evenly spaced over [start, end] (fractions of the run)."""
    if rounds == 1:
        return (start,)
    return tuple(start + (end - start) * k / (rounds - 1) for k in range(rounds))


@dataclass
class RoundsConfig(PrunerConfig):
    """Prune-then-fine-tune rounds (PUP-3DGS's schedule, Hanson et al. 2025, generalised): --prune.ratio of the Gaussians removed in --prune.rounds equal prunes by --prune.score, evenly spaced from the end of densification to --prune.end, training in between."""

    post_hoc: ClassVar[bool] = True

    score: Literal[SCORES] = "removal"
    """The importance score each round ranks by (README: Prune-then-fine-tune rounds; removal held best over four scenes)."""
    ratio: float = 0.85
    """Fraction of the Gaussians removed in all, in (0, 1); each round removes 1 - (1 - ratio)^(1/rounds) of those left."""
    rounds: int = 3
    """Number of prunes (PUP-3DGS: 2, 80 % then 50 %)."""
    start: float = 0.5
    """First prune, as a fraction of --max-steps (never before densification stops: the strategy would refill it)."""
    end: float = 2 / 3
    """Last prune, as a fraction of --max-steps (default: the one-shot prune's 2/3, LP-3DGS's 20k of 30k); the rest of the run fine-tunes the pruned model."""
    stop_db: Optional[float] = None
    """Before each prune, render the training views; stop pruning for good once their mean PSNR is more than this many dB below its best before (--prune.ratio is then the most removed; default: off)."""
    means_lr_boost: float = 2.0
    """After each prune the means' learning rate is multiplied by this (then decays on its schedule): the survivors move into the gaps the prune left (README: +0.1 to +0.25 dB on four scenes; 1 = off)."""
    passes: int = 1
    """Each round removes its share in this many steps, the score recomputed on the survivors before each (see the one-shot scores' --prune.passes)."""

    def __post_init__(self) -> None:
        check_ratio(self.ratio)
        if self.rounds < 1:
            raise InputError(f"--prune.rounds must be at least 1, got {self.rounds}")
        check_fractions((self.start, self.end), "--prune.start/--prune.end")
        if self.end < self.start:
            raise InputError(f"--prune.end ({self.end}) must not come before --prune.start ({self.start})")
        if not 1.0 <= self.means_lr_boost <= 10.0:
            raise InputError(f"--prune.means-lr-boost must be in [1, 10], got {self.means_lr_boost}")
        if self.stop_db is not None and not 0.0 <= self.stop_db <= 10.0:
            raise InputError(f"--prune.stop-db must be in [0, 10] dB, got {self.stop_db}")
        check_passes(self.passes)

    def setup(self, ctx: PruneContext, seed: int = 0) -> Pruner:
        return ScorePruner(self.score, ctx, ratio=per_round_ratio(self.ratio, self.rounds),
                           at_fractions=round_fractions(self.start, self.end, self.rounds), name=f"rounds:{self.score}",
                           means_lr_boost=self.means_lr_boost, stop_db=self.stop_db, passes=self.passes)

    def at_start(self) -> "RoundsConfig":
        """`gspruner prune`: the first round at the fine-tune's first step, the last at 0.6 of it."""
        return replace(self, start=0.0, end=min(self.end, 0.6))
