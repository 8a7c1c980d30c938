"""The training hook: nerfview's "training" mode around the trainer's steps (pause / resume, lock)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Optional

import torch

from .frame import RenderOptions, SplatRenderer, default_max_render_res
from .load import sh_degree_of
from .server import _make_viewer, initial_view, server_url, start_server


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
