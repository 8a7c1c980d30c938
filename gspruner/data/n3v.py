"""Neural 3D Video (N3V / DyNeRF) multi-view videos: `poses_bounds.npy` + `cam00.mp4, cam01.mp4, ...`.

- `poses_bounds.npy`: [N_cams, 17] = an LLFF 3x5 [R | t | hwf] (row-major) + near/far bounds. R's columns are the
  camera's (down, right, backwards) axes in world coordinates, t its centre, hwf the original video's
  (height, width, focal). Row i belongs to the i-th video sorted by name.
- Frames are decoded once with OpenCV into `frames_{factor}/camXX/NNNN.png` (NNNN = the frame's index in the
  video), resized by `data_factor` (INTER_AREA); regenerated when older than the video.
- Kept frames: `range(0, n_frames, frame_step)[:max_frames]`; each kept (camera, frame) is one Camera, with
  times running evenly over [0, 1] across the kept frames (j / (n_kept - 1)).
- Split: cam00 is the test camera (the N3V convention), all others train. Cameras-only normalization.
- Initial points (no SfM here): random pixels of the training cameras' first frames at random depths within
  the LLFF near/far bounds, coloured by the pixel (`frustum_points`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from gspruner.data.normalize import normalize_world
from gspruner.data.scene import Camera, Scene, _is_fresh, downsample_cache_dir, fit_camera, train_extent, write_png_atomic
from gspruner.errors import InputError

POSES_FILE = "poses_bounds.npy"
INIT_POINTS = 50_000  # frustum-sampled initial points (4DGS initialises N3V from COLMAP points instead)
VIDEO_GLOB = "cam*.mp4"
TEST_CAMERA = "cam00"


@dataclass
class Video:
    path: Path
    width: int  # decoded frame size
    height: int
    n_frames: int


def is_n3v(data_dir: Path) -> bool:
    return (data_dir / POSES_FILE).is_file() and any(data_dir.glob(VIDEO_GLOB))


def llff_to_opencv(pose: np.ndarray) -> np.ndarray:  # [3,5] LLFF [down, right, back | t | hwf] -> [4,4] c2w
    c2w = np.eye(4)
    c2w[:3, :4] = np.stack([pose[:, 1], pose[:, 0], -pose[:, 2], pose[:, 3]], axis=1)  # [right, down, forward | t]
    return c2w


def read_poses_bounds(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """-> (c2w [N,4,4] OpenCV, hwf [N,3] = (height, width, focal) of the original videos); bounds are unused."""
    try:
        data = np.asarray(np.load(path, allow_pickle=False), dtype=np.float64)
    except (OSError, ValueError, TypeError) as e:
        raise InputError(f"{path}: cannot read as a numeric .npy array ({e})") from None
    if data.ndim != 2 or data.shape[1] != 17 or len(data) == 0:
        raise InputError(f"{path}: expected shape [N_cams, 17] (LLFF 3x5 pose + 2 bounds), got {list(data.shape)}")
    if not np.isfinite(data).all():
        raise InputError(f"{path}: non-finite values")
    poses = data[:, :15].reshape(-1, 3, 5)  # [N,3,5]
    hwf = poses[:, :, 4]
    if (hwf <= 0).any():
        raise InputError(f"{path}: non-positive height / width / focal in the hwf column")
    return np.stack([llff_to_opencv(p) for p in poses]), hwf


def probe_video(path: Path) -> Video:
    """Size from the first decoded frame, frame count from the header (counted by decoding if absent)."""
    cap = cv2.VideoCapture(str(path))
    try:
        ok, frame = cap.read() if cap.isOpened() else (False, None)
        if not ok or frame is None:
            raise InputError(f"{path}: unreadable video (no frames decoded)")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if n <= 0:
            n = 1
            while cap.grab():
                n += 1
        return Video(path, frame.shape[1], frame.shape[0], n)
    finally:
        cap.release()


def extract_frames(video: Video, targets: dict[int, Path], size: tuple[int, int]) -> None:
    """Decode `video` up to its last needed frame; write frame i to targets[i] (resized to `size`) if stale."""
    todo = {i for i, path in targets.items() if not _is_fresh(path, video.path)}
    if not todo:
        return
    cap = cv2.VideoCapture(str(video.path))
    try:
        for i in range(max(todo) + 1):
            if not cap.grab():
                raise InputError(f"{video.path}: decoding stopped after {i} frames, the header says {video.n_frames}")
            if i in todo:
                ok, frame = cap.retrieve()
                if not ok:
                    raise InputError(f"{video.path}: cannot decode frame {i}")
                if (frame.shape[1], frame.shape[0]) != size:
                    frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                write_png_atomic(targets[i], frame)
    finally:
        cap.release()


def load_n3v(data_dir: Path, factor: int, normalize: bool, frame_step: int = 1, max_frames: int | None = None) -> Scene:
    if int(frame_step) != frame_step or frame_step < 1:
        raise InputError(f"{data_dir}: frame_step must be a positive integer, got {frame_step}")
    if max_frames is not None and (int(max_frames) != max_frames or max_frames < 1):
        raise InputError(f"{data_dir}: max_frames must be a positive integer or None, got {max_frames}")
    poses_path, videos = data_dir / POSES_FILE, sorted(data_dir.glob(VIDEO_GLOB))
    c2w, hwf = read_poses_bounds(poses_path)
    if len(videos) != len(c2w):
        raise InputError(f"{poses_path}: {len(c2w)} camera rows but {len(videos)} {VIDEO_GLOB} videos in {data_dir}")
    probes = [probe_video(v) for v in videos]  # every check before anything is written
    counts = [p.n_frames for p in probes]
    if min(counts) != max(counts):
        warnings.warn(f"{data_dir}: videos have {min(counts)} to {max(counts)} frames; using the first "
                      f"{min(counts)} of each", stacklevel=3)
    kept = list(range(0, min(counts), int(frame_step)))[:None if max_frames is None else int(max_frames)]
    times = [j / max(len(kept) - 1, 1) for j in range(len(kept))]  # evenly over [0, 1]

    transform = np.eye(4)
    if normalize:
        c2w, _, transform = normalize_world(c2w, np.zeros((0, 3)))
    rel = {v.stem: {i: Path(v.stem) / f"{i:04d}.png" for i in kept} for v in videos}  # cam -> frame -> PNG
    out_dir = downsample_cache_dir(data_dir, factor, {r: v for v in videos for r in rel[v.stem].values()},
                                   name=f"frames_{factor}")
    fitted = []  # per video: (K [3,3] at the loaded size, (width, height), frame index -> PNG)
    for video, (h, w, focal) in zip(probes, hwf):
        K = np.array([[focal * video.width / w, 0.0, video.width / 2],  # LLFF hwf: fx = fy = focal, centred
                      [0.0, focal * video.height / h, video.height / 2], [0.0, 0.0, 1.0]])
        K, size, _ = fit_camera(K, video.width, video.height, None, factor)
        fitted.append((K, size, {i: out_dir / r for i, r in rel[video.path.stem].items()}))
    todo = [(v, f) for v, f in zip(probes, fitted) if not all(_is_fresh(p, v.path) for p in f[2].values())]
    for video, (_, size, targets) in tqdm(todo, desc=f"decoding -> {out_dir}", unit="video", disable=not todo):
        extract_frames(video, targets, size)

    train, test, first_frames = [], [], []
    for video, pose, (K, size, targets) in zip(probes, c2w, fitted):
        cams = [Camera(rel[video.path.stem][i].as_posix(), torch.tensor(K, dtype=torch.float32),
                       torch.tensor(pose, dtype=torch.float32), size[0], size[1], targets[i], t)
                for i, t in zip(kept, times)]
        (test if video.path.stem == TEST_CAMERA else train).extend(cams)
        if video.path.stem != TEST_CAMERA:
            first_frames.append(cams[0])
    scale = float(np.linalg.norm(transform[:3, 0]))  # the normalization's similarity scale
    bounds = np.load(poses_path)[:, 15:17][[v.path.stem != TEST_CAMERA for v in probes]] * scale  # [C,2] near, far
    points, rgb = frustum_points(first_frames, bounds)
    return Scene(train, test, points, rgb, train_extent(train), transform, data_dir, "n3v", None)


def frustum_points(cams: list[Camera], bounds: np.ndarray, n: int = INIT_POINTS, seed: int = 0):
    """Initial points [n,3] and colours [n,3] uint8 without SfM: random pixels of the training cameras' first
    frames, at depths uniform in inverse depth between each camera's LLFF near/far bounds, coloured by the pixel."""
    if not cams:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
    rng = np.random.default_rng(seed)
    which = rng.integers(0, len(cams), n)
    points, rgb = np.zeros((n, 3), np.float32), np.zeros((n, 3), np.uint8)
    for c, cam in enumerate(cams):
        sel = np.nonzero(which == c)[0]
        image = cv2.imread(str(cam.image_path), cv2.IMREAD_COLOR)[:, :, ::-1]  # [H,W,3] RGB
        u, v = rng.random(len(sel)) * cam.width, rng.random(len(sel)) * cam.height
        near, far = max(bounds[c, 0], 1e-3), max(bounds[c, 1], bounds[c, 0] + 1e-3)
        depth = 1.0 / (1.0 / near + rng.random(len(sel)) * (1.0 / far - 1.0 / near))  # uniform in 1/depth
        K, c2w = cam.K.double().numpy(), cam.c2w.double().numpy()
        rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones(len(sel))], axis=1)  # camera z = 1
        points[sel] = (rays * depth[:, None]) @ c2w[:3, :3].T + c2w[:3, 3]
        rgb[sel] = image[np.minimum(v.astype(int), cam.height - 1), np.minimum(u.astype(int), cam.width - 1)]
    return points, rgb
