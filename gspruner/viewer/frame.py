"""Rendering one viewer frame: RGB / depth / alpha / opacity colours at a capped resolution, and the
nerfview render function that never raises into nerfview."""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import InputError


CPU_MAX_RENDER_RES = 256  # default cap (pixels, long side) of a frame rendered on the CPU
RENDER_MODES = ("RGB", "depth", "alpha")


def default_max_render_res(device: torch.device, requested: Optional[int]) -> Optional[int]:
    """None = uncapped. Default: CPU_MAX_RENDER_RES on CPU, uncapped on CUDA; 0 = uncapped."""
    if requested is not None:
        if requested < 0:
            raise InputError(f"--max-render-res must be ≥ 0, got {requested}")
        return requested or None
    return CPU_MAX_RENDER_RES if device.type == "cpu" else None


@dataclass
class RenderOptions:
    """What the GUI controls; read by the render function at every frame."""

    background: tuple[float, float, float] = (0.0, 0.0, 0.0)
    sh_degree: int = 3  # max SH degree shown (further limited by the model's current degree)
    render_mode: str = "RGB"  # one of RENDER_MODES
    colour_by_opacity: bool = False
    max_render_res: Optional[int] = None  # None = uncapped
    near_plane: float = 0.01
    far_plane: float = 1e10
    time: float = 0.0  # 4D models: the time the scene is sliced at
    temporal_filter: Optional[object] = None  # 4D models: a TemporalFilter narrowing the Gaussians drawn, or None


_TURBO_LUT: Optional[torch.Tensor] = None


def turbo(x: torch.Tensor) -> torch.Tensor:
    """[...] values in [0, 1] -> [..., 3] turbo colours."""
    global _TURBO_LUT
    if _TURBO_LUT is None:
        import matplotlib

        _TURBO_LUT = torch.tensor(matplotlib.colormaps["turbo"](np.linspace(0, 1, 256))[:, :3], dtype=torch.float32)
    lut = _TURBO_LUT.to(x.device)
    idx = (torch.nan_to_num(x, 0.0).clamp(0, 1) * 255).round().long()
    return lut[idx]


def capped_size(width: int, height: int, max_res: Optional[int]) -> tuple[int, int]:
    """(W, H) scaled down (aspect kept) so that the long side is at most max_res."""
    width, height = max(int(width), 1), max(int(height), 1)
    if max_res and max(width, height) > max_res:
        s = max_res / max(width, height)
        width, height = max(int(round(width * s)), 1), max(int(round(height * s)), 1)
    return width, height


@torch.no_grad()
def render_frame(
    splats,
    c2w: np.ndarray,  # [4,4] camera-to-world, OpenCV axes (nerfview's CameraState.c2w)
    K: np.ndarray,  # [3,3] at (width, height)
    width: int,
    height: int,
    device,
    sh_degree: int,
    options: RenderOptions,
) -> tuple[np.ndarray, int]:
    """One frame: (uint8 [H, W, 3], number of Gaussians drawn). Raises on failure (the caller guards).

    A 4D model is sliced at options.time (only the Gaussians alive then, narrowed by options.temporal_filter)."""
    from ..model.gaussians4d import is_4d, rasterizer_inputs
    from ..render import rasterize

    device = torch.device(device)
    viewmat = torch.linalg.inv(torch.as_tensor(np.asarray(c2w, dtype=np.float64))).float()
    Ks = torch.as_tensor(np.asarray(K, dtype=np.float32))[None].to(device)
    viewmats = viewmat[None].to(device)
    splats = {k: v.detach() for k, v in splats.items()}
    flt = options.temporal_filter if is_4d(splats) else None
    candidates = None if flt is None else flt.active(float(options.time)).to(splats["means"].device)
    p = rasterizer_inputs(splats, sh_degree, float(options.time), candidates)
    p = {k: None if v is None else tuple(t.to(device) for t in v) if isinstance(v, tuple) else v.to(device)
         for k, v in p.items()}  # colors may be the pair (sh0, shN)
    kwargs = dict(near_plane=options.near_plane, far_plane=options.far_plane, covars=p["covars"])
    bg = torch.tensor([options.background], dtype=torch.float32, device=device)
    mode = options.render_mode
    if mode == "RGB" and options.colour_by_opacity:
        colors = turbo(p["opacities"])  # [N,3] post-activation colours
        out, alpha, info = rasterize(p["means"], p["quats"], p["scales"], p["opacities"], colors, viewmats, Ks,
                                     width, height, backgrounds=bg, **kwargs)
        img = out[0]
    elif mode == "RGB":
        out, alpha, info = rasterize(p["means"], p["quats"], p["scales"], p["opacities"], p["colors"], viewmats,
                                     Ks, width, height, sh_degree=sh_degree, backgrounds=bg, **kwargs)
        img = out[0]
    elif mode in ("depth", "alpha"):
        out, alpha, info = rasterize(p["means"], p["quats"], p["scales"], p["opacities"], p["colors"], viewmats,
                                     Ks, width, height, sh_degree=sh_degree, render_mode="ED", **kwargs)
        a = alpha[0]  # [H,W,1]
        if mode == "alpha":
            img = a.expand(-1, -1, 3)
        else:
            depth = out[0, ..., 0]
            valid = (a[..., 0] > 0.05) & torch.isfinite(depth)
            if valid.any():
                d = depth[valid]
                if d.numel() > 1_000_000:
                    d = d[torch.randint(0, d.numel(), (1_000_000,), device=d.device)]
                lo, hi = torch.quantile(d, 0.02), torch.quantile(d, 0.98)
                norm = (depth - lo) / (hi - lo).clamp_min(1e-6)
            else:
                norm = torch.zeros_like(depth)
            img = turbo(norm) * a + bg[0] * (1 - a)  # near = blue, far = red, over the background
    else:
        raise ValueError(f"render mode must be one of {RENDER_MODES}, got {mode!r}")
    radii = info["radii"]
    drawn = int((radii > 0).reshape(radii.shape[0], radii.shape[1], -1).all(-1).sum()) if radii is not None else -1
    frame = (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).cpu().numpy()
    return frame, drawn


