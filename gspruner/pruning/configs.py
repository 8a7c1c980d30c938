"""The registered pruners' configs: each method's options as a dataclass, checked in `__post_init__`, whose
`setup` builds its `Pruner` (oneshot.py, lp3dgs.py, spatiotemporal.py), importing it only then: the command
line (`--help` included) reads these without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal, Optional

from ..errors import InputError
from .base import Pruner, PruneContext, PrunerConfig, check_fractions, check_ratio

# the importance scores pruning/importance.py computes
SCORES: tuple[str, ...] = ("lightgaussian", "radsplat", "minisplatting", "minisplatting-area", "opacity", "pup",
                           "pup-scale", "removal", "removal-sum")
Estimator = Literal["gumbel", "ste"]  # a learned mask's: LP-3DGS's Gumbel-sigmoid, Compact-3DGS's straight-through
DEFAULT_RATIO_4D = 0.8  # 4DGS-1K: 80 % on N3V (85 % on D-NeRF)
# visible at a key-frame: blends into some pixel of its views with alpha T above this. Ours (the paper does not say),
# the best of 0, 1/255, 0.03, 0.05 on dnerf_lego: 2.6x fewer Gaussians per frame than "any pixel" (0), 18.95 vs 18.73 dB
DEFAULT_FILTER_MIN_WEIGHT = 0.05


# ------------------------------------------------------------------------------------------------ one-shot scores

MAX_PASSES = 20  # scoring passes per prune (--prune.passes)


def check_passes(passes: int) -> None:
    """Scoring passes per prune: 1 (one ranking) to MAX_PASSES."""
    if not 1 <= passes <= MAX_PASSES:
        raise InputError(f"--prune.passes must be in 1..{MAX_PASSES}, got {passes}")


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
    """Ratio mode: remove the ratio in this many equal steps per prune, the score recomputed on the survivors before each, no training between (docs/pruning.md)."""

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
        from .oneshot import ScorePruner

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
    """PUP-3DGS with each mean measured in units of the Gaussian's own scale: log|F| + 2 Σ log s (ours; better than PUP on the demo and fox, worse on chair: see docs/notes/readme-2026-12.md, Pruning)."""

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
    """The importance score each round ranks by (docs/pruning.md; removal held best over four scenes)."""
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
    """After each prune the means' learning rate is multiplied by this (then decays on its schedule): the survivors move into the gaps the prune left (+0.1 to +0.25 dB on four scenes, docs/notes/readme-2026-12.md; 1 = off)."""
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
        from .oneshot import ScorePruner

        return ScorePruner(self.score, ctx, ratio=per_round_ratio(self.ratio, self.rounds),
                           at_fractions=round_fractions(self.start, self.end, self.rounds), name=f"rounds:{self.score}",
                           means_lr_boost=self.means_lr_boost, stop_db=self.stop_db, passes=self.passes)

    def at_start(self) -> "RoundsConfig":
        """`gspruner prune`: the first round at the fine-tune's first step, the last at 0.6 of it."""
        return replace(self, start=0.0, end=min(self.end, 0.6))


# ------------------------------------------------------------------------------------------------ learned masks

@dataclass
class MaskPrunerConfig(PrunerConfig):
    """A learned mask trained for a window, then one hard prune at `at` (the ratio is learned, not an option)."""

    estimator: ClassVar[Estimator] = "gumbel"

    at: Optional[tuple[float, ...]] = None
    """The hard prune, as a fraction of --max-steps (default 2/3: LP-3DGS's 20k of 30k); never before densification stops plus the mask window."""

    def __post_init__(self) -> None:
        check_fractions(self.at)

    def mask_score(self) -> str:
        """The importance score the mask multiplies (LP-3DGS); the STE mask uses none."""
        return "radsplat"

    def setup(self, ctx: PruneContext, seed: int = 0) -> Pruner:
        from .lp3dgs import MaskPruner

        kw = {} if self.at is None else {"prune_fraction": self.at[0]}
        return MaskPruner(ctx, self.estimator, score=self.mask_score(), seed=seed, **kw)


