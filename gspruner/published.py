"""Published Mip-NeRF 360 numbers to print beside ours, each labelled with its source table and hardware.

Copied from ../shared/docs/methods.md (§0 baselines, §1 LP-3DGS, §2 FastGS, §4.1 LightGaussian), which
names the paper table or repository file each number comes from. Times, FPS and memory depend on the GPU
named in `hardware`; the LPIPS conventions differ between papers (see `note`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

MIPNERF360_SCENES = ("bicycle", "flowers", "garden", "stump", "treehill", "room", "counter", "kitchen", "bonsai")
MIPNERF360_OUTDOOR = ("bicycle", "flowers", "garden", "stump", "treehill")  # --data-factor 4
MIPNERF360_INDOOR = ("room", "counter", "kitchen", "bonsai")  # --data-factor 2


@dataclass(frozen=True)
class PublishedResult:
    """One published row: averages over the scenes named in `scenes`."""

    method: str
    """The method as the source names it."""
    ours: str
    """Our benchmark method spec it is comparable to (strategy[+pruner])."""
    source: str
    """Paper table or repository file."""
    hardware: str
    """GPU the times / FPS / memory were measured on."""
    scenes: str
    """Which Mip-NeRF 360 scenes are averaged."""
    psnr: Optional[float] = None
    ssim: Optional[float] = None
    lpips: Optional[float] = None
    num_gaussians: Optional[float] = None
    prune_ratio: Optional[float] = None
    train_minutes: Optional[float] = None
    fps: Optional[float] = None
    storage_mb: Optional[float] = None
    peak_memory_gb: Optional[float] = None
    note: str = ""


MIPNERF360_PUBLISHED: tuple[PublishedResult, ...] = (
    # 3DGS, Kerbl et al. 2023, paper Table 1, Mip-NeRF 360 row at 30K iterations (methods.md §0.1)
    PublishedResult("3DGS (30K)", "default", "3DGS paper, Table 1", "A6000", "9 scenes",
                    psnr=27.21, ssim=0.815, lpips=0.214, train_minutes=41 + 33 / 60, fps=134, storage_mb=734),
    # gsplat, docs/source/tests/eval.rst main table (methods.md §0.2)
    PublishedResult("gsplat-30k (1 GPU)", "default", "gsplat docs/source/tests/eval.rst, main table", "TITAN RTX",
                    "7 scenes (no flowers, treehill)", psnr=28.95, ssim=0.870, lpips=0.135,
                    train_minutes=35 + 49 / 60, peak_memory_gb=5.7, note="LPIPS by torchmetrics"),
    PublishedResult("inria-30k", "default", "gsplat docs/source/tests/eval.rst, main table", "TITAN RTX",
                    "7 scenes (no flowers, treehill)", psnr=28.95, ssim=0.870, lpips=0.138,
                    train_minutes=37 + 13 / 60, peak_memory_gb=9.0, note="LPIPS by torchmetrics"),
    # gsplat, docs/source/tests/eval.rst feature ablation table (methods.md §0.2)
    PublishedResult("gsplat default", "default", "gsplat eval.rst, feature ablation", "A100",
                    "7 scenes (no flowers, treehill)", psnr=29.00, ssim=0.87, lpips=0.14, num_gaussians=3_237_318,
                    train_minutes=19.39, peak_memory_gb=5.62, note="LPIPS by torchmetrics"),
    PublishedResult("gsplat mcmc (1 M cap)", "mcmc", "gsplat eval.rst, feature ablation", "A100",
                    "7 scenes (no flowers, treehill)", psnr=29.18, ssim=0.87, lpips=0.14, num_gaussians=1_000_000,
                    train_minutes=15.42, peak_memory_gb=1.98, note="LPIPS by torchmetrics"),
    # LP-3DGS, Zhang et al. NeurIPS 2024, arXiv v1 Mip-NeRF 360 table (methods.md §1)
    PublishedResult("3DGS baseline", "default", "LP-3DGS paper (arXiv v1), Mip-NeRF 360 table", "2× A6000",
                    "9 scenes", psnr=27.48, ssim=0.8125, lpips=0.2215, prune_ratio=0.0),
    PublishedResult("LP-3DGS (RadSplat score)", "default+lp3dgs", "LP-3DGS paper (arXiv v1), Mip-NeRF 360 table",
                    "2× A6000", "9 scenes", psnr=27.47, ssim=0.8120, lpips=0.2269, prune_ratio=0.63,
                    note="learned prune ratio"),
    PublishedResult("LP-3DGS (Mini-Splatting score)", "default+lp3dgs",
                    "LP-3DGS paper (arXiv v1), Mip-NeRF 360 table", "2× A6000", "9 scenes",
                    psnr=27.12, ssim=0.8047, lpips=0.2391, prune_ratio=0.60, note="learned prune ratio"),
    # FastGS, Ren et al., arXiv 2511.04283, Table 1 (M360 columns); storage from supplementary Table 11;
    # peak GPU memory from the paper text (methods.md §2)
    PublishedResult("3DGS (FastGS re-run)", "default", "FastGS paper, Table 1 / Table 11", "RTX 4090", "9 scenes",
                    psnr=27.53, ssim=0.812, lpips=0.221, num_gaussians=2.63e6, train_minutes=20.93, fps=146,
                    storage_mb=652, peak_memory_gb=9.89),
    PublishedResult("FastGS", "fastgs", "FastGS paper, Table 1 / Table 11", "RTX 4090", "9 scenes",
                    psnr=27.56, ssim=0.797, lpips=0.261, num_gaussians=0.40e6, train_minutes=1.93, fps=579,
                    storage_mb=99, peak_memory_gb=5.21),
    PublishedResult("FastGS-Big", "fastgs", "FastGS paper, Table 1 / Table 11", "RTX 4090", "9 scenes",
                    psnr=27.93, ssim=0.820, lpips=0.216, num_gaussians=1.15e6, train_minutes=3.58, fps=469,
                    storage_mb=208),
    # LightGaussian, Fan et al. NeurIPS 2024, paper Table 1 (methods.md §4.1): the full pipeline
    PublishedResult("LightGaussian", "default+lightgaussian", "LightGaussian paper, Table 1",
                    "not stated in methods.md", "9 scenes", psnr=27.13, ssim=0.806, lpips=0.237, fps=237,
                    storage_mb=45, note="prune 66 % + SH distillation + vector quantisation"),
    PublishedResult("3DGS re-run", "default", "LightGaussian paper, Table 1", "not stated in methods.md", "9 scenes",
                    psnr=27.40, fps=144, storage_mb=782),
    # LightGaussian as quoted in RadSplat's Table 1 (methods.md §4.1; RadSplat FPS on an RTX 3090, §4.2)
    PublishedResult("LightGaussian (quoted by RadSplat)", "default+lightgaussian", "RadSplat paper, Table 1",
                    "RTX 3090", "9 scenes", psnr=26.99, ssim=0.799, lpips=0.25, num_gaussians=1.046e6, fps=209),
)
