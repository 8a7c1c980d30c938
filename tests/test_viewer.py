"""The web viewer: a real viser websocket client gets rendered frames, headless Chromium shows the scene,
the render function never raises into nerfview, training is not slowed by an unconnected viewer, bad
input and busy ports are InputErrors."""

import base64
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import msgspec
import numpy as np
import pytest
import torch
import viser
import viser.transforms as vt
import zstandard
from websockets.sync.client import connect

from gspruner.config import TrainConfig
from gspruner.data import load_scene
from gspruner.errors import InputError
from gspruner.trainer import Trainer
from gspruner.viewer import (
    CPU_MAX_RENDER_RES,
    RenderOptions,
    SplatRenderer,
    TrainingViewer,
    ViewConfig,
    capped_size,
    render_frame,
    start_view,
)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).parent / "artifacts"
CLIENT_W, CLIENT_H = 640, 480  # the viewport size our fake client reports
HIGH = capped_size(CLIENT_W, CLIENT_H, CPU_MAX_RENDER_RES)  # nerfview's "static" frame size on CPU: (256, 192)


# -- fixtures ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(tiny_scene, tmp_path_factory):
    """A few training steps on the tiny demo scene: (checkpoint, scene with the same normalization)."""
    r = tmp_path_factory.mktemp("viewer_run")
    Trainer(TrainConfig(data_dir=tiny_scene, result_dir=r, max_steps=10, device="cpu", progress=False, lpips=False,
                        save_renders=False)).train()
    return r / "ckpt" / "last.pt", load_scene(tiny_scene)


@pytest.fixture(scope="module")
def view(trained):
    handle = start_view(ViewConfig(ckpt=trained[0], port=0, device="cpu"))
    yield handle
    handle.stop()


# -- a viser client over the websocket ----------------------------------------------------------------------


class ViserClient:
    """What the browser does, minus WebGL: send camera messages, decode the server's frames."""

    def __init__(self, url: str):
        self.ws = connect(url.replace("http://", "ws://"), subprotocols=[f"viser-v{viser.__version__}"],
                          max_size=None, open_timeout=10)
        self.zstd = zstandard.ZstdDecompressor()

    def send_camera(self, c2w: np.ndarray, fov: float) -> None:
        """c2w: OpenCV camera-to-world (viser's T_world_camera); fov: vertical, radians."""
        self.ws.send(msgspec.msgpack.encode({
            "type": "ViewerCameraMessage",
            "wxyz": tuple(vt.SO3.from_matrix(c2w[:3, :3]).wxyz.tolist()),
            "position": tuple(c2w[:3, 3].tolist()),
            "fov": float(fov), "near": 0.01, "far": 1000.0,
            "image_height": CLIENT_H, "image_width": CLIENT_W,
            "look_at": (0.0, 0.0, 0.0), "up_direction": (0.0, 0.0, 1.0),
        }))

    def messages(self, timeout: float):
        """Decoded server messages until `timeout` seconds pass."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                data = self.ws.recv(timeout=max(end - time.monotonic(), 0.01))
            except TimeoutError:
                return
            # [u64 msgpack len][u64 zstd len][zstd(msgpack)][8-aligned raw buffers]
            n, c = int.from_bytes(data[:8], "little"), int.from_bytes(data[8:16], "little")
            yield from msgspec.msgpack.decode(self.zstd.decompress(data[16:16 + c], max_output_size=n))["messages"]

    def next_frame(self, size, timeout: float = 20.0) -> np.ndarray:
        """The next rendered background image of `size` (W, H), as RGB uint8."""
        for m in self.messages(timeout):
            if m["type"] == "BackgroundImageMessage" and m.get("rgb_data"):
                img = cv2.imdecode(np.frombuffer(m["rgb_data"], np.uint8), cv2.IMREAD_COLOR)
                if img.shape[1::-1] == tuple(size):
                    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        raise AssertionError(f"no {size[0]}x{size[1]} frame within {timeout} s")

    def close(self) -> None:
        self.ws.close()


def _camera(cam):
    return cam.c2w.double().numpy(), 2 * np.arctan(cam.height / 2 / float(cam.K[1, 1]))


# -- end to end over the websocket ---------------------------------------------------------------------


def test_client_gets_rendered_frames_that_follow_the_camera(view, trained):
    _, scene = trained
    client = ViserClient(view.url)
    try:
        client.send_camera(*_camera(scene.train[0]))  # the first camera message registers the client
        a = client.next_frame(HIGH)
        client.send_camera(*_camera(scene.train[len(scene.train) // 2]))  # half an orbit away
        b = client.next_frame(HIGH)
    finally:
        client.close()
    assert a.shape == b.shape == (HIGH[1], HIGH[0], 3)
    for img in (a, b):
        assert img.astype(np.float32).std() > 10.0, "frame is (nearly) blank"
    assert np.abs(a.astype(np.float32) - b.astype(np.float32)).mean() > 8.0, "frame did not follow the camera"
    assert view.renderer.failures == 0 and view.renderer.frames >= 2
    assert max(view.renderer.last_size) <= CPU_MAX_RENDER_RES
    assert view.controls.total.value == view.scene.splats["means"].shape[0] > 0


def test_gui_controls_change_the_render(view, trained):
    """Render mode, background, SH degree and colour-by-opacity all reach the render function."""
    splats = view.scene.splats
    c2w, fov = _camera(trained[1].train[0])
    W, H = 64, 48
    K = np.array([[H / 2 / np.tan(fov / 2), 0, W / 2], [0, H / 2 / np.tan(fov / 2), H / 2], [0, 0, 1]])
    frames = {}
    for name, opts in {
        "rgb": RenderOptions(),
        "depth": RenderOptions(render_mode="depth"),
        "alpha": RenderOptions(render_mode="alpha"),
        "opacity": RenderOptions(colour_by_opacity=True),
        "white": RenderOptions(background=(1.0, 1.0, 1.0)),
    }.items():
        frames[name], drawn = render_frame(splats, c2w, K, W, H, "cpu", view.scene.sh_degree, opts)
        assert frames[name].shape == (H, W, 3) and frames[name].dtype == np.uint8
        assert 0 < drawn <= splats["means"].shape[0]
    for name in ("depth", "alpha", "opacity"):
        assert np.abs(frames[name].astype(int) - frames["rgb"]).mean() > 5, name
    assert np.array_equal(frames["alpha"][..., 0], frames["alpha"][..., 1])  # grey
    # a white background shows only where the Gaussians leave the view uncovered
    assert frames["white"].astype(int).sum() >= frames["rgb"].astype(int).sum()


# -- robustness ------------------------------------------------------------------------------------------


class _Cam:
    """nerfview's CameraState, duck-typed."""

    fov, aspect = 1.0, 4 / 3
    c2w = np.eye(4)

    def get_K(self, wh):
        W, H = wh
        f = H / 2 / np.tan(self.fov / 2)
        return np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]])


