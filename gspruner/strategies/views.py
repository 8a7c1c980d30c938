"""The view callback a strategy gets from the trainer (design contract 2).

A strategy that scores Gaussians on several training views (FastGS) needs views, their images and
renders of them. The trainer hands it a `ViewSampler`; the strategy calls `sample` and `render` and
never reaches into the trainer.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor


class ViewSampler:
    """Training views: uniform samples without replacement, and no-grad renders of them.

    `load_image(cam)` -> [H,W,3] on the device; `render_fn(cam)` -> (rgb [H,W,3], info) without
    gradients, rendered as the training step renders. The trainer `record`s the step's own render
    before the strategy's post-backward call and `clear`s it after: `sample` then includes that
    view and `render` returns it instead of rendering it again (it was rendered with the parameters
    of this step, before its optimizer step).
    """

    def __init__(self, cameras: Sequence, load_image: Callable[[object], Tensor],
                 render_fn: Callable[[object], tuple[Tensor, dict]]):
        self.cameras = list(cameras)
        self._load_image, self._render_fn = load_image, render_fn
        self._current: tuple | None = None  # (camera, image, rgb, info) of this step's render
        self._current_loss: Tensor | None = None  # its photometric loss, 0.8 L1 + 0.2 (1 - SSIM)

    def record(self, cam, image: Tensor, rgb: Tensor, info: dict, loss: Tensor | None = None) -> None:
        self._current = (cam, image, rgb.detach(), info)
        self._current_loss = None if loss is None else loss.detach()

    def current(self) -> tuple | None:
        """(camera, image [H,W,3], rgb [H,W,3], info) of this step's render, or None outside a step."""
        return self._current

    def current_loss(self) -> Tensor | None:
        """The photometric loss the training step computed on this step's render (a scalar), when it was recorded."""
        return self._current_loss

    def clear(self) -> None:
        self._current = self._current_loss = None

    def sample(self, k: int) -> list[tuple[object, Tensor]]:
        """min(k, #views) distinct training views, uniform (FastGS `sampling_cameras`): (camera, image [H,W,3]).

        The step's own view, when recorded, is one of them: it was itself drawn uniformly (the
        trainer's random order), so the set stays a uniform sample. Uses the global torch RNG
        (checkpointed with the run).
        """
        k = min(k, len(self.cameras))
        cur = self._current
        first = [] if cur is None or k == 0 else [(cur[0], cur[1])]
        pool = [c for c in self.cameras if cur is None or c is not cur[0]]
        picks = torch.randperm(len(pool))[: k - len(first)].tolist()
        return first + [(pool[i], self._load_image(pool[i])) for i in picks]

    def render(self, cam) -> tuple[Tensor, dict]:
        """(rgb [H,W,3], info) of `cam` without gradients; the step's own render is not redone."""
        if self._current is not None and self._current[0] is cam:
            return self._current[2], self._current[3]
        with torch.no_grad():
            return self._render_fn(cam)
