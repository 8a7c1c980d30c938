"""The model family is chosen once from the scene: static 3D Gaussians, or 4D ones when frames carry a time."""

import pytest

from gspruner.data import load_scene
from gspruner.errors import InputError
from gspruner.model.family import DynamicModel, StaticModel, model_family


def test_family_from_the_scene(tiny_scene, tiny_dynamic_scene):
    static, dynamic = model_family(load_scene(tiny_scene)), model_family(load_scene(tiny_dynamic_scene))
    assert isinstance(static, StaticModel) and static.time_range is None and static.duration is None
    times = [cam.time for cam in load_scene(tiny_dynamic_scene).train]
    assert isinstance(dynamic, DynamicModel) and dynamic.time_range == (min(times), max(times))
    assert dynamic.duration == pytest.approx(max(times) - min(times)) and dynamic.start_time == min(times)
    assert static.learning_rates(2.0) == {} and dynamic.learning_rates(2.0)["times"] == pytest.approx(3.2e-4)
    assert static.frame_times(None) is None
    assert len(dynamic.frame_times(load_scene(tiny_dynamic_scene))) == len(times)


def test_batch_size_rules():
    assert StaticModel().batch_size(None) == 1 and DynamicModel((0.0, 1.0)).batch_size(None) == 2
    assert DynamicModel((0.0, 1.0)).batch_size(4) == 4
    with pytest.raises(InputError, match="must be 1 for static scenes"):
        StaticModel().batch_size(2)
    with pytest.raises(InputError):
        DynamicModel((0.0, 1.0)).batch_size(0)


def test_4d_ply_is_the_mid_sequence_snapshot():
    import numpy as np

    from gspruner.model.gaussians4d import create_splats_4d

    family = DynamicModel((0.2, 0.8))
    splats = create_splats_4d(np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32), None, (0.2, 0.8),
                              sh_degree=1, init_opacity=0.5, seed=0)
    ply, extra = family.ply_splats(splats)
    assert extra == {"ply_time": pytest.approx(0.5)} and "ids" not in ply and "times" not in ply
    assert set(ply) >= {"means", "scales", "quats", "opacities", "sh0"}
    assert family.metrics(2) == {"model": "4d", "batch_size": 2} and StaticModel().metrics(1) == {}