class _Tab:
    preview_render = False
    viewer_width, viewer_height = 2048, 1536
    render_width, render_height = 1280, 960


@pytest.mark.parametrize("error", [RuntimeError("kernel failed"), TypeError("bad argument")])
def test_render_failure_gives_blank_frame_logged_once(error, capsys):
    def broken():
        raise error

    r = SplatRenderer(broken, lambda: 0, "cpu", RenderOptions(max_render_res=256))
    for _ in range(3):
        img = r(_Cam(), _Tab())  # never raises: nerfview would os._exit(1), or switch signature on TypeError
        assert img.shape == (192, 256, 3) and img.dtype == np.uint8 and not img.any()
    assert r.failures == 3 and r.frames == 0 and type(error).__name__ in r.last_error
    err = capsys.readouterr().err
    assert err.count("rendering failed") == 1 and str(error) in err


def test_render_passes_nerfview_interrupt_through():
    from nerfview._renderer import InterruptRenderException

    def interrupted():
        raise InterruptRenderException

    r = SplatRenderer(interrupted, lambda: 0, "cpu")
    with pytest.raises(InterruptRenderException):
        r(_Cam(), _Tab())
    assert r.failures == 0


def test_busy_port_is_input_error(trained):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(InputError, match=f"port {port}.*in use"):
            start_view(ViewConfig(ckpt=trained[0], port=port, device="cpu"))
        with pytest.raises(InputError, match="in use"):
            TrainingViewer(lambda: {}, lambda: 0, "cpu", port=port)


def test_bad_input_is_input_error(trained, tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 10\nend_header\n\x00")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    for cfg in (ViewConfig(), ViewConfig(ckpt=trained[0], ply=bad), ViewConfig(ckpt=tmp_path / "missing.pt"),
                ViewConfig(ckpt=junk), ViewConfig(ply=bad), ViewConfig(ply=tmp_path / "missing.ply")):
        with pytest.raises(InputError):
            start_view(dataclasses.replace(cfg, port=0, device="cpu"))


