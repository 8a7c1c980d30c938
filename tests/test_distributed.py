"""Gaussian-sharded training over torch.distributed (gloo on CPU): the sharded render against a one-process
render of the union of the shards, and `torchrun ... gspruner.cli train` end to end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gspruner.render import rasterize

N, WIDTH, HEIGHT, SH_DEGREE = 1500, 48, 40, 3
KEYS = ("means", "quats", "scales", "opacities", "sh0", "shN")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scene() -> tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor, list]:
    """The union of the shards (activated values), two cameras, a background each, loss weights per camera."""
    g = torch.Generator().manual_seed(0)
    splats = {
        "means": torch.randn(N, 3, generator=g) * 0.6,
        "quats": torch.randn(N, 4, generator=g),
        "scales": torch.rand(N, 3, generator=g) * 0.08 + 0.01,
        "opacities": torch.rand(N, generator=g) * 0.9 + 0.05,
        "sh0": torch.randn(N, 1, 3, generator=g) * 0.5,
        "shN": torch.randn(N, 15, 3, generator=g) * 0.1,
    }
    viewmats, Ks = [], []
    for angle in (0.0, 0.7):
        c, s = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
        R = torch.tensor([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])
        view = torch.eye(4)
        view[:3, :3], view[:3, 3] = R, torch.tensor([0.1, -0.05, 3.0])
        viewmats.append(view)
        Ks.append(torch.tensor([[40.0, 0.0, WIDTH / 2], [0.0, 40.0, HEIGHT / 2], [0.0, 0.0, 1.0]]))
    backgrounds = torch.rand(2, 3, generator=g)
    weights = [(torch.randn(1, HEIGHT, WIDTH, 3, generator=g), torch.randn(1, HEIGHT, WIDTH, 1, generator=g))
               for _ in range(2)]
    return splats, torch.stack(viewmats), torch.stack(Ks), backgrounds, weights


def shard(n: int, rank: int, size: int) -> slice:
    per = -(-n // size)
    return slice(rank * per, min(n, (rank + 1) * per))


def render_and_backward(splats: dict, viewmat, K, background, weights, distributed: bool):
    leaves = {k: v.clone().requires_grad_() for k, v in splats.items()}
    colors, alphas, info = rasterize(leaves["means"], leaves["quats"], leaves["scales"], leaves["opacities"],
                                     (leaves["sh0"], leaves["shN"]), viewmat, K, WIDTH, HEIGHT, sh_degree=SH_DEGREE,
                                     backgrounds=background, distributed=distributed)
    info["means2d"].retain_grad()
    loss = (colors * weights[0]).sum() + (alphas * weights[1]).sum()
    loss.backward()
    return colors.detach(), alphas.detach(), {k: v.grad for k, v in leaves.items()}, info


def _worker(rank: int, size: int, port: int, out_dir: str, backend: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GSPRUNER_CPU_BACKEND=backend)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=size)
    try:
        splats, viewmats, Ks, backgrounds, weights = scene()
        mine = {k: v[shard(N, rank, size)] for k, v in splats.items()}
        colors, alphas, grads, info = render_and_backward(mine, viewmats[rank : rank + 1], Ks[rank : rank + 1],
                                                          backgrounds[rank : rank + 1], weights[rank], True)
        torch.save({"colors": colors, "alphas": alphas, "grads": grads, "means2d_grad": info["means2d"].grad,
                    "radii": info["radii"], "n_cameras": info["n_cameras"]}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("backend", ["compiled", "torch"])
def test_sharded_render_equals_one_process_render_of_the_union(tmp_path, backend, monkeypatch):
    """2 gloo ranks, each with half the Gaussians and one camera: each rank's image is the one-process render
    of all Gaussians for its camera (≤ 1e-5), each rank's gradients are the one-process gradients of its own
    Gaussians (loss = the sum of both cameras' losses), and the means2d gradients a densification strategy
    reads on each rank are the one-process ones for its Gaussians in both cameras."""
    monkeypatch.setenv("GSPRUNER_CPU_BACKEND", backend)
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path), backend), nprocs=2, join=True)
    splats, viewmats, Ks, backgrounds, weights = scene()
    union = {k: v.clone().requires_grad_() for k, v in splats.items()}
    loss, images, means2d_grads = 0.0, [], []
    for c in range(2):
        colors, alphas, info = rasterize(union["means"], union["quats"], union["scales"], union["opacities"],
                                         (union["sh0"], union["shN"]), viewmats[c : c + 1], Ks[c : c + 1], WIDTH,
                                         HEIGHT, sh_degree=SH_DEGREE, backgrounds=backgrounds[c : c + 1])
        info["means2d"].retain_grad()
        images.append((colors.detach(), alphas.detach()))
        means2d_grads.append(info["means2d"])
        loss = loss + (colors * weights[c][0]).sum() + (alphas * weights[c][1]).sum()
    loss.backward()
    for rank in range(2):
        got = torch.load(tmp_path / f"rank{rank}.pt")
        assert got["n_cameras"] == 1  # each rank's loss averages its own camera only (the strategy's grad2d factor)
        assert (got["colors"] - images[rank][0]).abs().max() <= 1e-5
        assert (got["alphas"] - images[rank][1]).abs().max() <= 1e-5
        rows = shard(N, rank, 2)
        for key in KEYS:
            expected, actual = union[key].grad[rows], got["grads"][key]
            scale = expected.abs().max().clamp(min=1e-12)
            assert (actual - expected).abs().max() / scale <= 1e-4, (rank, key)
        for c in range(2):
            expected = means2d_grads[c].grad[0, rows]
            assert torch.allclose(got["means2d_grad"][c], expected, atol=1e-6 * expected.abs().max() + 1e-9), (rank, c)
        assert (got["radii"][:, :, 0] > 0).sum() > 100  # the Gaussians are visible: the test means something


def _torchrun(*args: str, timeout: int = 240, nproc: int = 2, threads: int = 1) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "gspruner.cli", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def test_torchrun_trains_merges_and_resumes(tmp_path, tiny_scene, capsys):
    """`torchrun --nproc_per_node 2 -m gspruner.cli train` on the tiny scene: rank 0 alone writes one merged
    checkpoint (densification ran on both shards) that evaluates to metrics.json's PSNR; a checkpoint of the
    2-rank run resumes in one process; a sharded run refuses what it does not support, in one error line."""
    from gspruner.checkpoint import load_checkpoint
    from gspruner.cli import main

    r = tmp_path / "run"
    proc = _torchrun("--data-dir", str(tiny_scene), "--result-dir", str(r), "--max-steps", "120", "--save-every", "60",
                     "--no-progress", "--device", "cpu", "--no-lpips")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"psnr"') == 1  # rank 0 alone reports
    metrics = json.loads((r / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and sum(metrics["gaussians_per_rank"]) == metrics["num_gaussians"]
    assert min(metrics["gaussians_per_rank"]) > 1500  # both shards grew past their half of the 1,500 points
    ckpt = load_checkpoint(r / "ckpt" / "last.pt")
    assert len(ckpt["splats"]["means"]) == metrics["num_gaussians"]
    assert ckpt["optimizers"]["means"]["state"][0]["exp_avg"].shape == ckpt["splats"]["means"].shape
    assert sorted(p.name for p in (r / "ckpt").iterdir()) == ["last.pt", "step_000060.pt"]
    capsys.readouterr()
    assert main(["eval", "--ckpt", str(r / "ckpt" / "last.pt"), "--no-lpips"]) in (0, None)
    printed = capsys.readouterr().out
    assert json.loads(printed[printed.index("{"):])["psnr"] == pytest.approx(metrics["psnr"], abs=1e-6)

    # the step-60 checkpoint of the 2-rank run, resumed in one process
    (r / "ckpt" / "last.pt").unlink()
    (r / "ckpt" / "step_000060.pt").rename(r / "ckpt" / "last.pt")
    (r / "metrics.json").unlink()
    assert main(["train", "--data-dir", str(tiny_scene), "--result-dir", str(r), "--max-steps", "120", "--resume",
                 "--no-progress", "--device", "cpu", "--no-lpips"]) in (0, None)
    resumed = json.loads((r / "metrics.json").read_text())
    assert resumed["steps"] == 120 and "world_size" not in resumed and resumed["psnr"] > 15

    bad = _torchrun("--data-dir", str(tiny_scene), "--result-dir", str(tmp_path / "bad"), "--max-steps", "10",
                    "--no-progress", "--device", "cpu", "prune:lightgaussian", timeout=120)
    assert bad.returncode != 0 and not (tmp_path / "bad").exists()
    assert "error: training over 2 ranks does not support prune:lightgaussian" in bad.stderr


def test_one_rank_run_is_the_one_process_run(tmp_path, tiny_scene):
    """torchrun with one rank goes through the sharded path (the process group, the all-to-all, the merged
    checkpoint) and trains exactly what one process trains: same Gaussians, same PSNR."""
    from gspruner.cli import main

    # strategy:default named: auto picks ADC for a sharded run and FastGS for one process
    args = ["--data-dir", str(tiny_scene), "--max-steps", "80", "--no-progress", "--device", "cpu", "--no-lpips",
            "strategy:default"]
    proc = _torchrun(*args, "--result-dir", str(tmp_path / "rank1"), nproc=1, threads=torch.get_num_threads())
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert main(["train", *args, "--result-dir", str(tmp_path / "plain")]) in (0, None)
    sharded = json.loads((tmp_path / "rank1" / "metrics.json").read_text())
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert sharded["world_size"] == 1 and "world_size" not in plain
    assert sharded["num_gaussians"] == plain["num_gaussians"]
    assert sharded["psnr"] == pytest.approx(plain["psnr"], abs=1e-4)


def test_shards_split_and_merge_per_gaussian_state_only():
    """take_shard / merge_shards cut and join what has one row per Gaussian (Adam moments, accumulators) and
    leave the rest (steps, MCMC's binomial table, even when its size equals the Gaussian count) as it is."""
    from gspruner.parallel import merge_shards, shard_rows, take_shard

    n = 51
    state = {"exp_avg": torch.arange(n * 3.0).reshape(n, 3), "step": torch.tensor(7.0), "binoms": torch.ones(51, 51),
             "groups": [{"lr": 0.1, "params": [0]}], "grad2d": torch.arange(float(n))}
    parts = [take_shard(state, n, shard_rows(n, r, 2)) for r in range(2)]
    assert [len(p["exp_avg"]) for p in parts] == [26, 25] and parts[1]["binoms"].shape == (51, 51)
    merged = merge_shards(parts, [26, 25])
    assert torch.equal(merged["exp_avg"], state["exp_avg"]) and torch.equal(merged["grad2d"], state["grad2d"])
    assert torch.equal(merged["binoms"], state["binoms"]) and merged["step"] == 7 and merged["groups"] == state["groups"]


def test_torchrun_refuses_images_of_different_sizes_up_front(tmp_path):
    """Every rank renders its camera at one size shared by all ranks: a scene with several sizes is refused
    before anything is written, with one error line (no traceback from the first collective)."""
    import json
    import math

    import cv2
    import numpy as np

    scene = tmp_path / "scene"
    (scene / "images").mkdir(parents=True)
    frames = []
    for k in range(10):
        w = 16 if k % 2 else 20
        cv2.imwrite(str(scene / "images" / f"{k}.png"), np.full((12, w, 3), 20 * k, np.uint8))
        a = 2 * math.pi * k / 10
        c2w = np.eye(4)
        back = np.array([3 * math.cos(a), 3 * math.sin(a), 1.0])
        back /= np.linalg.norm(back)
        right = np.cross([0, 0, 1.0], back)
        right /= np.linalg.norm(right)
        c2w[:3, :3], c2w[:3, 3] = np.stack([right, np.cross(back, right), back], 1), 3 * back
        frames.append({"file_path": f"images/{k}.png", "transform_matrix": c2w.tolist()})
    (scene / "transforms.json").write_text(json.dumps({"camera_angle_x": 0.8, "frames": frames}))
    r = tmp_path / "run"
    proc = _torchrun("--data-dir", str(scene), "--result-dir", str(r), "--max-steps", "10", "--no-progress",
                     "--device", "cpu", "--init-num-pts", "200", timeout=120)
    assert proc.returncode != 0 and not r.exists()
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors and "training images of different sizes (16x12, 20x12)" in errors[0], proc.stderr[-2000:]
