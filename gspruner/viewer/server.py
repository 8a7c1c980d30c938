"""The viser server and GUI: `gspruner view` (run_view / start_view) and the controls panel."""

from __future__ import annotations

import math
import signal
import socket
import threading
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..device import resolve_device
from ..errors import InputError
from .frame import RENDER_MODES, RenderOptions, SplatRenderer, default_max_render_res
from .load import LoadedScene, ViewConfig, load_view_input


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
