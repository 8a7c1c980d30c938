"""The strategy `train` uses unless told: chosen from the scene, by the evidence in docs/strategies.md.

- A real capture (opaque photos: COLMAP, instant-ngp, a `gspruner process` output, the demo): FastGS. Its
  multi-view consistent pruning removes the Gaussians that few views agree on, the floaters that ADC leaves
  between the cameras and the scene, and it wins on the usual and the off-path test views of every such scene
  measured, with a tenth of the Gaussians in less time.
- An object on a transparent background (images with alpha: NeRF-synthetic), 4D scenes and runs sharded
  over several processes (torchrun): ADC (gsplat's
  DefaultStrategy with working opacity resets): there the random backgrounds already leave no free space to
  fill, and ADC is ahead on the object scenes measured.
Either way the resolved strategy is what config.yml records (`strategy: {name: fastgs, ...}`), so a rerun or a
resume needs no rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from .base import StrategyConfig, TrainingStrategy
from .configs import DefaultConfig, FastGSConfig


@dataclass
class AutoConfig(StrategyConfig):
    """The default: fastgs for real captures (opaque images), default (ADC) for objects on a transparent background and for 4D scenes."""

    models: ClassVar[tuple[str, ...]] = ("3d", "4d")

    def for_scene(self, has_alpha: bool, model: str, sharded: bool = False) -> StrategyConfig:
        if model == "3d" and not has_alpha and not sharded:  # FastGS's views are not sharded yet
            return FastGSConfig()
        return DefaultConfig()

    def setup(self, max_steps: int, views=None, duration: Optional[float] = None) -> TrainingStrategy:
        raise RuntimeError("strategy:auto is resolved with for_scene() before setup")
