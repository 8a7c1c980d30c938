"""Interactive web viewer: nerfview 0.1.3 on a viser server, rendering through `gspruner.render.rasterize`.

Two uses:
- `gspruner view --ckpt RUN/ckpt/last.pt` (or `--ply scene.ply`): `run_view(ViewConfig)` serves a trained
  scene until Ctrl-C. `start_view(cfg)` does the same without blocking and returns a `ViewHandle`
  (`.url`, `.port`, `.stop()`), for tests and embedding.
- During training: `TrainingViewer` (nerfview's "training" mode: Pause/Resume, Train Util). The trainer calls
      viewer.wait_if_paused(); with viewer.lock: train_step(...); viewer.after_step(step, H * W)
  and `viewer.complete()` at the end.

Cost when nobody is connected: nothing renders. nerfview creates one render thread per client when the
client connects and renders only on that client's camera events (plus the periodic re-renders that
`update` asks for while a client is connected); `update` returns at once when no client exists. The lock is
nerfview's VIEWER_LOCK, held by the trainer around a step and by the render thread around a render.

Robustness:
- The render function never raises into nerfview (an exception there ends the whole process with
  `os._exit(1)`, and a TypeError makes it switch to a legacy call signature for good): failures are printed
  once, counted, and answered with a blank frame. nerfview's own interrupt (raised from its line tracer when
  the camera moves mid-render) is passed through, as it must be.
- On CPU every frame is capped at `max_render_res` pixels on its long side (default 256; the viser client
  stretches the frame to the canvas).
- The server binds 127.0.0.1 unless told otherwise; a port in use is an `InputError` (viser would silently
  move to the next free port); port 0 takes a free port, and the URL is printed.

GUI (panel "gspruner", besides nerfview's "Rendering" folder): background colour, max SH degree, render mode
(RGB / depth / alpha), "Colour by opacity", and the Gaussian count (total and drawn in the last frame).
"Colour by opacity" is the stand-in for colouring by per-Gaussian importance: checkpoints do not store
importance scores yet, so the opacity (the simplest pruning score) is shown on a turbo colour map instead.
"""

from __future__ import annotations

import math
import signal
import socket
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Optional

import numpy as np
import torch

from .device import resolve_device
from .errors import InputError

CPU_MAX_RENDER_RES = 256  # default cap (pixels, long side) of a frame rendered on the CPU
RENDER_MODES = ("RGB", "depth", "alpha")
OBJECT_KINDS = ("blender", "dnerf")  # checkpoints without a recorded background: these kinds were rendered over it
SPLAT_KEYS = ("means", "scales", "quats", "opacities", "sh0", "shN")
SPLAT_KEYS_4D = ("times", "scales_t", "quats_r")  # a 4D model (dynamic scene) has these as well


@dataclass
class ViewConfig:
    """Serve a trained scene in the browser (viser + nerfview): orbit the camera, switch RGB / depth / alpha, background and SH degree; a 4D checkpoint (dynamic scene) gets a time slider."""

    ckpt: Optional[Path] = None
    """A gspruner checkpoint (RESULT_DIR/ckpt/last.pt), 3D or 4D. Give exactly one of --ckpt and --ply."""
    ply: Optional[Path] = None
    """A splat file: INRIA 3DGS .ply; also .compressed.ply, .spz and .splat where gspruner.export.formats is present. Give exactly one of --ckpt and --ply."""
    host: str = "127.0.0.1"
    """Interface to bind. The default serves this machine only; 0.0.0.0 serves every interface (anyone on the network can connect)."""
    port: int = 8080
    """TCP port for the page and its websocket; 0 picks a free port. A port already in use is an error."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where to render: auto = CUDA (gsplat kernels) when available, else our CPU rasterizer."""
    max_render_res: Optional[int] = None
    """Cap on the long side of a rendered frame, in pixels (default: 256 on CPU, uncapped on CUDA; 0 = uncapped)."""


# -- loading ---------------------------------------------------------------------------------------------