@dataclass
class LP3DGSConfig(MaskPrunerConfig):
    """LP-3DGS (Zhang et al. 2024): a Gumbel-sigmoid mask gs(m·S) on an importance score S, trained for a short window under a sparsity loss, then one hard prune; the ratio is learned."""

    score: Literal["radsplat", "minisplatting"] = "radsplat"
    """The importance score S in the mask gs(m·S): radsplat (max α·T) or minisplatting (Σ α·T), over all training views."""

    def mask_score(self) -> str:
        return self.score


@dataclass
class STEMaskConfig(MaskPrunerConfig):
    """Compact-3DGS's straight-through mask (Lee et al. 2024) on opacity and scale, trained from the end of densification, then one hard prune; the ratio is learned."""

    estimator: ClassVar[Estimator] = "ste"


# ------------------------------------------------------------------------------------------------ 4D

@dataclass
class SpatioTemporalConfig(PrunerConfig):
    """4DGS-1K (Yuan et al. 2025), 4D models only: one prune of the lowest --prune.ratio by the spatio-temporal variation score after densification stops, then the key-frame temporal filter."""

    models: ClassVar[tuple[str, ...]] = ("4d",)
    post_hoc: ClassVar[bool] = True

    ratio: float = DEFAULT_RATIO_4D
    """Fraction of Gaussians to remove, in (0, 1) (4DGS-1K: 0.8 on N3V, 0.85 on D-NeRF)."""
    at: tuple[float, ...] = (2 / 3,)
    """When to prune, as a fraction of --max-steps (never before densification stops)."""
    temporal_filter: bool = True
    """After the prune, each frame rasterizes only the Gaussians visible at its two nearest key-frames (4DGS-1K), during the fine-tune and at evaluation."""
    filter_views: Literal["auto", "timestamp", "all"] = "auto"
    """Temporal filter: a key-frame's mask is the union over the training views at its time (timestamp, 4DGS-1K: all cameras of a multi-view video frame, the single camera of a monocular D-NeRF frame) or over every training camera rendered at its time (all: the Gaussians novel views of a monocular scene need); auto: all when each training time has one camera (monocular), else timestamp."""
    keyframe_every: Optional[int] = None
    """Temporal filter: a key-frame every this many training frames (default: 6 key-frames over the sequence, 4DGS-1K's D-NeRF setting; it uses 20 on Neural 3D Video)."""
    filter_min_weight: float = DEFAULT_FILTER_MIN_WEIGHT
    """Temporal filter: a Gaussian is visible at a key-frame when its largest blending weight α·T on a pixel of those views exceeds this (0: any pixel it reaches). On dnerf_lego 0.05 rasterizes 2.6× fewer Gaussians per frame than 0, at 0.2 dB higher PSNR after the fine-tune (docs/notes/readme-2026-12.md)."""

    def __post_init__(self) -> None:
        check_ratio(self.ratio)
        check_fractions(self.at)
        if self.keyframe_every is not None and self.keyframe_every < 1:
            raise InputError(f"--prune.keyframe-every must be ≥ 1 (got {self.keyframe_every})")
        if not 0.0 <= self.filter_min_weight < 1.0:
            raise InputError(f"--prune.filter-min-weight must be in [0, 1) (got {self.filter_min_weight})")

    def setup(self, ctx: PruneContext, seed: int = 0) -> Pruner:
        from .spatiotemporal import SpatioTemporalPruner

        return SpatioTemporalPruner(ctx, ctx.frame_times, ratio=self.ratio, at_fraction=self.at[0],
                                    use_filter=self.temporal_filter, keyframe_every=self.keyframe_every,
                                    filter_views=self.filter_views, filter_min_weight=self.filter_min_weight)

    def at_start(self) -> "SpatioTemporalConfig":
        return replace(self, at=(0.0,))