def _interrupt_type():
    try:
        from nerfview._renderer import InterruptRenderException

        return InterruptRenderException
    except Exception:  # nerfview moved it: never swallow what looks like it
        return None


class SplatRenderer:
    """nerfview's `render_fn(camera_state, render_tab_state)`: renders the splats, never raises.

    `splats_getter()` gives the splats (a dict / ParameterDict; the live one while training),
    `sh_degree_getter()` the model's current SH degree. Failures are printed once (with the traceback),
    counted in `failures`, and answered with a blank (black) frame of the requested size.
    """

    def __init__(self, splats_getter: Callable[[], dict], sh_degree_getter: Callable[[], int], device,
                 options: Optional[RenderOptions] = None):
        self.splats_getter = splats_getter
        self.sh_degree_getter = sh_degree_getter
        self.device = torch.device(device)
        self.options = options if options is not None else RenderOptions()
        self.frames = 0  # frames rendered successfully
        self.failures = 0
        self.last_error: Optional[str] = None
        self.last_seconds: Optional[float] = None  # wall time of the last successful render
        self.last_size: Optional[tuple[int, int]] = None  # (W, H) of the last frame
        self.total_gaussians = 0
        self.drawn_gaussians = 0
        self.on_frame: Optional[Callable[["SplatRenderer"], None]] = None  # GUI hook, called after a frame
        self._interrupt = _interrupt_type()

    def frame_size(self, render_tab_state) -> tuple[int, int]:
        s = render_tab_state
        if getattr(s, "preview_render", False):
            w, h = s.render_width, s.render_height
        else:
            w, h = s.viewer_width, s.viewer_height
        return capped_size(w, h, self.options.max_render_res)

    def __call__(self, camera_state, render_tab_state) -> np.ndarray:
        size = (64, 48)
        try:
            size = self.frame_size(render_tab_state)
            W, H = size
            tic = time.perf_counter()
            splats = self.splats_getter()
            sh = max(0, min(int(self.options.sh_degree), int(self.sh_degree_getter())))
            frame, drawn = render_frame(splats, camera_state.c2w, camera_state.get_K((W, H)), W, H, self.device,
                                        sh, self.options)
            self.last_seconds = time.perf_counter() - tic
            self.last_size = (W, H)
            self.total_gaussians = int(splats["means"].shape[0])
            self.drawn_gaussians = drawn
            self.frames += 1
            if self.on_frame is not None:
                self.on_frame(self)
            return frame
        except BaseException as exc:  # noqa: BLE001 - nerfview kills the process on anything that escapes
            if self._interrupt is not None and isinstance(exc, self._interrupt):
                raise  # nerfview's own "camera moved, drop this frame"
            if not isinstance(exc, Exception):
                raise  # SystemExit / KeyboardInterrupt
            self.failures += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            if self.failures == 1:
                print("gspruner view: rendering failed; showing blank frames (printed once):", file=sys.stderr)
                traceback.print_exc(file=sys.stderr)
            return np.zeros((size[1], size[0], 3), dtype=np.uint8)


# -- server ----------------------------------------------------------------------------------------------