def test_compact_formats_load_when_their_readers_exist(trained, tmp_path):
    formats = pytest.importorskip("gspruner.export.formats", reason="gspruner.export.formats not present")
    from gspruner.viewer import ViewConfig as VC, load_view_input

    splats = load_view_input(VC(ckpt=trained[0])).splats
    path = tmp_path / "scene.spz"
    formats.write_splats(path, splats, "spz")
    loaded = load_view_input(VC(ply=path))
    assert loaded.splats["means"].shape == splats["means"].shape and loaded.sh_degree == 3


# -- training --------------------------------------------------------------------------------------------


def test_training_viewer_idle_without_clients_then_serves_one(trained):
    """No render at all while nobody is connected; a client that connects mid-training gets frames."""
    _, scene = trained
    splats = {k: v.clone() for k, v in torch.load(trained[0], weights_only=False)["splats"].items()}
    tv = TrainingViewer(lambda: splats, lambda: 0, "cpu", port=0, output_dir=None)
    try:
        for step in range(40):
            tv.wait_if_paused()
            with tv.lock:
                time.sleep(0.001)  # the "training step"
            tv.after_step(step, 48 * 36)
        assert tv.renderer.frames == 0 and tv.renderer.failures == 0 and tv.num_clients == 0
        assert tv.viewer.render_tab_state.num_train_rays_per_sec > 0
        assert not tv.viewer.lock.locked()  # held only around the step

        client = ViserClient(tv.url)
        try:
            client.send_camera(*_camera(scene.train[0]))
            frame = client.next_frame(HIGH)
            assert frame.astype(np.float32).std() > 10.0
            for step in range(40, 50):  # training goes on with a client connected
                with tv.lock:
                    time.sleep(0.001)
                tv.after_step(step, 48 * 36)
        finally:
            client.close()
        # Pause blocks the loop until Resume
        tv.viewer.state = "paused"
        resumed = threading.Event()
        t = threading.Thread(target=lambda: (tv.wait_if_paused(), resumed.set()), daemon=True)
        t.start()
        assert not resumed.wait(0.3)
        tv.viewer.state = "training"
        assert resumed.wait(2.0)
        tv.complete()
        assert tv.viewer.state == "completed"
    finally:
        tv.close()


# -- the command in a subprocess -----------------------------------------------------------------------------


def test_run_view_port_0_prints_url_and_stops_on_ctrl_c(trained):
    code = ("import sys; from pathlib import Path; from gspruner.viewer import ViewConfig, run_view; "
            "run_view(ViewConfig(ply=Path(sys.argv[1]), port=0, device='cpu'))")
    ply = trained[0].parent.parent / "point_cloud.ply"
    proc = subprocess.Popen([sys.executable, "-c", code, str(ply)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        url, seen = None, []
        for line in proc.stdout:
            seen.append(line)
            m = re.match(r"gspruner view: (http://127\.0\.0\.1:\d+)", line)
            if m:
                url = m.group(1)
                break
        assert url is not None, "".join(seen)
        assert not url.endswith(":0")
        page = urllib.request.urlopen(url + "/", timeout=10).read().decode()
        assert "<html" in page.lower()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- a real browser ----------------------------------------------------------------------------------------


class DevTools:
    """Minimal Chrome DevTools Protocol client over the page's websocket."""

    def __init__(self, ws_url: str):
        self.ws = connect(ws_url, max_size=None, open_timeout=10)
        self.next_id = 0

    def call(self, method: str, timeout: float = 30.0, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        end = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(end - time.monotonic(), 0.01)))
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def close(self) -> None:
        self.ws.close()


def _scene_fraction(shot: np.ndarray) -> float:
    """Fraction of the 3D viewport (left of the control panel, clear of the toast and the axes gizmo) that is
    not the empty viewport's near-black background."""
    h, w = shot.shape[:2]
    region = shot[int(0.25 * h):int(0.85 * h), int(0.05 * w):int(0.6 * w)].astype(np.int32)
    return float((region.max(axis=-1) > 60).mean())


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (/usr/bin/chromium); "
                    "`apt-get install chromium` runs the browser test")
