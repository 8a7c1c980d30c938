"""The model a scene trains, chosen once from it: static 3D Gaussians, or 4D Gaussians (Yang et al. 4DGS) for a
scene whose frames carry a time. The trainer asks the family what differs between the two instead of branching
on 3D vs 4D: initialisation, extra learning rates, batch size, the time span handed to strategies, pruners and
evaluation, the 3D snapshot written as point_cloud.ply, and the metrics that describe the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

import numpy as np
import torch

from ..errors import InputError
from .gaussians import create_splats
from .gaussians4d import LRS_4D, create_splats_4d, snapshot


@dataclass
class StaticModel:
    """3D Gaussians (Kerbl et al. 2023): one frame per training step."""

    name: ClassVar[str] = "3d"
    time_range: ClassVar[Optional[tuple[float, float]]] = None  # no time
    duration: ClassVar[Optional[float]] = None
    start_time: ClassVar[Optional[float]] = None

    def batch_size(self, requested: Optional[int]) -> int:
        """Frames per step: 1 (several frames per step only for 4D scenes)."""
        if requested is not None and requested != 1:
            raise InputError(f"--batch-size {requested}: must be 1 for static scenes (above 1 only for 4D scenes)")
        return 1

    def create_splats(self, points: np.ndarray, rgb, sh_degree: int, init_opacity: float, init_scale: float,
                      seed: int) -> torch.nn.ParameterDict:
        return create_splats(points, rgb, sh_degree, init_opacity, init_scale, seed=seed)

    def learning_rates(self, scene_scale: float) -> dict:
        """Learning rates of parameters beyond the 3D ones: none."""
        return {}

    def frame_times(self, scene) -> Optional[torch.Tensor]:
        """[F] times of the training frames (pruners that act in time), None without time."""
        return None

    def ply_splats(self, splats) -> tuple[dict, dict]:
        """(3D splats for point_cloud.ply, metrics describing them)."""
        return {k: v.detach() for k, v in splats.items()}, {}

    def metrics(self, batch_size: int) -> dict:
        return {}


@dataclass
class DynamicModel:
    """4D Gaussians: each frame sliced at its own time; batches of 2 frames by default (4DGS on D-NeRF)."""

    time_range: tuple[float, float]  # the training frames' span
    name: ClassVar[str] = "4d"

    def batch_size(self, requested: Optional[int]) -> int:
        size = 2 if requested is None else requested
        if size < 1:
            raise InputError(f"--batch-size {size}: must be ≥ 1")
        return size

    def create_splats(self, points: np.ndarray, rgb, sh_degree: int, init_opacity: float, init_scale: float,
                      seed: int) -> torch.nn.ParameterDict:
        return create_splats_4d(points, rgb, self.time_range, sh_degree, init_opacity, init_scale, seed=seed)

    def learning_rates(self, scene_scale: float) -> dict:
        """mu_t's lr is the means' × the scene scale, as 4DGS (spatial_lr_scale)."""
        return {**LRS_4D, "times": LRS_4D["times"] * scene_scale}

    @property
    def duration(self) -> float:
        return self.time_range[1] - self.time_range[0]

    @property
    def start_time(self) -> float:
        return self.time_range[0]

    def frame_times(self, scene) -> Optional[torch.Tensor]:
        return torch.tensor([cam.time for cam in scene.train])

    def ply_splats(self, splats) -> tuple[dict, dict]:
        """The 3D snapshot at mid-sequence (`gspruner export --time` for other times)."""
        t_mid = 0.5 * (self.time_range[0] + self.time_range[1])
        snap = snapshot(splats, t_mid)
        return {k: v for k, v in snap.items() if k != "ids"}, {"ply_time": t_mid}

    def metrics(self, batch_size: int) -> dict:
        return {"model": "4d", "batch_size": batch_size}


ModelFamily = StaticModel | DynamicModel


def model_family(scene) -> ModelFamily:
    """4D Gaussians when the training frames carry a time, else 3D."""
    times = [cam.time for cam in scene.train]
    if times and times[0] is not None:
        return DynamicModel((min(times), max(times)))
    return StaticModel()
