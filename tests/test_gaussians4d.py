"""The 4D Gaussian model: 4D rotation, slicing at t (conditional Gaussian), temporal culling, snapshots."""

import math

import numpy as np
import torch

from gspruner.data.scene import Camera
from gspruner.evaluation import render_view
from gspruner.model.gaussians4d import (MIN_MARGINAL, active_ids, covariance_4d, create_splats_4d, rotation_4d,
                                        slice_at, snapshot)


def _random_4d(n=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    points = (torch.rand(n, 3, generator=gen) - 0.5).numpy()
    splats = create_splats_4d(points, None, (0.0, 1.0), sh_degree=1, init_opacity=0.5, seed=seed)
    with torch.no_grad():  # random 4D rotations and scales, so space and time are coupled
        splats["quats"].copy_(torch.randn(n, 4, generator=gen))
        splats["quats_r"].copy_(torch.randn(n, 4, generator=gen))
        splats["scales"].copy_(torch.log(torch.rand(n, 3, generator=gen) * 0.05 + 0.02))
        splats["scales_t"].copy_(torch.log(torch.rand(n, 1, generator=gen) * 0.3 + 0.05))
        splats["times"].copy_(torch.rand(n, 1, generator=gen))
        splats["shN"].normal_(0, 0.1, generator=gen)
    return splats


def test_rotation_4d_is_a_proper_rotation():
    q_l, q_r = torch.randn(100, 4, dtype=torch.float64), torch.randn(100, 4, dtype=torch.float64)
    R = rotation_4d(q_l, q_r)
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(4, dtype=torch.float64).expand(100, 4, 4))
    torch.testing.assert_close(torch.linalg.det(R), torch.ones(100, dtype=torch.float64))
    # a general SO(4) element: unlike a 3D rotation padded with 1, it mixes space and time
    assert R[:, :3, 3].abs().max() > 0.1


def test_init_follows_4dgs():
    splats = create_splats_4d(np.zeros((1000, 3), np.float32) + np.random.default_rng(0).random((1000, 3), dtype=np.float32),
                              None, (0.2, 0.8), seed=0)
    t = splats["times"].detach()[:, 0]
    assert t.min() >= 0.2 - 0.1 * 0.6 - 1e-6 and t.max() <= 0.8 + 0.1 * 0.6 + 1e-6  # duration widened by 10 % per side
    torch.testing.assert_close(torch.exp(splats["scales_t"]), torch.full((1000, 1), math.sqrt(0.6 / 5)))
    identity = torch.tensor([1.0, 0, 0, 0]).expand(1000, 4)
    torch.testing.assert_close(splats["quats"].detach(), identity)
    torch.testing.assert_close(splats["quats_r"].detach(), identity)


def test_slice_is_the_conditional_gaussian():
    """mean and covariance of x | t from the 4D Gaussian, checked against the precision-matrix form:
    Sigma_{x|t} = (Lambda_xx)^-1 and mu_{x|t} = mu_x - Lambda_xx^-1 Lambda_xt (t - mu_t)."""
    splats = _random_4d()
    t = 0.37
    s = slice_at({k: v.double() for k, v in splats.items()}, t)
    cov = covariance_4d(*(splats[k].double() for k in ("scales", "scales_t", "quats", "quats_r")))
    prec = torch.linalg.inv(cov)
    cond_cov = torch.linalg.inv(prec[:, :3, :3])
    dt = (t - splats["times"].double())[:, 0]
    cond_mean = splats["means"].double() - (cond_cov @ prec[:, :3, 3:4])[:, :, 0] * dt[:, None]
    torch.testing.assert_close(s["covars"], cond_cov, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(s["means"], cond_mean, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(s["marginal"], torch.exp(-0.5 * dt**2 / cov[:, 3, 3]))


def test_temporal_culling_keeps_marginal_above_threshold():
    splats = _random_4d(n=500)
    ids = active_ids(splats, 0.5)
    marginal = slice_at(splats, 0.5)["marginal"]
    assert set(ids.tolist()) == set(torch.nonzero(marginal > MIN_MARGINAL).squeeze(1).tolist())
    assert 0 < len(ids) < 500  # some Gaussians are dead at t = 0.5, some alive


def _camera(time):
    c2w = torch.eye(4)
    c2w[2, 3] = -2.5  # 2.5 in front of the origin, looking down +z
    K = torch.tensor([[40.0, 0, 16], [0, 40.0, 16], [0, 0, 1]])
    return Camera("cam", K, c2w, 32, 32, None, time)


def test_render_at_t_equals_render_of_the_snapshot():
    """The 4D render at t and the static snapshot at t (eigendecomposed covariance, opacity x marginal) agree."""
    splats = _random_4d(n=200)
    cam = _camera(0.6)
    rgb_4d, alpha_4d, info = render_view(splats, cam, "cpu", 1, background=(0.0, 0.0, 0.0))
    snap = snapshot(splats, 0.6)
    assert torch.equal(info["ids"], snap["ids"])
    static = torch.nn.ParameterDict({k: torch.nn.Parameter(v) for k, v in snap.items() if k != "ids"})
    rgb_3d, alpha_3d, _ = render_view(static, cam, "cpu", 1, background=(0.0, 0.0, 0.0))
    assert alpha_4d.max() > 0.3  # the scene is in view
    torch.testing.assert_close(rgb_4d, rgb_3d, atol=2e-4, rtol=0)
    torch.testing.assert_close(alpha_4d, alpha_3d, atol=2e-4, rtol=0)


def test_render_changes_with_time_and_candidates_narrow_it():
    splats = _random_4d(n=200)
    a, _, _ = render_view(splats, _camera(0.1), "cpu", 1)
    b, _, _ = render_view(splats, _camera(0.9), "cpu", 1)
    assert (a - b).abs().mean() > 1e-3
    candidates = torch.zeros(200, dtype=torch.bool)
    candidates[:50] = True
    _, _, info = render_view(splats, _camera(0.5), "cpu", 1, active=candidates)
    assert len(info["ids"]) > 0 and info["ids"].max() < 50


def test_gradients_reach_every_4d_parameter():
    splats = _random_4d(n=100)
    rgb, _, info = render_view(splats, _camera(0.5), "cpu", 1)
    rgb.sum().backward()
    for name in ("means", "times", "scales", "scales_t", "quats", "quats_r", "opacities", "sh0"):
        assert splats[name].grad is not None and splats[name].grad.abs().sum() > 0, name


def test_rotmat_to_quat_round_trips():
    from gspruner.model.gaussians4d import rotmat_to_quat
    from gspruner.render.torch_raster import quat_to_rotmat

    q = torch.nn.functional.normalize(torch.randn(500, 4, dtype=torch.float64), dim=-1)
    q = q * torch.where(q[:, :1] < 0, -1.0, 1.0)
    torch.testing.assert_close(rotmat_to_quat(quat_to_rotmat(q)), q, atol=1e-9, rtol=0)