def test_headless_chromium_shows_the_rendered_scene(view, tmp_path):
    frames_before = view.renderer.frames
    proc = subprocess.Popen(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1024,768", "--remote-debugging-port=0",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    log = []
    try:
        devtools_port = None
        for line in proc.stderr:  # "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..."
            log.append(line)
            m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if m:
                devtools_port = int(m.group(1))
                break
        assert devtools_port, "chromium did not start:\n" + "".join(log[-20:])
        threading.Thread(target=lambda: [log.append(x) for x in proc.stderr], daemon=True).start()
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{devtools_port}/json/list", timeout=10).read())
        page = next(t for t in targets if t["type"] == "page")
        cdp = DevTools(page["webSocketDebuggerUrl"])
        try:
            cdp.call("Page.enable")
            cdp.call("Page.navigate", url=view.url + "/")
            shot, fraction, end = None, 0.0, time.monotonic() + 40
            while time.monotonic() < end:
                time.sleep(1.0)
                png = base64.b64decode(cdp.call("Page.captureScreenshot", format="png")["data"])
                shot = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
                fraction = _scene_fraction(shot)
                if view.renderer.frames > frames_before and fraction > 0.5:
                    time.sleep(1.0)  # let the final (full-resolution) frame land
                    png = base64.b64decode(cdp.call("Page.captureScreenshot", format="png")["data"])
                    shot = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
                    fraction = _scene_fraction(shot)
                    break
        finally:
            cdp.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert shot is not None
    ARTIFACTS.mkdir(exist_ok=True)
    out = ARTIFACTS / "viewer_chromium.png"
    cv2.imwrite(str(out), shot)
    print(f"\nbrowser screenshot: {out}")
    assert view.renderer.frames > frames_before, "the browser never asked for a frame"
    assert fraction > 0.5, f"viewport mostly empty ({fraction:.2f} of it shows the scene); see {out}"


# -- 4D models ------------------------------------------------------------------------------------------


def test_4d_checkpoint_is_viewed_at_a_time_through_its_filter(tiny_dynamic_scene, tmp_path):
    """A 4D checkpoint opens with its frames' time span and key-frame filter; a frame at time t is the
    evaluation render of a camera at t; frames at two times differ (the objects move)."""
    from gspruner.checkpoint import load_checkpoint, temporal_filter_of
    from gspruner.evaluation import render_view
    from gspruner.pruning import SpatioTemporalConfig
    from gspruner.viewer import load_view_input

    r = tmp_path / "run4d"
    Trainer(TrainConfig(data_dir=tiny_dynamic_scene, result_dir=r, max_steps=30, device="cpu", progress=False,
                        lpips=False, save_renders=False, init_num_pts=2000, sh_degree=1,
                        prune=SpatioTemporalConfig(ratio=0.5))).train()
    scene = load_scene(tiny_dynamic_scene)
    loaded = load_view_input(ViewConfig(ckpt=r / "ckpt" / "last.pt"))
    times = [cam.time for cam in scene.train]
    assert loaded.time_range == pytest.approx((min(times), max(times)))
    assert loaded.temporal_filter is not None and set(loaded.splats) >= {"times", "scales_t", "quats_r"}
    splats, flt = loaded.splats, loaded.temporal_filter
    cam = scene.train[len(scene.train) // 3]
    opts = RenderOptions(background=loaded.background, time=cam.time, temporal_filter=flt)
    frame, drawn = render_frame(splats, cam.c2w.numpy(), cam.K.numpy(), cam.width, cam.height, "cpu", 1, opts)
    ref, _, info = render_view(splats, cam, "cpu", 1, scene.background, active=flt.active(cam.time))
    assert loaded.background == pytest.approx(scene.background)
    assert np.abs(frame.astype(int) - (ref.numpy() * 255 + 0.5).astype(np.uint8)).max() <= 1
    assert 0 < drawn <= len(info["ids"]) < splats["means"].shape[0]  # only the Gaussians alive at t, in the filter
    later, _ = render_frame(splats, cam.c2w.numpy(), cam.K.numpy(), cam.width, cam.height, "cpu", 1,
                            dataclasses.replace(opts, time=scene.train[-1].time))
    assert np.abs(later.astype(int) - frame).mean() > 2.0
    unfiltered, drawn_all = render_frame(splats, cam.c2w.numpy(), cam.K.numpy(), cam.width, cam.height, "cpu", 1,
                                         dataclasses.replace(opts, temporal_filter=None))
    assert drawn_all >= drawn
    assert temporal_filter_of(load_checkpoint(r / "ckpt" / "last.pt"), "cpu") is not None
    # the server: a time slider over the frames' span (and the filter switch), opening at mid-sequence
    with start_view(ViewConfig(ckpt=r / "ckpt" / "last.pt", port=0, device="cpu")) as handle:
        slider = handle.controls.time
        assert (slider.min, slider.max) == pytest.approx(loaded.time_range)
        assert handle.renderer.options.time == pytest.approx(sum(loaded.time_range) / 2)
        assert handle.controls.use_filter is not None and handle.renderer.options.temporal_filter is not None
