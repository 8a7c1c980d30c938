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