def read_splat_file(path: Path) -> dict:
    """Splat dict (gsplat naming, CPU tensors) from a splat file; the one place that picks the reader."""
    path = Path(path)
    try:  # another module adds .compressed.ply / .spz / .splat; use it when it is there
        from .export.formats import read_splats  # type: ignore[import-not-found]
    except ImportError:
        read_splats = None
    if read_splats is not None:
        return read_splats(path)
    from .export.ply import read_ply

    return read_ply(path)


def sh_degree_of(splats: dict) -> int:
    """SH degree implied by the shape of shN [N, (d+1)^2 - 1, 3]."""
    k = int(splats["shN"].shape[1]) + 1 if splats["shN"].dim() == 3 else 1
    return max(int(round(math.sqrt(k))) - 1, 0)


def check_splats(splats: dict, source: Path) -> dict:
    keys = SPLAT_KEYS + (SPLAT_KEYS_4D if "times" in splats else ())
    missing = [k for k in keys if k not in splats]
    if missing:
        raise InputError(f"{source}: splats lack {', '.join(missing)}")
    counts = {k: int(splats[k].shape[0]) for k in keys}
    if len(set(counts.values())) != 1:
        raise InputError(f"{source}: inconsistent Gaussian counts across parameters {counts}")
    if counts["means"] == 0:
        raise InputError(f"{source}: holds no Gaussians")
    return {k: splats[k].detach().float().contiguous() for k in keys}


@dataclass
class LoadedScene:
    splats: dict  # CPU float32 tensors
    sh_degree: int
    background: tuple[float, float, float]
    scene_scale: Optional[float]  # max camera distance from the camera centroid, when the checkpoint says
    source: Path
    time_range: Optional[tuple[float, float]] = None  # a 4D model: the frame times it was trained on
    temporal_filter: Optional[object] = None  # a 4D model pruned with prune:spatiotemporal: its key-frame filter


def load_view_input(cfg: ViewConfig) -> LoadedScene:
    """Read --ckpt or --ply (exactly one); every bad input is an InputError."""
    if (cfg.ckpt is None) == (cfg.ply is None):
        raise InputError("give exactly one of --ckpt and --ply")
    background = (0.0, 0.0, 0.0)
    scene_scale = None
    if cfg.ckpt is not None:
        from .checkpoint import load_checkpoint

        ckpt = load_checkpoint(cfg.ckpt)
        if not isinstance(ckpt["splats"], dict):
            raise InputError(f"{cfg.ckpt}: 'splats' is not a dict of tensors")
        splats = check_splats(ckpt["splats"], cfg.ckpt)
        scene = ckpt.get("scene") or {}
        trained = ckpt.get("config") or {}
        if "background" in scene:  # the scene's evaluation background (None: opaque images)
            background = tuple(float(c) for c in scene["background"]) if scene["background"] is not None else background
        elif scene.get("kind") in OBJECT_KINDS and trained.get("background") is not None:  # older checkpoints
            background = tuple(float(c) for c in trained["background"])
        scene_scale = scene.get("scene_scale")
        source = Path(cfg.ckpt)
        if "times" in splats:  # 4D: the training frames' time span (checkpoints before it was stored: [0, 1])
            from .checkpoint import temporal_filter_of

            time_range = tuple(float(t) for t in scene.get("time_range") or (0.0, 1.0))
            return LoadedScene(splats, sh_degree_of(splats), background, scene_scale, source, time_range,
                               temporal_filter_of(ckpt, "cpu"))
    else:
        splats = check_splats(read_splat_file(cfg.ply), cfg.ply)
        source = Path(cfg.ply)
    return LoadedScene(splats, sh_degree_of(splats), background, scene_scale, source)


def default_max_render_res(device: torch.device, requested: Optional[int]) -> Optional[int]:
    """None = uncapped. Default: CPU_MAX_RENDER_RES on CPU, uncapped on CUDA; 0 = uncapped."""
    if requested is not None:
        if requested < 0:
            raise InputError(f"--max-render-res must be ≥ 0, got {requested}")
        return requested or None
    return CPU_MAX_RENDER_RES if device.type == "cpu" else None


