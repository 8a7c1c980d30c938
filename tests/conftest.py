import shutil
import subprocess
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_scene(tmp_path_factory):
    """A small procedural COLMAP scene (the demo generator at low resolution), shared by the tests."""
    from gspruner.data.demo import ensure_demo_scene

    root = tmp_path_factory.mktemp("scenes") / "tiny"
    return ensure_demo_scene(root, width=48, height=36, n_views=16, n_points=1500, seed=0)


@pytest.fixture(scope="session")
def tiny_trained_ckpt(tiny_scene, tmp_path_factory):
    """ckpt/last.pt of 150 steps on the tiny scene at SH degree 3 (quantize-sh and compact start from it)."""
    from gspruner.config import TrainConfig
    from gspruner.trainer import Trainer

    r = tmp_path_factory.mktemp("trained") / "base"
    Trainer(TrainConfig(data_dir=tiny_scene, result_dir=r, max_steps=150, sh_degree_interval=40, device="cpu",
                        progress=False, lpips=False, save_renders=False)).train()  # fmt: skip
    return r / "ckpt" / "last.pt"


@pytest.fixture(scope="session")
def tiny_dynamic_scene(tmp_path_factory):
    """A small procedural D-NeRF scene (moving objects, RGBA, one camera per time), shared by the tests."""
    from gspruner.data.dynamic_demo import ensure_dynamic_demo_scene

    root = tmp_path_factory.mktemp("scenes") / "tiny_dynamic"
    return ensure_dynamic_demo_scene(root, width=40, height=40, n_train=24, n_test=6, seed=0)


@pytest.fixture(scope="session")
def tiny_object_scene(tmp_path_factory):
    """A small procedural NeRF-synthetic object scene (cream chair with thin legs, RGBA, static), shared by the tests."""
    from gspruner.data.object_demo import ensure_object_demo_scene

    root = tmp_path_factory.mktemp("scenes") / "tiny_object"
    return ensure_object_demo_scene(root, width=64, height=64, n_train=40, n_test=8, seed=0)


SPLAT_TRANSFORM = Path(__file__).resolve().parents[1] / ".node" / "node_modules" / ".bin" / "splat-transform"


@pytest.fixture(scope="session")
def splat_transform():
    """Run PlayCanvas' splat-transform 3.7.0 (`make setup` installs it into .node/): run(*args) -> its output,
    asserting success. The interop tests skip without node or the package."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed: splat-transform interop tests skipped")
    if not SPLAT_TRANSFORM.exists():
        pytest.skip(".node/node_modules/.bin/splat-transform is missing "
                    "(npm install --prefix .node @playcanvas/splat-transform@3.7.0): interop tests skipped")

    def run(*args) -> str:
        proc = subprocess.run([str(SPLAT_TRANSFORM), "--no-tty", "-w", *map(str, args)], capture_output=True,
                              text=True, timeout=180)
        assert proc.returncode == 0, f"splat-transform {args} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout + proc.stderr

    version = run("--version").strip()
    assert "3.7.0" in version, version
    return run
