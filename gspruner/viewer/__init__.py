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

Modules, one concern each: `load.py` (a checkpoint or scene file -> LoadedScene), `frame.py` (RenderOptions,
render_frame, SplatRenderer: one frame), `server.py` (viser server, GUI controls, `gspruner view`),
`training.py` (TrainingViewer, the trainer's hook).
"""

from .frame import CPU_MAX_RENDER_RES, RENDER_MODES, RenderOptions, SplatRenderer, capped_size, render_frame, turbo
from .load import LoadedScene, ViewConfig, check_splats, load_view_input, read_splat_file, sh_degree_of
from .server import ViewHandle, initial_view, run_view, start_server, start_view
from .training import TrainingViewer

__all__ = ["CPU_MAX_RENDER_RES", "LoadedScene", "RENDER_MODES", "RenderOptions", "SplatRenderer", "TrainingViewer",
           "ViewConfig", "ViewHandle", "capped_size", "check_splats", "initial_view", "load_view_input",
           "read_splat_file", "render_frame", "run_view", "sh_degree_of", "start_server", "start_view", "turbo"]