def initial_view(splats: dict, scene_scale: Optional[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A first camera (position, look_at, up) that sees the scene, world +z up.

    gspruner's normalized worlds (COLMAP, instant-ngp) are centred on the cameras' focus point with +z up
    and the cameras about one unit away, so a checkpoint that records its scene scale is viewed from
    ~scene_scale at 25 degrees elevation around the origin. A bare splat file is viewed around the median
    of its opaque Gaussians, from 2.5x their median distance to it.
    """
    means = splats["means"].float()
    if scene_scale is not None and math.isfinite(scene_scale) and scene_scale > 0:
        look_at = np.zeros(3)
        distance = float(scene_scale)
    else:
        opaque = means[torch.sigmoid(splats["opacities"].float()) > 0.2]
        pts = opaque if opaque.shape[0] >= 16 else means
        pts = pts[torch.isfinite(pts).all(-1)]
        if pts.shape[0] == 0:
            return np.array([3.0, 3.0, 3.0]), np.zeros(3), np.array([0.0, 0.0, 1.0])
        if pts.shape[0] > 200_000:
            pts = pts[torch.randperm(pts.shape[0], generator=torch.Generator().manual_seed(0))[:200_000]]
        center = pts.median(dim=0).values
        look_at = center.double().numpy()
        distance = 2.5 * float((pts - center).norm(dim=-1).median())
        if not math.isfinite(distance) or distance <= 0:
            distance = 3.0
    az, el = math.radians(-60.0), math.radians(25.0)
    direction = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    return look_at + distance * direction, look_at, np.array([0.0, 0.0, 1.0])


# -- rendering -------------------------------------------------------------------------------------------


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
    from .model.gaussians4d import is_4d, rasterizer_inputs
    from .render import rasterize

    device = torch.device(device)
    viewmat = torch.linalg.inv(torch.as_tensor(np.asarray(c2w, dtype=np.float64))).float()
    Ks = torch.as_tensor(np.asarray(K, dtype=np.float32))[None].to(device)
    viewmats = viewmat[None].to(device)
    splats = {k: v.detach() for k, v in splats.items()}
    flt = options.temporal_filter if is_4d(splats) else None
    candidates = None if flt is None else flt.active(float(options.time)).to(splats["means"].device)
    p = rasterizer_inputs(splats, sh_degree, float(options.time), candidates)
    p = {k: None if v is None else v.to(device) for k, v in p.items()}
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


def _check_port_free(host: str, port: int) -> None:
    """Bind every address of host:port once (as asyncio will, with SO_REUSEADDR); InputError if any fails."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise InputError(f"--host {host}: not a local address ({exc.strerror})") from None
    for family, kind, proto, _, addr in infos:
        with socket.socket(family, kind, proto) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(addr)
            except OSError as exc:
                if port:
                    raise InputError(f"port {port} on {host} is already in use (or not available: {exc.strerror});"
                                     f" pick another with --port, or --port 0 for a free one") from None
                raise InputError(f"--host {host}: cannot bind ({exc.strerror})") from None


def start_server(host: str, port: int):
    """A viser server on exactly host:port (port 0: a free port); InputError when that can't be had."""
    import os

    import viser

    if not 0 <= port <= 65535:
        raise InputError(f"--port must be in 0..65535, got {port}")
    port = int(os.environ.get("_VISER_PORT_OVERRIDE", port))  # viser's own override, honoured as a request
    _check_port_free(host, port)
    server = viser.ViserServer(host=host, port=port, verbose=False)
    if port and server.get_port() != port:  # taken between our check and viser's bind: viser moved on
        server.stop()
        raise InputError(f"port {port} on {host} is already in use; pick another with --port, or --port 0")
    return server


def server_url(server) -> str:
    host = server.get_host()
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    return f"http://{shown}:{server.get_port()}"


class _Controls:
    """The gspruner GUI folder: background, SH degree, render mode, colour by opacity, Gaussian counts."""

    def __init__(self, server, viewer, renderer: SplatRenderer, max_sh_degree: int,
                 time_range: Optional[tuple[float, float]] = None):
        self.viewer = viewer
        self.renderer = renderer
        opts = renderer.options
        gui = server.gui
        with gui.add_folder("gspruner", order=-100.0):  # above nerfview's folders
            self.total = gui.add_number("Gaussians", initial_value=0, disabled=True,
                                        hint="Gaussians in the model (after pruning, for a pruned model).")
            self.drawn = gui.add_number("Drawn", initial_value=0, disabled=True,
                                        hint="Gaussians that reached the image in the last frame.")
            self.mode = gui.add_dropdown("Render mode", RENDER_MODES, initial_value=opts.render_mode,
                                         hint="RGB, expected depth (turbo: near blue, far red) or accumulated alpha.")
            self.background = gui.add_rgb("Background", initial_value=tuple(int(round(255 * c)) for c in opts.background))
            self.sh = gui.add_slider("Max SH degree", min=0, max=max(max_sh_degree, 1), step=1,
                                     initial_value=min(opts.sh_degree, max_sh_degree), disabled=max_sh_degree == 0,
                                     hint="Highest spherical-harmonics band used for colour (view dependence).")
            self.by_opacity = gui.add_checkbox(
                "Colour by opacity", initial_value=opts.colour_by_opacity,
                hint="Turbo colour map of each Gaussian's opacity (blue = transparent, red = opaque): the stand-in "
                     "for per-Gaussian importance, which checkpoints do not store yet.")
            self.time = self.use_filter = None
            if time_range is not None:  # a 4D model
                t0, t1 = time_range
                self.time = gui.add_slider("Time", min=t0, max=max(t1, t0 + 1e-6), step=max(t1 - t0, 1e-6) / 200,
                                           initial_value=min(max(opts.time, t0), t1),
                                           hint="The time the 4D model is sliced at (the training frames' span).")
                self._filter = opts.temporal_filter
                if self._filter is not None:
                    self.use_filter = gui.add_checkbox(
                        "Temporal filter", initial_value=True,
                        hint="Draw only the Gaussians visible at the two nearest key-frames (4DGS-1K), as evaluation does.")
            self.latency = gui.add_markdown("")

        if self.time is not None:
            @self.time.on_update
            def _(_):
                opts.time = float(self.time.value)
                self.rerender()

        if self.use_filter is not None:
            @self.use_filter.on_update
            def _(_):
                opts.temporal_filter = self._filter if self.use_filter.value else None
                self.rerender()

        @self.mode.on_update
        def _(_):
            opts.render_mode = self.mode.value
            self.rerender()

        @self.background.on_update
        def _(_):
            opts.background = tuple(c / 255.0 for c in self.background.value)
            self.rerender()

        @self.sh.on_update
        def _(_):
            opts.sh_degree = int(self.sh.value)
            self.rerender()

        @self.by_opacity.on_update
        def _(_):
            opts.colour_by_opacity = bool(self.by_opacity.value)
            self.rerender()

        renderer.on_frame = self.on_frame
        self._last_total = -1

    def rerender(self) -> None:
        try:
            self.viewer.rerender(None)
        except KeyError:  # a client whose render thread is not registered yet
            pass

    def set_total(self, n: int) -> None:
        if n != self._last_total:
            self._last_total = n
            self.total.value = n

    def on_frame(self, r: SplatRenderer) -> None:
        self.set_total(r.total_gaussians)
        if self.drawn.value != r.drawn_gaussians:
            self.drawn.value = r.drawn_gaussians
        if r.last_size is not None and r.last_seconds is not None:
            self.latency.content = f"last frame {r.last_size[0]}×{r.last_size[1]} in {1000 * r.last_seconds:.0f} ms"


def _cap_viewer_res(viewer, max_res: Optional[int]) -> None:
    """nerfview renders its "static" frames at viewer_res (2048 by default): cap it and its slider."""
    if not max_res:
        return
    viewer.render_tab_state.viewer_res = min(viewer.render_tab_state.viewer_res, max_res)
    slider = viewer._rendering_tab_handles.get("viewer_res_slider")
    if slider is not None:
        slider.max = max(max_res, slider.min)
        slider.value = viewer.render_tab_state.viewer_res


def _make_viewer(server, renderer: SplatRenderer, output_dir: Optional[Path], mode: str, max_sh_degree: int,
                 time_range: Optional[tuple[float, float]] = None):
    import warnings

    import nerfview

    with warnings.catch_warnings():  # nerfview 0.1.3 uses viser's deprecated configure_theme(control_layout=...)
        warnings.simplefilter("ignore", DeprecationWarning)
        viewer = nerfview.Viewer(server=server, render_fn=renderer, output_dir=output_dir, mode=mode)
    # a client that leaves mid-render makes viser warn about the frame it can no longer deliver: expected here
    warnings.filterwarnings("ignore", message="Queued a BackgroundImageMessage on a closed connection")
    server.gui.set_panel_label("gspruner")
    _cap_viewer_res(viewer, renderer.options.max_render_res)
    controls = _Controls(server, viewer, renderer, max_sh_degree, time_range)
    return viewer, controls


class ViewHandle:
    """A running `gspruner view` server: `.url`, `.port`, `.renderer`, `.stop()`."""

    def __init__(self, server, viewer, controls, renderer: SplatRenderer, scene: LoadedScene):
        self.server, self.viewer, self.controls, self.renderer, self.scene = server, viewer, controls, renderer, scene
        self.port: int = server.get_port()
        self.url: str = server_url(server)
        self._stopped = threading.Event()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until stop() (True) or the timeout (False)."""
        return self._stopped.wait(timeout)

    def stop(self) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        for r in list(self.viewer._renderers.values()):
            r.running = False
        self.server.stop()

    def __enter__(self) -> "ViewHandle":
        return self

    def __exit__(self, *_) -> None:
        self.stop()


def start_view(cfg: ViewConfig) -> ViewHandle:
    """Load the scene, start the server and return at once (the server runs in background threads)."""
    scene = load_view_input(cfg)
    device = resolve_device(cfg.device)
    max_res = default_max_render_res(device, cfg.max_render_res)
    splats = {k: v.to(device) for k, v in scene.splats.items()}
    options = RenderOptions(background=scene.background, sh_degree=scene.sh_degree, max_render_res=max_res,
                            temporal_filter=scene.temporal_filter)
    if scene.time_range is not None:  # a 4D model opens at mid-sequence
        options.time = 0.5 * (scene.time_range[0] + scene.time_range[1])
    renderer = SplatRenderer(lambda: splats, lambda: scene.sh_degree, device, options)
    server = start_server(cfg.host, cfg.port)
    try:
        position, look_at, up = initial_view(scene.splats, scene.scene_scale)
        server.initial_camera.position = tuple(position)
        server.initial_camera.look_at = tuple(look_at)
        server.initial_camera.up = tuple(up)
        output_dir = scene.source.resolve().parent
        viewer, controls = _make_viewer(server, renderer, output_dir, "rendering", scene.sh_degree, scene.time_range)
        controls.set_total(int(scene.splats["means"].shape[0]))
    except BaseException:
        server.stop()
        raise
    return ViewHandle(server, viewer, controls, renderer, scene)


def run_view(cfg: ViewConfig) -> None:
    """`gspruner view`: serve until Ctrl-C."""
    handle = start_view(cfg)
    cap = handle.renderer.options.max_render_res
    print(f"gspruner view: {handle.url}  ({handle.scene.source}, {handle.scene.splats['means'].shape[0]} Gaussians, "
          f"{handle.renderer.device}, frames up to {cap or 'full'} px; Ctrl-C to stop)", flush=True)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # Ctrl-C (and a plain `kill`) stop the server, even where SIGINT was inherited as ignored (background jobs)
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, _interrupt)
    try:
        handle.wait()
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


# -- training --------------------------------------------------------------------------------------------


class _TimedLock:
    """nerfview's VIEWER_LOCK as a context manager that also times what it guards (the training step)."""

    def __init__(self, lock):
        self.lock = lock
        self.last_seconds: Optional[float] = None
        self._tic = 0.0

    def acquire(self, *args, **kwargs):
        ok = self.lock.acquire(*args, **kwargs)
        self._tic = time.perf_counter()
        return ok

    def release(self) -> None:
        self.last_seconds = time.perf_counter() - self._tic
        self.lock.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *_) -> None:
        self.release()


class TrainingViewer:
    """The viewer during training (nerfview "training" mode: Pause / Resume, Train Util, step counter).

        viewer = TrainingViewer(lambda: trainer.splats, lambda: current_sh_degree, device, port=8080,
                                output_dir=result_dir)
        for step in ...:
            viewer.wait_if_paused()
            with viewer.lock:
                train_step(step)
            viewer.after_step(step, H * W)
        viewer.complete()

    Raises InputError when the port is in use. Nothing is rendered while no client is connected.
    """

    def __init__(self, splats_getter: Callable[[], dict], sh_degree_getter: Callable[[], int], device,
                 host: str = "127.0.0.1", port: int = 8080, output_dir: Optional[Path] = None,
                 max_render_res: Optional[int] = None, background=(0.0, 0.0, 0.0), max_sh_degree: Optional[int] = None,
                 scene_scale: Optional[float] = None, time_range: Optional[tuple[float, float]] = None):
        device = torch.device(device)
        max_res = default_max_render_res(device, max_render_res)
        self.server = start_server(host, port)
        try:
            first = splats_getter()
            if max_sh_degree is None:
                max_sh_degree = sh_degree_of(first)
            options = RenderOptions(background=tuple(background), sh_degree=max_sh_degree, max_render_res=max_res)
            if time_range is not None:  # a 4D model: a time slider, opening at mid-sequence
                options.time = 0.5 * (time_range[0] + time_range[1])
            self.renderer = SplatRenderer(splats_getter, sh_degree_getter, device, options)
            position, look_at, up = initial_view({k: v.detach().cpu() for k, v in first.items()}, scene_scale)
            self.server.initial_camera.position = tuple(position)
            self.server.initial_camera.look_at = tuple(look_at)
            self.server.initial_camera.up = tuple(up)
            self.viewer, self.controls = _make_viewer(self.server, self.renderer, output_dir, "training", max_sh_degree,
                                                      time_range)
        except BaseException:
            self.server.stop()
            raise
        self.splats_getter = splats_getter
        self.lock = _TimedLock(self.viewer.lock)
        self.port: int = self.server.get_port()
        self.url: str = server_url(self.server)
        self._last_count_update = 0.0

    def wait_if_paused(self) -> None:
        while self.viewer.state == "paused":
            time.sleep(0.01)

    def after_step(self, step: int, num_rays: int) -> None:
        dt = self.lock.last_seconds
        if dt is not None and dt > 0:
            self.viewer.render_tab_state.num_train_rays_per_sec = num_rays / dt
        elif self.viewer.render_tab_state.num_train_rays_per_sec is None:
            self.viewer.render_tab_state.num_train_rays_per_sec = float(num_rays)
        now = time.monotonic()
        if now - self._last_count_update > 1.0:  # densification changes the count; a GUI message at most 1/s
            self._last_count_update = now
            self.controls.set_total(int(self.splats_getter()["means"].shape[0]))
        self.viewer.update(step, num_rays)

    def complete(self) -> None:
        self.controls.set_total(int(self.splats_getter()["means"].shape[0]))
        self.viewer.complete()

    @property
    def num_clients(self) -> int:
        return len(self.server.get_clients())

    def close(self) -> None:
        for r in list(self.viewer._renderers.values()):
            r.running = False
        self.server.stop()
